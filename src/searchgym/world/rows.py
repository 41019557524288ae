"""JSON Lines rows of the big world files, built with string formatting instead of `json.dumps(dict)`.

Each function returns exactly what `json.dumps(row, ensure_ascii=False, sort_keys=True) + "\\n"` returns for its
row (the format `searchgym.io.write_jsonl` and `store.write_rows` write), a few times faster: strings go through
the json module's own C string encoder, keys are written in sorted order. tests/test_world_rows.py checks the
equality on awkward strings.
"""

from __future__ import annotations

from json.encoder import encode_basestring as _s  # json.dumps(str, ensure_ascii=False)


def corpus_line(doc_id: str, url: str, title: str, text: str, entity: str | None) -> str:
    ent = "null" if entity is None else _s(entity)
    return f'{{"entity": {ent}, "id": {_s(doc_id)}, "text": {_s(text)}, "title": {_s(title)}, "url": {_s(url)}}}\n'


def fact_line(doc: str, edge: int, sentence: str) -> str:
    return f'{{"doc": {_s(doc)}, "edge": {int(edge)}, "sentence": {_s(sentence)}}}\n'


def edge_line(edge: int, relation: str, source: str, target: str, failures: list[str], verified: bool) -> str:
    fails = "[" + ", ".join(_s(f) for f in failures) + "]"
    return (
        f'{{"failures": {fails}, "id": {int(edge)}, "relation": {_s(relation)}, "source": {_s(source)}, '
        f'"target": {_s(target)}, "verified": {"true" if verified else "false"}}}\n'
    )
