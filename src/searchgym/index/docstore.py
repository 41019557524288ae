"""Documents an index serves, stored next to it so loading never re-reads or re-parses corpus.jsonl.

On disk (index format 6), every part memory-mapped at load and decoded only when a hit or a look-up needs it:
- `texts.bin` (all texts, UTF-8, back to back) and `offsets.npy` (byte offsets, n + 1);
- `fields.bin` / `fields.npy`: each document's id, url, title and entity (a missing entity is the one byte 0xff,
  never valid UTF-8), back to back in that order, with their byte offsets (4n + 1);
- `url_order.npy`: document numbers in URL order, binary-searched by `access`.
Opening a 1M-document store reads no more than the .npy headers.
"""

from __future__ import annotations

import mmap
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


def sorted_order(values: Sequence[str]) -> np.ndarray:
    """Positions of `values` in ascending order (str order is UTF-8 byte order)."""
    return np.array(sorted(range(len(values)), key=values.__getitem__), dtype=np.int64)


class DocStore:
    def __init__(
        self, ids: Sequence[str], urls: Sequence[str], titles: Sequence[str], entities, texts, url_order
    ):
        self.ids, self.urls, self.titles, self.entities, self.texts = ids, urls, titles, entities, texts
        self.url_order = memoryview(url_order)  # document numbers in URL order

    @classmethod
    def from_documents(cls, docs: list[Document]) -> DocStore:
        urls = [d.url for d in docs]
        order = sorted_order(urls)
        for a, b in zip(order[:-1].tolist(), order[1:].tolist(), strict=True):
            if urls[a] == urls[b]:
                raise ValueError(f"duplicate document URL {urls[a]!r}; every document needs a unique URL")
        return cls(
            [d.id for d in docs],
            urls,
            [d.title for d in docs],
            [d.entity for d in docs],
            [d.text for d in docs],
            order,
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
        """The number of the document at `url` (a binary search of `url_order`), or None."""
        if not isinstance(url, str):
            return None
        order, urls = self.url_order, self.urls
        k = bisect_left(order, url, key=urls.__getitem__)
        return order[k] if k < len(order) and urls[order[k]] == url else None

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
        np.save(directory / "url_order.npy", np.asarray(self.url_order, dtype=np.int64))

    @classmethod
    def load(cls, directory: Path) -> DocStore:
        blob, offsets = read_strings(directory / "fields.bin", directory / "fields.npy")
        columns = [Strings(blob, offsets, FIELDS, f, NO_ENTITY if f == 3 else None) for f in range(FIELDS)]
        texts = Strings(*read_strings(directory / "texts.bin", directory / "offsets.npy"))
        return cls(*columns, texts, np.load(directory / "url_order.npy", mmap_mode="r"))
