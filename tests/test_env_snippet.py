"""Query-aware search snippets (EnvConfig.snippet = "best")."""

import os

import pytest

from searchgym.config import ConfigError
from searchgym.env import EnvConfig, SearchEnv
from searchgym.env.observe import best_snippet, units
from searchgym.index.build import engine_from_documents
from searchgym.types import Document, EvidenceStep, Task

URL = "https://searchgym.test/wiki/"
ARTICLE = (
    "Varo Kestrel is a painter born in 1901.\n\nSummary\nType: Person\nBirthplace: Quillport\n"
    "Employer: Drailbron Group\n\n## Early life\nVaro Kestrel was born in the year 1901. "
    "Varo Kestrel's birthplace is Quillport.\n\n## Career\nVaro Kestrel is employed by Drailbron Group."
)
DOCS = [
    Document("person/1", URL + "Varo_Kestrel", "Varo Kestrel", ARTICLE),
    Document("city/1", URL + "Quillport", "Quillport", "Quillport is a harbour city in Marrowind."),
]
TASK = Task(
    id="t1",
    question="Who employs Varo Kestrel?",
    answer="Drailbron Group",
    aliases=(),
    type="chain",
    hops=1,
    level=1,
    split="test",
    evidence=(EvidenceStep("person/1", URL + "Varo_Kestrel", edge=1, relation="works_for"),),
)


def test_units_are_sentences_and_infobox_lines_without_headings():
    parts = units(ARTICLE)
    assert parts[0] == "Varo Kestrel is a painter born in 1901."
    assert "Employer: Drailbron Group" in parts and "Summary" not in parts
    assert not any(p.startswith("#") for p in parts)
    assert "Varo Kestrel's birthplace is Quillport." in parts


def test_best_snippet_picks_the_rare_query_word_not_the_name():
    employed = "Varo Kestrel is employed by Drailbron Group."
    assert best_snippet(ARTICLE, "Varo Kestrel employer", 80) == employed  # employer/employed share a stem
    assert best_snippet(ARTICLE, "employer", 80) == "Employer: Drailbron Group"  # tie: the earlier unit
    assert best_snippet(ARTICLE, "Varo Kestrel birthplace", 80) == "Varo Kestrel's birthplace is Quillport."
    # no query word in the article (or only stop words): the lead, exactly as "lead" shows it
    assert best_snippet(ARTICLE, "the of", 20) == best_snippet(ARTICLE, "zzz", 20) == "Varo Kestrel is a p…"
    lead = "Varo Kestrel is a painter born in 1901."
    assert best_snippet(ARTICLE, "Varo Kestrel", 500) == lead  # tie: the first unit
    assert len(best_snippet(ARTICLE, "Kestrel employed", 10)) == 10


def test_env_snippet_option_changes_only_search_observations():
    engine = engine_from_documents(DOCS, "bm25s")
    lead = SearchEnv(engine, EnvConfig(require_think=False, doc_chars=60))
    best = SearchEnv(engine, EnvConfig(require_think=False, doc_chars=60, snippet="best"))
    obs = {}
    for name, env in (("lead", lead), ("best", best)):
        env.reset(TASK)
        obs[name] = env.step("<search>Varo Kestrel employer</search>")[0]
    assert "Drailbron Group" not in obs["lead"]
    assert (
        f"[Doc 1]({URL}Varo_Kestrel) Varo Kestrel\nVaro Kestrel is employed by Drailbron Group."
        in obs["best"]
    )
    for env in (lead, best):
        page = env.step(f"<access>{URL}Varo_Kestrel</access>")[0]
        assert "Varo Kestrel is employed by Drailbron Group." in page
    assert best.step("<answer>Drailbron Group</answer>")[1] == 1.0


def test_env_snippet_rejects_unknown_mode():
    with pytest.raises(ConfigError, match="snippet"):
        EnvConfig(snippet="middle")


def test_oracle_reads_facts_from_best_snippets_and_stays_perfect(tmp_path):
    """With snippet "best" the oracle searches the relation's label and answers from the hit when it states the
    fact: every task of every type stays solved, transcripts get shorter, and spaced actions parse the same."""
    import dataclasses

    from searchgym.agents.oracle import Oracle, oracle_env_config
    from searchgym.index.build import load_engine
    from searchgym.pipeline import build_world
    from searchgym.tasks.config import TaskConfig
    from searchgym.tasks.synth import build_tasks
    from searchgym.world.build import WorldConfig

    world = build_world(WorldConfig(seed=4, num_entities=300), tmp_path / "w", overwrite=True, progress=False)
    cfg = TaskConfig(seed=4, chain_per_hops=20, obfuscated=8, intersection=8, comparison=8)
    tasks = build_tasks(world, dataclasses.replace(cfg), progress=False)
    engine = load_engine(world.path)
    lead = Oracle(world, engine, oracle_env_config(doc_chars=80)).run(tasks)
    best = Oracle(world, engine, oracle_env_config(doc_chars=80, snippet="best"), spaced_args=True).run(tasks)
    assert not lead.unsolved and not best.unsolved, best.unsolved
    assert best.table()["all"]["success"] == 1.0
    turns = {
        name: sum(len(t["turns"]) for t in r.transcripts) for name, r in (("lead", lead), ("best", best))
    }
    assert turns["best"] < 0.85 * turns["lead"], turns
    chains = [t for t in best.transcripts if t["type"] == "chain" and t["level"] == 1]
    no_access = [t for t in chains if not any("<access>" in x["action"] for x in t["turns"])]
    assert len(no_access) > len(chains) / 2  # most 1-hop facts are read straight from the search result
    assert all(" </" in x["action"] for t in best.transcripts for x in t["turns"])  # "<search> q </search>"


TIE_ARTICLE = (  # a generated article (seed-0 world, 300 entities)
    "Neand Casdondhix is a diplomat born in 1946.\n"
    "\n"
    "Summary\n"
    "Type: Person\n"
    "Birth year: 1946\n"
    "Height: 171 cm\n"
    "Occupation: diplomat\n"
    "Birthplace: Taxgrestad\n"
    "Citizenship: Pagrokavia\n"
    "Alma mater: Shiothde Institute of Technology\n"
    "Parent: Mindro Lobrai\n"
    "\n"
    "## Early life\n"
    "Neand Casdondhix was born in the year 1946. Neand Casdondhix has a height of 171 cm. Neand Casdondhix was born in Taxgrestad. Neand Casdondhix is a citizen of Pagrokavia. Neand Casdondhix is a child of Mindro Lobrai.\n"
    "\n"
    "## Education\n"
    "Neand Casdondhix studied at Shiothde Institute of Technology.\n"
    "\n"
    "## Career\n"
    "By profession, Neand Casdondhix is a diplomat.\n"
    "\n"
    "## Connections\n"
    "Neand Casdondhix is the parent of Cikdeth Zurvex. Neand Casdondhix is the parent of Gaifiok Griondtath. Seathshaik Grexnuk is a child of Neand Casdondhix. Neand Casdondhix is the parent of Drom Trelthios."
)


def test_best_snippet_does_not_depend_on_the_hash_seed():
    """Two sentences tie on the same query words; a float sum in set order once broke the tie differently in some
    processes (hash seed 13 picked the later one), so oracle transcripts differed between runs."""
    import subprocess
    import sys

    code = (
        "import sys; from searchgym.env.observe import best_snippet; "
        "print(best_snippet(sys.argv[1], 'Neand Casdondhix parent Thioxvik born in', 300))"
    )
    outs = set()
    for seed in ("0", "13"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        res = subprocess.run(
            [sys.executable, "-c", code, TIE_ARTICLE], capture_output=True, text=True, env=env
        )
        assert res.returncode == 0, res.stderr
        outs.add(res.stdout.strip())
    assert outs == {"Neand Casdondhix is a diplomat born in 1946."}  # ties go to the earlier unit
