"""The string-formatted JSON Lines rows of searchgym.world.rows equal json.dumps(row, sort_keys=True) exactly."""

from __future__ import annotations

import json

import pytest

from searchgym.world.rows import corpus_line, edge_line, fact_line

AWKWARD = [
    "",
    "plain",
    'quote " and \\ back',
    "tab\tnew\nline\r",
    "\x00\x1f\x7f",
    "ünïcødé ☃ 𝄞",
    "\u2028\u2029",
    "\ud800",
]


def _dumps(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n"


@pytest.mark.parametrize("s", AWKWARD)
def test_rows_equal_json_dumps(s: str):
    assert corpus_line(s, "u" + s, "t" + s, s, s) == _dumps(
        {"id": s, "url": "u" + s, "title": "t" + s, "text": s, "entity": s}
    )
    assert corpus_line(s, s, s, s, None) == _dumps({"id": s, "url": s, "title": s, "text": s, "entity": None})
    assert fact_line(s, 7, s) == _dumps({"doc": s, "edge": 7, "sentence": s})
    for failures, verified in (([], True), ([s, "grounded"], False)):
        row = {"id": 3, "relation": s, "source": s, "target": s, "failures": failures, "verified": verified}
        assert edge_line(3, s, s, s, failures, verified) == _dumps(row)
