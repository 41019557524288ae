"""Documents an index serves, stored next to it so loading never re-reads or re-parses corpus.jsonl.

On disk (index format 6 and later), every part memory-mapped at load and decoded only when a hit or a look-up needs it:
- `texts.bin` (all texts, UTF-8, back to back) and `offsets.npy` (byte offsets, n + 1);
- `fields.bin` / `fields.npy`: each document's id, url, title and entity (a missing entity is the one byte 0xff,
  never valid UTF-8), back to back in that order, with their byte offsets (4n + 1);
- `url_hashes.npy` / `url_order.npy`: the crc32 of every URL, sorted, and the document numbers in that order
  (`HashIndex`: `access` is one binary search of C ints, then a check of the URL itself).
Opening a 1M-document store reads no more than the .npy headers.
"""

from __future__ import annotations

import mmap
import zlib
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from searchgym.io import atomic_write_bytes
from searchgym.types import Document, SearchHit

_new = object.__new__
FIELDS = 4  # id, url, title, entity
NO_ENTITY = b"\xff"


class Strings(Sequence):
    """Strings `first`, `first + stride`, ... of a memory-mapped UTF-8 blob cut at `offsets`, decoded on access."""

    def __init__(self, blob, offsets: memoryview, stride: int = 1, first: int = 0, none: bytes | None = None):
        self.blob, self.offsets, self.stride, self.first, self.none = blob, offsets, stride, first, none
        self.n = (len(offsets) - 1) // stride

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        if not -self.n <= i < self.n:
            raise IndexError(i)
        j = (i % self.n) * self.stride + self.first
        raw = self.blob[self.offsets[j] : self.offsets[j + 1]]
        return None if raw == self.none else raw.decode("utf-8")

    def __iter__(self) -> Iterator:
        return (self[i] for i in range(self.n))


def write_strings(blob_path: Path, offsets_path: Path, values: list[bytes]) -> None:
    """`values` back to back in `blob_path`, their byte offsets (len + 1, int64) in `offsets_path`."""
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in values], out=offsets[1:])
    atomic_write_bytes(blob_path, b"".join(values))
    np.save(offsets_path, offsets)


def read_strings(blob_path: Path, offsets_path: Path) -> tuple[object, memoryview]:
    """(memory-mapped blob, offsets as a zero-copy view: indexing it gives Python ints)."""
    offsets = memoryview(np.load(offsets_path, mmap_mode="r"))
    with open(blob_path, "rb") as f:
        blob = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if offsets[-1] > 0 else b""
    return blob, offsets


class HashIndex:
    """Position of a string in `values` by the crc32 of its UTF-8 bytes: `hashes` sorted, `order` the positions
    in that order (ties by position). A look-up bisects the hashes and compares the few strings sharing one."""

    def __init__(self, values: Sequence[str], hashes, order) -> None:
        self.values, self.hashes, self.order = values, memoryview(hashes), memoryview(order)

    @staticmethod
    def arrays(values: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(sorted hashes, positions) for `values`."""
        hashes = np.fromiter((zlib.crc32(v.encode()) for v in values), dtype=np.uint32, count=len(values))
        order = np.lexsort((np.arange(len(values)), hashes))
        return hashes[order], order.astype(np.int64)

    @classmethod
    def of(cls, values: Sequence[str]) -> HashIndex:
        return cls(values, *cls.arrays(values))

    def find(self, value: str) -> int | None:
        h, hashes, order, values = zlib.crc32(value.encode()), self.hashes, self.order, self.values
        k = bisect_left(hashes, h)
        while k < len(hashes) and hashes[k] == h:
            if values[order[k]] == value:
                return order[k]
            k += 1
        return None

    def save(self, hashes_path: Path, order_path: Path) -> None:
        np.save(hashes_path, np.asarray(self.hashes, dtype=np.uint32))
        np.save(order_path, np.asarray(self.order, dtype=np.int64))

    @classmethod
    def load(cls, values: Sequence[str], hashes_path: Path, order_path: Path) -> HashIndex:
        return cls(values, np.load(hashes_path, mmap_mode="r"), np.load(order_path, mmap_mode="r"))


class DocStore:
    def __init__(
        self, ids: Sequence[str], urls: Sequence[str], titles: Sequence[str], entities, texts, by_url
    ):
        self.ids, self.urls, self.titles, self.entities, self.texts = ids, urls, titles, entities, texts
        self.by_url: HashIndex = by_url

    @classmethod
    def from_documents(cls, docs: list[Document]) -> DocStore:
        urls = [d.url for d in docs]
        seen: set[str] = set()
        for u in urls:
            if u in seen:
                raise ValueError(f"duplicate document URL {u!r}; every document needs a unique URL")
            seen.add(u)
        return cls(
            [d.id for d in docs],
            urls,
            [d.title for d in docs],
            [d.entity for d in docs],
            [d.text for d in docs],
            HashIndex.of(urls),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def text(self, i: int) -> str:
        return self.texts[i]

    def document(self, i: int) -> Document:
        return Document(self.ids[i], self.urls[i], self.titles[i], self.texts[i], self.entities[i])

    def hit(self, i: int, score: float) -> SearchHit:
        return SearchHit(self.ids[i], self.urls[i], self.titles[i], self.texts[i], float(score))

    def hits(self, docs: list[int], scores: list[float]) -> list[SearchHit]:
        """`hit` for many documents at once."""
        if isinstance(self.texts, Strings):
            return self._mapped_hits(docs, scores)
        ids, urls, titles, texts = self.ids, self.urls, self.titles, self.texts
        out = []
        for i, s in zip(docs, scores, strict=True):
            # a frozen dataclass's __init__ sets each field through object.__setattr__: filling the new
            # instance's __dict__ directly gives the same object at about half the cost (measured)
            hit = _new(SearchHit)
            hit.__dict__.update(doc_id=ids[i], url=urls[i], title=titles[i], text=texts[i], score=s)
            out.append(hit)
        return out

    def _mapped_hits(self, docs: list[int], scores: list[float]) -> list[SearchHit]:
        """`hits` of a loaded store, its slices inlined (a method call per field costs ~5 % of a search)."""
        fields, fo, texts, to = self.ids.blob, self.ids.offsets, self.texts.blob, self.texts.offsets
        out = []
        for i, s in zip(docs, scores, strict=True):
            j = FIELDS * i
            hit = _new(SearchHit)
            hit.__dict__.update(
                doc_id=fields[fo[j] : fo[j + 1]].decode("utf-8"),
                url=fields[fo[j + 1] : fo[j + 2]].decode("utf-8"),
                title=fields[fo[j + 2] : fo[j + 3]].decode("utf-8"),
                text=texts[to[i] : to[i + 1]].decode("utf-8"),
                score=s,
            )
            out.append(hit)
        return out

    def doc_ids(self, docs: list[int]) -> list[str]:
        """`ids[i]` for many documents (inlined for a loaded store, as in `hits`)."""
        if not isinstance(self.ids, Strings):
            ids = self.ids
            return [ids[i] for i in docs]
        blob, off = self.ids.blob, self.ids.offsets
        return [blob[off[FIELDS * i] : off[FIELDS * i + 1]].decode("utf-8") for i in docs]

    def index_of(self, url: str) -> int | None:
        """The number of the document at `url`, or None."""
        return self.by_url.find(url) if isinstance(url, str) else None

    def access(self, url: str) -> Document | None:
        i = self.index_of(url)
        return None if i is None else self.document(i)

    def save(self, directory: Path) -> None:
        fields = []
        for i in range(len(self)):
            entity = self.entities[i]
            fields += [self.ids[i].encode(), self.urls[i].encode(), self.titles[i].encode()]
            fields.append(NO_ENTITY if entity is None else entity.encode())
        write_strings(directory / "fields.bin", directory / "fields.npy", fields)
        texts = [self.texts[i].encode("utf-8") for i in range(len(self))]
        write_strings(directory / "texts.bin", directory / "offsets.npy", texts)
        self.by_url.save(directory / "url_hashes.npy", directory / "url_order.npy")

    @classmethod
    def load(cls, directory: Path) -> DocStore:
        blob, offsets = read_strings(directory / "fields.bin", directory / "fields.npy")
        columns = [Strings(blob, offsets, FIELDS, f, NO_ENTITY if f == 3 else None) for f in range(FIELDS)]
        texts = Strings(*read_strings(directory / "texts.bin", directory / "offsets.npy"))
        by_url = HashIndex.load(columns[1], directory / "url_hashes.npy", directory / "url_order.npy")
        return cls(*columns, texts, by_url)
