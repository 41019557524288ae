"""Copy warm-up rows (demo/copywarm.py): the question's name redrawn from name words, copied into the query."""

from __future__ import annotations

import pytest

from searchgym.config import ConfigError
from searchgym.demo.copywarm import copy_warmup_rows, first_query_name, span_rows
from searchgym.demo.pipeline import DemoConfig, check_copy_warmup

ROW = {
    "task_id": "chain-1",
    "success": True,
    "prompt": "Answer by searching.\nQuestion: Who employs Poxstel Jiokciond?\n",
    "turns": [
        {"action": "<search> Poxstel Jiokciond employer </search>",
         "observation": "[Doc 1](https://searchgym.local/wiki/poxstel_jiokciond) Poxstel Jiokciond\n"
                        "Poxstel Jiokciond is employed by Woca Systems."},
        {"action": "<answer> Woca Systems </answer>", "observation": ""},
    ],
}  # fmt: skip
NAMES = ["Poxstel Jiokciond", "Woca Systems", "Ana Li", "University of Brek"]


def test_the_name_is_redrawn_in_the_question_and_copied_into_the_query():
    rows = copy_warmup_rows([ROW], NAMES, 50, seed=0)
    words = {"Poxstel", "Jiokciond", "Woca", "Systems", "Ana", "Li", "University", "Brek"}
    fresh = set()
    for i, row in enumerate(rows):
        name = row["prompt"].removeprefix("Answer by searching.\nQuestion: Who employs ").removesuffix("?\n")
        assert len(name.split()) == 2 and set(name.split()) <= words  # drawn from the words of world names
        assert row["turns"] == [{"action": f"<search> {name} employer </search>", "observation": ""}]
        assert row["task_id"] == f"copy-warmup-{i}" and row["success"]
        fresh.add(name)
    assert len(fresh) > 20  # random names, not the original one again and again
    assert ROW["prompt"].endswith("Jiokciond?\n")  # the transcript itself is untouched


def test_lower_case_words_of_a_name_are_kept_and_rows_are_seeded():
    row = {**ROW, "prompt": "Question: Where is University of Brek?\n",
           "turns": [{"action": "<search> University of Brek campus </search>", "observation": ""}]}  # fmt: skip
    rows = copy_warmup_rows([row], NAMES, 20, seed=0)
    assert all(" of " in r["prompt"] and r["turns"][0]["action"].endswith(" campus </search>") for r in rows)
    assert rows == copy_warmup_rows([row], NAMES, 20, seed=0) != copy_warmup_rows([row], NAMES, 20, seed=1)


def test_the_longest_name_in_question_and_first_query_is_the_one_replaced():
    assert first_query_name(ROW, sorted(NAMES, key=len, reverse=True)) == "Poxstel Jiokciond"
    no_name = {**ROW, "turns": [{"action": "<search> employer </search>", "observation": ""}]}
    assert first_query_name(no_name, NAMES) is None
    with pytest.raises(ValueError, match="no transcript's first query contains a name"):
        copy_warmup_rows([no_name], NAMES, 3, seed=0)


def test_span_rows_search_for_exactly_the_prompt_s_random_name_words():
    rows = span_rows(NAMES, 40, seed=0)
    words = {"Poxstel", "Jiokciond", "Woca", "Systems", "Ana", "Li", "University", "Brek"}
    for i, row in enumerate(rows):
        span = row["prompt"].removeprefix("Words: ").removesuffix("\n")
        assert 4 <= len(span.split()) <= 10 and set(span.split()) <= words  # "of" is not capitalised
        assert row["turns"] == [{"action": f"<search> {span} </search>", "observation": ""}]
        assert row["task_id"] == f"copy-span-{i}" and row["success"]
    assert len({r["prompt"] for r in rows}) == 40 and rows == span_rows(NAMES, 40, seed=0)
    with pytest.raises(ValueError, match="no capitalised name words"):
        span_rows(["of the"], 1, seed=0)


def test_a_bad_copy_warmup_option_is_refused():
    check_copy_warmup(DemoConfig(copy_warmup_steps=5))
    with pytest.raises(ConfigError, match="copy_warmup_rows='words': choose one of spans, questions"):
        check_copy_warmup(DemoConfig(copy_warmup_rows="words"))
    with pytest.raises(
        ConfigError,
        match="copy_warmup_steps must be >= 0, copy_warmup_batch_size >= 1 and copy_warmup_lr > 0",
    ):
        check_copy_warmup(DemoConfig(copy_warmup_steps=-1))
