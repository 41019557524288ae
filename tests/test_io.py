"""searchgym.io: atomic writes, permissions, stale temporaries, signals, damaged files, full disks, safe names."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from searchgym import io
from searchgym.errors import InputError, SearchGymError
from searchgym.io import (
    DamagedFileError,
    DiskFullError,
    OutputExistsError,
    atomic_dir,
    atomic_open,
    check_replaceable,
    read_json,
    read_jsonl,
    remove_stale,
    safe_name,
    write_json,
    write_jsonl,
)


@pytest.fixture
def umask():
    """Set a umask for one test and restore the old one."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(p: Path) -> int:
    return p.stat().st_mode & 0o777


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid names no process now
    return proc.pid


def _temp(directory: Path, name: str, pid: int, kind: str = "tmp", host: str | None = None) -> Path:
    """A temporary named the way io names its own, owned by `pid`."""
    mine = io._owner().split("_")
    return directory / f".{name}.{host or mine[0]}_{mine[1]}_{pid}.0123abcd.{kind}"


def test_files_and_dirs_follow_the_umask(tmp_path: Path, umask):
    for mask, file_mode, dir_mode in ((0o022, 0o644, 0o755), (0o077, 0o600, 0o700), (0o002, 0o664, 0o775)):
        umask(mask)
        f = tmp_path / f"f{mask:o}.json"
        write_json(f, {"a": 1})
        with atomic_dir(tmp_path / f"d{mask:o}") as tmp:
            write_jsonl(tmp / "rows.jsonl", [{"a": 1}])
        assert _mode(f) == file_mode
        assert _mode(tmp_path / f"d{mask:o}") == dir_mode
        assert _mode(tmp_path / f"d{mask:o}" / "rows.jsonl") == file_mode


def test_a_replaced_file_keeps_its_mode(tmp_path: Path, umask):
    f = tmp_path / "secret.json"
    write_json(f, {"v": 1})
    f.chmod(0o600)
    write_json(f, {"v": 2})
    assert _mode(f) == 0o600 and json.loads(f.read_text()) == {"v": 2}


def test_atomic_open_leaves_nothing_on_error(tmp_path: Path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target) as f:
        f.write("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_dir_refuses_existing_unless_overwrite_and_foreign_dirs_with_marker(
    tmp_path: Path, monkeypatch
):
    final = tmp_path / "set"
    with atomic_dir(final) as tmp:
        (tmp / "manifest.json").write_text("{}")
    with pytest.raises(OutputExistsError, match="--overwrite"), atomic_dir(final):
        pass
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputExistsError, match="without manifest.json"):
        with atomic_dir(foreign, overwrite=True, marker="manifest.json"):
            pass
    assert (foreign / "thesis.tex").read_text() == "years of work"
    with atomic_dir(final, overwrite=True, marker="manifest.json") as tmp:  # our own output: replaced
        (tmp / "manifest.json").write_text('{"v": 2}')
    assert (final / "manifest.json").read_text() == '{"v": 2}'
    empty = tmp_path / "empty"
    empty.mkdir()
    check_replaceable(empty, "manifest.json")  # an empty directory may be replaced
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # should the check fail, only this directory is at stake
    for bad in (Path("."), Path(".."), Path("")):
        with (
            pytest.raises(InputError, match="cannot be an output directory"),
            atomic_dir(bad, overwrite=True),
        ):
            pass


@pytest.mark.parametrize(
    "name, ok",
    [
        ("default", True),
        ("c8", True),
        ("run-2.v1_x", True),
        ("", False),
        (".", False),
        ("..", False),
        ("../../x", False),
        ("a/b", False),
        (".hidden", False),
        ("-flag", False),
        ("a b", False),
        ("x" * 101, False),
        ("naïve", False),
    ],
)
def test_safe_name(name: str, ok: bool):
    if ok:
        assert safe_name(name) == name
    else:
        with pytest.raises(InputError, match="cannot be used as a directory name"):
            safe_name(name, "task set name")


def test_remove_stale_removes_only_temporaries_of_gone_processes(tmp_path: Path):
    dead = _dead_pid()
    stale_dir = _temp(tmp_path, "w", dead)
    stale_dir.mkdir()
    (stale_dir / "corpus.jsonl").write_text("partial")
    stale_file = _temp(tmp_path, "x.json", dead)
    stale_file.write_text("partial")
    live = _temp(tmp_path, "w", os.getppid())  # our parent is alive
    live.mkdir()
    other_host = _temp(tmp_path, "w", dead, host="elsewhere")  # another machine's: cannot tell, kept
    other_host.mkdir()
    unrelated = tmp_path / ".w.notours.tmp"
    unrelated.mkdir()
    removed = remove_stale(tmp_path)
    assert sorted(removed) == sorted([stale_dir, stale_file])
    assert not stale_dir.exists() and not stale_file.exists()
    assert live.exists() and other_host.exists() and unrelated.exists()


def test_remove_stale_puts_back_an_interrupted_overwrite(tmp_path: Path):
    """Killed between `final -> .old` and `tmp -> final`: the previous output comes back, the new one goes."""
    dead = _dead_pid()
    old = _temp(tmp_path, "w", dead, kind="old")
    old.mkdir()
    (old / "manifest.json").write_text("previous")
    new = _temp(tmp_path, "w", dead)
    new.mkdir()
    remove_stale(tmp_path)
    assert (
        (tmp_path / "w" / "manifest.json").read_text() == "previous" and not old.exists() and not new.exists()
    )
    old2 = _temp(tmp_path, "w", dead, kind="old")  # target present (the rename finished): old copy removed
    old2.mkdir()
    remove_stale(tmp_path)
    assert not old2.exists() and (tmp_path / "w" / "manifest.json").read_text() == "previous"


def test_the_next_write_cleans_stale_temporaries(tmp_path: Path):
    stale = _temp(tmp_path, "w", _dead_pid())
    stale.mkdir()
    with atomic_dir(tmp_path / "other") as tmp:
        (tmp / "f").write_text("x")
    assert not stale.exists()
    stale = _temp(tmp_path, "w", _dead_pid())
    stale.mkdir()
    write_json(tmp_path / "a.json", {})
    assert not stale.exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_clean_up_like_ctrl_c(tmp_path: Path, sig: int):
    # exit_on_signals only replaces the default handler; an earlier test in this process (ray, in the verl tests)
    # may have installed its own, so the test starts from the default
    outer = signal.signal(sig, signal.SIG_DFL)
    try:
        _sigterm_and_sighup_clean_up_like_ctrl_c(tmp_path, sig)
    finally:
        signal.signal(sig, outer)


def _sigterm_and_sighup_clean_up_like_ctrl_c(tmp_path: Path, sig: int) -> None:
    before = signal.getsignal(sig)
    final = tmp_path / "w"
    seen: list[Path] = []
    with pytest.raises(SystemExit) as exit_info:
        with atomic_dir(final) as tmp:
            seen.append(tmp)
            with atomic_open(tmp / "corpus.jsonl") as f:
                f.write("partial")
                os.kill(os.getpid(), sig)
                time.sleep(5)  # the handler raises before this ends
    assert exit_info.value.code == 128 + sig
    assert not final.exists() and not seen[0].exists() and list(tmp_path.iterdir()) == []
    assert signal.getsignal(sig) is before  # handler restored


def test_sigterm_in_a_subprocess_exits_143_and_leaves_nothing(tmp_path: Path):
    code = (
        "import os, signal, sys, time\n"
        "from pathlib import Path\n"
        "from searchgym.io import atomic_dir\n"
        "with atomic_dir(Path(sys.argv[1]) / 'w') as tmp:\n"
        "    (tmp / 'big').write_bytes(b'x' * 1000)\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    assert list(tmp_path.iterdir()) == []


def test_damaged_json_names_the_file_and_the_fix(tmp_path: Path):
    f = tmp_path / "manifest.json"
    f.write_bytes(b'{"a": \xff}')
    with pytest.raises(DamagedFileError, match=r"manifest\.json is damaged \(byte 0xff at offset 6.*; run X"):
        read_json(f, "run X")
    f.write_text('{"a": ')
    with pytest.raises(DamagedFileError, match=r"manifest\.json is damaged \(Expecting value at line 1"):
        read_json(f, "run X")
    rows = tmp_path / "rows.jsonl"
    rows.write_bytes(b'{"a": 1}\n\n{"a": \xfe}\n')
    with pytest.raises(DamagedFileError, match=r"rows\.jsonl:3: not valid JSON \(byte 0xfe.*; rebuild"):
        list(read_jsonl(rows, "rebuild"))
    assert issubclass(DamagedFileError, SearchGymError) and issubclass(DamagedFileError, ValueError)


def _full_after(limit: int):
    """A write hook: the disk is full once `limit` bytes have gone out."""
    written = [0]

    def hook(path: Path, n: int) -> None:
        written[0] += n
        if written[0] > limit:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

    return hook


def test_disk_full_names_the_output_and_leaves_nothing(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(io, "write_hook", _full_after(100))
    target = tmp_path / "rows.jsonl"
    with pytest.raises(DiskFullError) as e:
        write_jsonl(target, ({"i": i, "pad": "x" * 20} for i in range(100)))
    assert str(e.value).startswith(f"no space left on device while writing {target}; nothing was left")
    assert "df -h" in str(e.value) and e.value.errno == errno.ENOSPC and isinstance(e.value, OSError)
    assert list(tmp_path.iterdir()) == []
    final = tmp_path / "world"
    with pytest.raises(DiskFullError) as e, atomic_dir(final) as tmp:
        with atomic_dir(tmp / "index" / "bm25s") as inner:
            write_jsonl(inner / "docs.jsonl", ({"i": i, "pad": "x" * 20} for i in range(100)))
    assert f"while writing {final} (index/bm25s/docs.jsonl)" in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_a_raw_enospc_inside_atomic_dir_names_the_output(tmp_path: Path):
    """Third-party writers (numpy, bm25s) do not go through the hook; their ENOSPC is named too."""
    final = tmp_path / "index"
    with (
        pytest.raises(DiskFullError, match=r"while writing .*index \(data\.npy\)") as e,
        atomic_dir(final) as tmp,
    ):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp / "data.npy"))
    assert e.value.path == final and not final.exists() and list(tmp_path.iterdir()) == []
