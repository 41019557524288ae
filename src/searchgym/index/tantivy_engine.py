"""BM25 through tantivy (the Rust search library behind Quickwit), with tantivy's own fuzzy term queries.

Title and body are separate fields (`en_stem` analyser: lower-case + English Snowball stemmer); a query is a
disjunction of per-word term queries with the title boosted. Query words go through the same stemmer
(PyStemmer's Snowball English is the same algorithm), so no query parser and no escaping is involved.
Documents are served from our DocStore; tantivy stores only a fast field with the document's position.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from searchgym.config import YamlConfig
from searchgym.index.base import IndexBackend
from searchgym.index.docstore import DocStore
from searchgym.index.text import Tokenizer
from searchgym.io import write_json
from searchgym.types import Document, SearchHit


@dataclass
class TantivyConfig(YamlConfig):
    title_boost: float = 2.0  # an entity's own article should win a query for its name
    fuzzy: bool = (
        True  # words absent from the index match indexed words within one edit (tantivy fuzzy query)
    )
    fuzzy_min_chars: int = 4
    writer_heap_bytes: int = 256_000_000


def _schema():
    import tantivy

    b = tantivy.SchemaBuilder()
    b.add_text_field("title", stored=False, tokenizer_name="en_stem")
    b.add_text_field("body", stored=False, tokenizer_name="en_stem")
    b.add_unsigned_field("idx", stored=False, indexed=False, fast=True)
    return b.build()


def _number_segments(path: Path) -> None:
    """Rename the segments of a freshly built index from tantivy's random UUIDs to 1, 2, ... (their order in
    meta.json), in the file names, meta.json and .managed.json: their contents are already the same for the
    same documents, so the same corpus then gives the same bytes."""
    meta = (path / "meta.json").read_text(encoding="utf-8")
    for n, segment in enumerate(json.loads(meta)["segments"], 1):
        old, new = uuid.UUID(segment["segment_id"]), uuid.UUID(int=n)
        meta = meta.replace(f'"{old}"', f'"{new}"')
        for file in path.glob(f"{old.hex}.*"):
            file.rename(path / file.name.replace(old.hex, new.hex))
    (path / "meta.json").write_text(meta, encoding="utf-8")
    managed = sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
    (path / ".managed.json").write_text(json.dumps(managed, separators=(",", ":")), encoding="utf-8")


class TantivyEngine(IndexBackend):
    name = "tantivy"
    config_class = TantivyConfig

    def __init__(self, store: DocStore, index, config: TantivyConfig):
        import tantivy

        self._t = tantivy
        self.store, self.index, self.config = store, index, config
        self.schema = index.schema
        # a read-only engine: no meta.json watcher thread that reloads segments behind our back
        index.config_reader("Manual")
        self.searcher = index.searcher()
        self.tokenizer = Tokenizer()

    @classmethod
    def from_documents(
        cls, docs: list[Document], config: TantivyConfig | None = None, path: Path | None = None
    ) -> TantivyEngine:
        import tantivy

        config = config or TantivyConfig()
        index = tantivy.Index(_schema(), path=str(path) if path else None)
        writer = index.writer(heap_size=config.writer_heap_bytes, num_threads=1)
        for i, d in enumerate(docs):
            doc = tantivy.Document(title=d.title, body=d.text)
            doc.add_unsigned("idx", i)
            writer.add_document(doc)
        writer.commit()
        writer.wait_merging_threads()
        index.reload()
        return cls(DocStore.from_documents(docs), index, config)

    def save(self, directory: Path) -> None:
        """Write docs and config; the tantivy files are already in `directory` (built with `path=`)."""
        self.store.save(directory)
        write_json(directory / "config.json", self.config.to_dict())

    @classmethod
    def build_into(cls, docs: list[Document], directory: Path, config: TantivyConfig | None = None) -> None:
        (directory / "tantivy").mkdir(parents=True, exist_ok=True)
        cls.from_documents(docs, config, path=directory / "tantivy").save(directory)
        _number_segments(directory / "tantivy")

    @classmethod
    def load(cls, directory: Path, **overrides) -> TantivyEngine:
        import tantivy

        config = TantivyConfig.from_dict({**json.loads((directory / "config.json").read_text()), **overrides})
        return cls(DocStore.load(directory), tantivy.Index.open(str(directory / "tantivy")), config)

    def _query(self, query: str):
        t, schema, clauses = self._t, self.schema, []
        for word in self.tokenizer.words(query):
            term = self.tokenizer.stem(word)
            known = self.searcher.doc_freq("body", term) or self.searcher.doc_freq("title", term)
            if known or not self.config.fuzzy or len(word) < self.config.fuzzy_min_chars:
                title, body = (
                    t.Query.term_query(schema, "title", term),
                    t.Query.term_query(schema, "body", term),
                )
            else:  # tantivy scores fuzzy matches as a constant per field; the title boost still ranks them
                title = t.Query.fuzzy_term_query(schema, "title", term, distance=1)
                body = t.Query.fuzzy_term_query(schema, "body", term, distance=1)
            clauses.append((t.Occur.Should, t.Query.boost_query(title, self.config.title_boost)))
            clauses.append((t.Occur.Should, body))
        return t.Query.boolean_query(clauses) if clauses else None

    def _top_k(self, query: str, k: int) -> list[tuple[int, float]]:
        """(document position, score) of the k best."""
        q = self._query(query)
        if q is None or k < 1:
            return []
        hits = self.searcher.search(q, k, count=False).hits
        if not hits:
            return []
        positions = self.searcher.fast_field_values("idx", [addr for _, addr in hits])
        return [(int(i), score) for (score, _), i in zip(hits, positions, strict=True)]

    def search(self, query: str, k: int = 5) -> list[SearchHit]:
        return [self.store.hit(i, score) for i, score in self._top_k(query, k)]

    def rank(self, query: str, k: int = 5) -> list[tuple[str, float]]:
        """(doc id, score) of `search`'s hits without reading their texts."""
        return [(self.store.ids[i], score) for i, score in self._top_k(query, k)]

    def __len__(self) -> int:
        return len(self.store)

    def access(self, url: str) -> Document | None:
        return self.store.access(url)
