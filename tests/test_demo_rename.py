"""Renamed transcript copies (demo/rename.py): every world name replaced consistently, nothing else touched."""

from __future__ import annotations

from searchgym.demo.rename import renamed_transcripts
from searchgym.world.names import name_key

ROW = {
    "task_id": "chain-1",
    "success": True,
    "prompt": "Question: Which company published Northern Drail?\n",
    "turns": [
        {"action": "<search> Northern Drail publisher </search>",
         "observation": "[Doc 1](https://searchgym.local/wiki/northern_drail) Northern Drail\nPublisher: Woca Systems. "
                        "Wocabulary is a word."},
        {"action": "<access> https://searchgym.local/wiki/northern_drail </access>", "observation": ""},
        {"action": "<answer> Woca Systems </answer>", "observation": ""},
    ],
}  # fmt: skip
NAMES = ["Northern Drail", "Woca Systems", "Ana Li"]


def test_names_and_their_urls_are_replaced_consistently():
    (copy,) = renamed_transcripts([ROW], NAMES, 1, seed=0)
    q = copy["prompt"].removeprefix("Question: Which company published ").removesuffix("?\n")
    answer = copy["turns"][2]["action"].removeprefix("<answer> ").removesuffix(" </answer>")
    assert q != "Northern Drail" and answer != "Woca Systems" and name_key(q) not in map(name_key, NAMES)
    assert copy["turns"][0]["action"] == f"<search> {q} publisher </search>"
    slug = "_".join(name_key(q).split())
    assert copy["turns"][1]["action"] == f"<access> https://searchgym.local/wiki/{slug} </access>"
    obs = copy["turns"][0]["observation"]
    assert f"Publisher: {answer}." in obs and "Wocabulary is a word." in obs  # whole names only
    assert copy["task_id"] == "chain-1/renamed" and copy["success"] and ROW["prompt"].endswith("Drail?\n")


def test_generic_words_of_a_name_are_kept():
    row = {**ROW, "prompt": "Question: Where did Ana Li study? At the University of Brek.\n", "turns": []}
    (copy,) = renamed_transcripts([row], [*NAMES, "University of Brek"], 1, seed=0)
    assert (
        "University of " in copy["prompt"] and "Brek" not in copy["prompt"] and "Ana Li" not in copy["prompt"]
    )


def test_copies_are_seeded_and_distinct():
    a = renamed_transcripts([ROW], NAMES, 2, seed=0)
    assert a == renamed_transcripts([ROW], NAMES, 2, seed=0) and a != renamed_transcripts(
        [ROW], NAMES, 2, seed=1
    )
    assert a[0]["prompt"] != a[1]["prompt"]
