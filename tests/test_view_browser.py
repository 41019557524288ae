"""The viewer in a real headless Chromium (Debian's /usr/bin/chromium driven by the `playwright` package; never
`playwright install`). Set SEARCHGYM_VIEW_SCREENSHOTS=DIR to save a screenshot of each view (docs/images/view/).

    bash scripts/install_browser.sh && pip install playwright
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from searchgym.io import read_jsonl
from test_view import serve
from test_view_common import big_eval, demo_dir, eval_after, eval_before, train_run, world

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="pip install playwright (the browser tests drive it)"
)
if not Path(CHROMIUM).is_file():
    pytest.skip("no Chromium: run `bash scripts/install_browser.sh`", allow_module_level=True)

SHOTS = os.environ.get("SEARCHGYM_VIEW_SCREENSHOTS")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("profile")),  # a fresh --user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1400, "height": 900},
        )
        yield ctx
        ctx.close()


@pytest.fixture(scope="module")
def demo():
    with serve(str(demo_dir())) as url:
        yield url


def open_page(browser, url: str, route: str):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{url}/{route}")
    wait(page, route)
    page.errors = errors
    return page


def wait(page, route: str, timeout: float = 120_000) -> None:
    """Until the app has drawn `route` (app.js sets body[data-ready] to the hash it finished)."""
    page.wait_for_selector(f'body[data-ready="{route}"]', state="attached", timeout=timeout)


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


def test_list_renders_and_a_filter_changes_the_count(browser, demo):
    rows = list(read_jsonl(eval_after() / "trajectories.jsonl"))
    page = open_page(browser, demo, "#/run/after")
    assert page.locator("#episodes tbody tr").count() == len(rows)
    assert page.inner_text("#count") == f"{len(rows)} of {len(rows)} episodes"
    shot(page, "list")
    page.select_option("#f-success", "true")
    wait(page, "#/run/after?success=true")
    ok = sum(r["em"] >= 1 for r in rows)
    assert page.inner_text("#count") == f"{ok} of {len(rows)} episodes" and ok < len(rows)
    assert page.inner_text("#success-rate") == "100.0%"
    assert page.locator("#episodes tbody tr").count() == ok
    page.fill("#f-q", "zzzz-no-such-text")
    wait(page, "#/run/after?success=true&q=zzzz-no-such-text")
    assert page.inner_text("#count") == f"0 of {len(rows)} episodes"
    assert not page.errors, page.errors


def test_episode_page_shows_the_evidence_chain_and_the_token_colouring(browser, demo):
    page = open_page(browser, demo, "#/run/after/ep/1")
    steps = page.locator("#chain .ev-step")
    assert steps.count() >= 1 and steps.first.get_attribute("data-status") == "read"
    assert page.locator("#turns .turn").count() >= 2 and page.locator(".hit.evidence").count() >= 1
    shot(page, "episode")
    recs = list(read_jsonl(train_run() / "rollouts.jsonl"))
    k = next(i for i, r in enumerate(recs) if not r["success"])
    page = open_page(browser, demo, f"#/run/rl/ep/{k}")
    toks = page.locator("#tokens .tok")
    assert toks.count() == len(recs[k]["tokens"])
    model = [i for i, m in enumerate(recs[k]["env_mask"]) if m]
    obs = [i for i, m in enumerate(recs[k]["env_mask"]) if not m]
    colour = lambda i: toks.nth(i).evaluate("e => e.style.backgroundColor")  # noqa: E731
    rhat = [colour(i) for i in model[:5]]
    assert all(c.startswith("rgba(") for c in rhat) and (not obs or colour(obs[0]) == "")
    page.click("#mode-omega")
    omega = [colour(i) for i in model[:5]]
    assert omega != rhat and all(c.startswith("rgba(26, 127, 55") for c in omega)
    assert float(page.inner_text("#w-d")) == pytest.approx(recs[k]["trac"]["w_d"], abs=1e-3)
    assert page.locator("#group-outcomes span").count() == len(recs[k]["trac"]["group_success"])
    assert page.locator("#chain .ev-step").count() >= 1
    page.click("#mode-r_hat")
    shot(page, "tokens")
    assert not page.errors, page.errors


def test_compare_view_shows_the_flipped_tasks(browser, demo):
    before = {r["task_id"]: r["em"] >= 1 for r in read_jsonl(eval_before() / "trajectories.jsonl")}
    after = {r["task_id"]: r["em"] >= 1 for r in read_jsonl(eval_after() / "trajectories.jsonl")}
    fixed = [t for t in before if not before[t] and after[t]]
    page = open_page(browser, demo, "#/compare/before/after")
    assert page.inner_text("#flipped").startswith(f"{len(fixed)} fixed")
    shot(page, "compare")
    page.click("#status-fixed")
    wait(page, "#/compare/before/after?status=fixed")
    assert page.locator("#compare tbody tr").count() == len(fixed)
    page.locator("#compare tbody tr").first.click()
    wait(page, f"#/compare/before/after/task/{fixed[0]}")
    cols = page.locator("#side-by-side .compare-col")
    assert (
        cols.count() == 2
        and cols.nth(1).locator("#chain .ev-step").first.get_attribute("data-status") == "read"
    )
    shot(page, "side-by-side")
    page.locator("#chain .ev-step a").first.click()  # every entity links to its world page
    page.wait_for_selector("#world #article")
    assert page.locator("#world #edges tr").count() > 1
    shot(page, "world")
    assert not page.errors, page.errors


def test_ten_thousand_episodes_load_without_freezing(browser, capsys):
    path = big_eval(10_000)
    t0 = time.perf_counter()
    with serve(str(path), "--world", str(world())) as url:
        index = time.perf_counter() - t0
        t0 = time.perf_counter()
        page = open_page(browser, url, "#/run/big")
        first = time.perf_counter() - t0
        assert page.inner_text("#count") == "10,000 of 10,000 episodes"
        assert page.locator("#episodes tbody tr").count() == 100
        t0 = time.perf_counter()
        page.select_option("#f-type", "chain")
        wait(page, "#/run/big?type=chain")
        filtered = time.perf_counter() - t0
        t0 = time.perf_counter()
        page.click("#next")
        wait(page, "#/run/big?type=chain&offset=100")
        paged = time.perf_counter() - t0
        assert page.inner_text("#page-info").startswith("101–200 of ")
    with capsys.disabled():
        print(
            f"\n10k episodes ({path.joinpath('trajectories.jsonl').stat().st_size / 1e6:.0f} MB): server up "
            f"{index:.2f} s, first page {first:.2f} s, filter {filtered:.2f} s, next page {paged:.2f} s"
        )
    assert first < 60 and filtered < 60  # a safety bound only; the figures go to docs/view.md
