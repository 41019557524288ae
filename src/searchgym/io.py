"""File helpers: nothing SearchGym writes is ever half-written (temp file, fsync, rename).

Temporaries are hidden siblings named `.<name>.<host>_<pid-namespace>_<pid>.<random>.tmp`: the owner is in the name,
so the next write into the same directory removes the ones whose process is gone (`remove_stale`). SIGTERM and
SIGHUP during a write end the process the way Ctrl-C does, after the temporaries are removed. New files and
directories get the usual permissions (0666 / 0777 minus the umask); a replaced file keeps its mode.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from searchgym.errors import InputError, SearchGymError

# Tests set this to simulate a full disk: called as write_hook(path, size) before every write to a file opened
# with atomic_open (path: the file being written; size: len of the bytes or text); raise OSError(errno.ENOSPC, ...).
write_hook: Callable[[Path, int], None] | None = None

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"
_TEMP = re.compile(
    r"\.(?P<name>.+)\.(?P<host>[A-Za-z0-9-]+)_(?P<ns>\d+)_(?P<pid>\d+)\.[0-9a-f]{8}\.(?P<kind>tmp|old)"
)
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


class DamagedFileError(SearchGymError, ValueError):
    """A file that cannot be parsed (bad bytes, not JSON); the message names it and the command that rebuilds it."""


class OutputExistsError(SearchGymError, FileExistsError):
    """The output is there already and was not to be replaced."""


class DiskFullError(SearchGymError, OSError):
    """No space left while writing `path`; nothing was left half-written."""

    def __init__(self, path: Path, inner: str = ""):
        path = Path(path)
        where = next((p for p in (path, *path.parents) if p.exists()), Path("."))
        try:
            free = f"{shutil.disk_usage(where).free / 1e6:,.1f} MB free"
        except OSError:
            free = "free space unknown"
        what = f"{path} ({inner})" if inner else str(path)
        super().__init__(
            errno.ENOSPC,
            f"no space left on device while writing {what}; nothing was left half-written. Free space on that "
            f"disk ({free}; see `df -h {where}`) and run the command again",
            str(path),
        )
        self.path, self.inner = path, inner

    def __str__(self) -> str:
        return str(self.strerror)


def safe_name(name: str, what: str = "name") -> str:
    """Return `name` if it can be one path component SearchGym creates (task set, run, ...); else raise InputError.

    Allowed: 1-100 characters of letters, digits, `.`, `_`, `-`, starting with a letter or digit (so no `..`,
    no `/`, no hidden or empty names)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(
            f"{what} {name!r} cannot be used as a directory name: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no '/', no '..')"
        )
    return name


def _owner() -> str:
    try:
        ns = os.stat("/proc/self/ns/pid").st_ino  # pids mean something only inside one pid namespace
    except OSError:
        ns = 0
    return f"{_HOST}_{ns}_{os.getpid()}"


def _temp_name(final: Path, kind: str = "tmp") -> Path:
    name = final.name[:150] if kind == "tmp" else final.name  # an `.old` name must lead back to its target
    return final.with_name(f".{name}.{_owner()}.{secrets.token_hex(4)}.{kind}")


def _alive(host: str, ns: str, pid: int) -> bool:
    """Is the owner of a temporary still running? Unknown (another host or pid namespace) counts as alive."""
    mine = _owner().split("_")
    if host != mine[0] or ns != mine[1]:
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def remove_stale(directory: Path) -> list[Path]:
    """Remove the temporaries in `directory` left by SearchGym processes that are gone (killed builds); return them.

    A `.old` copy (an overwrite killed between its two renames) is put back if its target is missing."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP.fullmatch(entry.name)
        if m is None or _alive(m["host"], m["ns"], int(m["pid"])):
            continue
        path = Path(entry.path)
        try:
            target = path.with_name(m["name"])
            if m["kind"] == "old" and not target.exists():
                os.replace(path, target)
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except OSError:
            continue  # another process cleaned it first, or it is not ours to remove
    return removed


def _raise_exit_in(owner_pid: int) -> Callable[[int, Any], None]:
    def handler(signum: int, frame: Any) -> None:
        if os.getpid() != owner_pid:  # a forked child inherited the handler: die the default way
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise SystemExit(128 + signum)

    return handler


@contextmanager
def exit_on_signals() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise SystemExit(128 + signal) like Ctrl-C raises KeyboardInterrupt, so
    `finally` / `except BaseException` cleanups run. Only in the main thread, only over the default handler."""
    installed: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)):
            if sig is not None and signal.getsignal(sig) is signal.SIG_DFL:
                installed[sig] = signal.signal(sig, _raise_exit_in(os.getpid()))
    try:
        yield
    finally:
        for sig, old in installed.items():
            signal.signal(sig, old)


def _is_disk_full(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in _DISK_FULL and not isinstance(e, DiskFullError)


class _File:
    """The file atomic_open yields: a full disk raises DiskFullError naming `path` at the write itself (also when
    the caller finishes the file outside the with-block), and `write_hook`, when set, sees every write first."""

    def __init__(self, f: IO[Any], path: Path):
        self._f, self._path = f, path

    def write(self, data: Any) -> int:
        try:
            if write_hook is not None:
                write_hook(self._path, len(data))
            return self._f.write(data)
        except OSError as e:
            if _is_disk_full(e):
                raise DiskFullError(self._path) from e
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


@contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary sibling of `path` for writing; on success fsync it and rename it over `path`.

    Raises DiskFullError (naming `path`) when the disk fills up; the temporary is removed in every case."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent)
    with exit_on_signals():
        while True:
            tmp = _temp_name(path)
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
                break
            except FileExistsError:
                continue
        try:
            if path.exists() and hasattr(os, "fchmod"):
                os.fchmod(fd, stat.S_IMODE(path.stat().st_mode))
            with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
                yield _File(f, path)  # type: ignore[misc]
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as e:
            tmp.unlink(missing_ok=True)
            if _is_disk_full(e):
                raise DiskFullError(path) from e
            raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as JSON Lines atomically; returns the number of rows."""
    n = 0
    with atomic_open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
    return n


def _json_problem(e: ValueError) -> str:
    if isinstance(e, UnicodeDecodeError):
        return f"byte 0x{e.object[e.start]:02x} at offset {e.start} is not UTF-8"
    if isinstance(e, json.JSONDecodeError):
        return f"{e.msg} at line {e.lineno} column {e.colno}"
    return str(e)


def read_json(path: Path, fix: str) -> Any:
    """Parse a JSON file; bad bytes or bad JSON raise DamagedFileError naming the file, followed by `fix`
    (what to run, e.g. "rebuild it with `searchgym world build W --overwrite`")."""
    data = Path(path).read_bytes()
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError as e:  # UnicodeDecodeError, JSONDecodeError
        raise DamagedFileError(f"{path} is damaged ({_json_problem(e)}); {fix}") from e


def read_jsonl(path: Path, fix: str = "the file is damaged", digest=None) -> Iterator[dict[str, Any]]:
    """Rows of a JSON Lines file; a bad line raises DamagedFileError naming the file and line, followed by `fix`.
    `digest` (a hashlib object), if given, is updated with every byte read: hashing in the same pass."""
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if digest is not None:
                digest.update(line)
            if not line.strip():
                continue
            try:
                row = json.loads(line.decode("utf-8"))
            except ValueError as e:
                raise DamagedFileError(f"{path}:{lineno}: not valid JSON ({_json_problem(e)}); {fix}") from e
            yield row


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_replaceable(final: Path, marker: str) -> None:
    """Refuse to replace `final` unless it is missing, an empty directory, or holds `marker` (it is our output:
    `manifest.json` for a world or task set). Keeps `--overwrite` from deleting a directory that is not ours."""
    final = Path(final)
    if not final.exists():
        return
    if final.is_dir() and ((final / marker).exists() or not any(final.iterdir())):
        return
    kind = "a directory" if final.is_dir() else "a file"
    raise OutputExistsError(
        f"{final} is {kind} without {marker}, so it is not a SearchGym output; refusing to replace it. "
        "Choose another path, or remove it yourself first"
    )


@contextmanager
def atomic_dir(final: Path, overwrite: bool = False, marker: str | None = None) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces `final` in one rename.

    On any error (and on SIGTERM / SIGHUP) the temporary directory is removed and `final` is untouched. With
    `marker`, an existing `final` is replaced only if it holds that file (see `check_replaceable`)."""
    final = Path(final)
    if final.name in ("", ".", ".."):
        raise InputError(f"{str(final)!r} cannot be an output directory; name a directory to create")
    if final.exists() and not overwrite:
        raise OutputExistsError(f"{final} already exists; pass --overwrite to replace it")
    if marker is not None:
        check_replaceable(final, marker)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final.parent)
    with exit_on_signals():
        tmp = _temp_name(final)
        os.mkdir(tmp, 0o777)
        try:
            yield tmp
            if final.exists():
                old = _temp_name(final, "old")
                os.replace(final, old)
                os.replace(tmp, final)  # killed between the two renames: remove_stale puts `old` back
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(e, DiskFullError) and e.path.is_relative_to(tmp):  # nested: name the file inside
                raise DiskFullError(final, str(e.path.relative_to(tmp) / e.inner)) from e
            if _is_disk_full(e):  # a writer outside searchgym.io (numpy, bm25s, tantivy)
                inner = Path(getattr(e, "filename", None) or tmp)
                named = inner != tmp and inner.is_relative_to(tmp)
                raise DiskFullError(final, str(inner.relative_to(tmp)) if named else "") from e
            raise
