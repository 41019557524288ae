"""The sha256 of files already hashed, remembered by their stat key so an unchanged file is hashed once (git's
stat cache, applied to the index's integrity check).

An entry is (device, inode) -> (size, mtime_ns, ctime_ns, sha256). It is used only while all of these match:
replacing a file (a new inode), rewriting it in place (a new ctime, which `os.utime` cannot set back) or
truncating it each miss the cache, so the file is hashed again. A file whose ctime was within `RACY_NS` of the
moment it was hashed is not remembered: a write later in the same clock tick would not change its stat (Linux
stamps files from a clock updated every 1-10 ms; a whole-second ctime means a coarse filesystem: `COARSE_NS`).
The cache is one JSON file, $XDG_CACHE_HOME/searchgym/sha256.json (default ~/.cache), replaced atomically and
capped at `MAX_ENTRIES`; SEARCHGYM_HASH_CACHE=0 disables it, and deleting it forces every file to be hashed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from searchgym.io import atomic_write_text, sha256_file

RACY_NS, COARSE_NS = 100_000_000, 2_000_000_000
MAX_ENTRIES = 4096


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "searchgym" / "sha256.json"


def _enabled() -> bool:
    return os.environ.get("SEARCHGYM_HASH_CACHE", "1") not in ("0", "")


def _key(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}"


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class HashCache:
    def __init__(self) -> None:
        self.entries: dict[str, list] = {}
        self.added: dict[str, list] = {}
        if _enabled():
            try:
                loaded = json.loads(cache_path().read_text(encoding="utf-8"))
                self.entries = {k: v for k, v in loaded.items() if isinstance(v, list) and len(v) == 4}
            except (OSError, ValueError, AttributeError):
                pass  # no cache yet, or an unreadable one: every file is hashed

    def lookup(self, path: Path) -> str | None:
        """The remembered sha256 of `path` if its stat key is unchanged, else None."""
        st = os.stat(path)
        entry = self.entries.get(_key(st))
        return entry[3] if entry is not None and entry[:3] == _stamp(st) else None

    def sha256(self, path: Path) -> str:
        """The file's sha256: remembered if its stat key is unchanged, else computed (and remembered)."""
        known = self.lookup(path)
        if known is not None:
            return known
        st = os.stat(path)
        digest = sha256_file(path)
        self.remember(path, digest, st)
        return digest

    def remember(self, path: Path, digest: str, before: os.stat_result) -> None:
        """Record `digest` for `path`, hashed from the bytes it held when `before` was its stat."""
        after = os.stat(path)
        margin = COARSE_NS if after.st_ctime_ns % 1_000_000_000 == 0 else RACY_NS
        if _stamp(after) == _stamp(before) and time.time_ns() - after.st_ctime_ns >= margin:
            self.added[_key(after)] = [*_stamp(after), digest]

    def save(self) -> None:
        """Write the new entries (best effort: a read-only cache directory only costs hashing next time)."""
        if not self.added or not _enabled():
            return
        try:
            # entries other processes wrote meanwhile; this process's entries last (the newest are kept)
            merged = {k: v for k, v in HashCache().entries.items() if k not in self.added} | self.added
            keep = dict(list(merged.items())[-MAX_ENTRIES:])
            path = cache_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(keep))
            self.entries, self.added = keep, {}
        except OSError:
            pass


def remember_written(path: Path, record: dict) -> None:
    """Remember the sha256 of a file hashed while it was written ({"sha256", "bytes"}), so the next reader of
    the same bytes need not hash it again (the world build's corpus, read next by the index build)."""
    st = os.stat(path)
    if st.st_size == record["bytes"]:
        cache = HashCache()
        cache.remember(path, record["sha256"], st)
        cache.save()
