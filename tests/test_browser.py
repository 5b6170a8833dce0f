"""report.html in a real browser: Debian's headless Chromium driven by Playwright.

The page is opened from a file:// URL, as a reviewer would open it. The
tests check that it renders without console errors or network requests,
that evidence spans are highlighted, that sorting, filtering and paging
work, and that hostile note text shows as text and runs nothing.

Chromium comes from Debian (``.ci/browser.sh``), never from
``playwright install``. Without it these tests skip, saying why.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.report.html import CHROMIUM_ARGS, CHROMIUM_PATH, write_html_report

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM_PATH).exists(),
                       reason=f"headless Chromium not installed at {CHROMIUM_PATH} (run .ci/browser.sh)"),
]

HOSTILE_SNIPPET = ('Patient wrote <script>window.__pwned=1</script> and '
                   '<img src=x onerror="window.__pwned=2"> and '
                   '<a href="javascript:window.__pwned=3">javascript:window.__pwned=3</a> '
                   '</script> about an L2 fracture.')
HOSTILE_ID = "<img src=x onerror=window.__pwned=4>"
ACUTE = "There is an acute compression fracture of L1 with marrow oedema on STIR. No retropulsion."
TIERS = ("candidate", "needs_imaging", "contraindicated", "not_indicated", "no_fracture")


def _mention(person, note, concept, snippet, text, **attributes):
    local = snippet.index(text)
    row = {"note_id": note, "person_id": person, "note_date": pd.Timestamp("2024-03-02"),
           "snippet": snippet, "snippet_start": 10, "start": 10 + local, "end": 10 + local + len(text),
           "lexical_variant": text, "concept": concept, "section": "findings", "negated": False,
           "uncertain": False, "historical": False, "hypothetical": False, "family": False,
           "levels": "", "acuity": "", "aetiology": "", "modality": "MRI", "new": False}
    row.update(attributes)
    return row


def _frames():
    """60 patients: a highlighted candidate, a hostile one, and 58 fillers with known scores."""
    rng = np.random.default_rng(3)
    fillers = [f"P{i:03d}" for i in range(1, 59)]
    person_ids = ["CAND-1", HOSTILE_ID, *fillers]
    tiers = ["candidate", "needs_imaging", *(TIERS[i % 5] for i in range(58))]
    scores = [95.0, 41.0, *rng.permutation(np.arange(58)).astype(float).tolist()]
    patients = pd.DataFrame({
        "person_id": person_ids, "tier": tiers, "score": scores,
        "fracture_levels": ["L1", "L2", *(["T12"] * 58)],
        "acute_levels": ["L1", "", *([""] * 58)],
        "candidate_levels": ["L1", "", *([""] * 58)],
        "index_date": pd.Timestamp("2024-03-02"),
        "n_notes": 1, "oedema": [True, False, *([False] * 58)],
        "reasons": ["acute L1 fracture with marrow oedema; no local contraindication",
                    'indeterminate L2 <img src=x onerror="window.__pwned=5">',
                    *(f"filler reason {i}" for i in range(58))],
    })
    mentions = pd.DataFrame([
        _mention("CAND-1", "N1", "FRACTURE", ACUTE, "acute compression fracture", levels="L1", acuity="acute"),
        _mention("CAND-1", "N1", "LEVEL", ACUTE, "L1", levels="L1"),
        _mention("CAND-1", "N1", "OEDEMA", ACUTE, "marrow oedema on STIR", levels="L1"),
        _mention("CAND-1", "N1", "RETROPULSION", ACUTE, "retropulsion", negated=True),
        _mention(HOSTILE_ID, "N2", "FRACTURE", HOSTILE_SNIPPET, "fracture", levels="L2"),
    ])
    notes = pd.DataFrame({"note_id": ["N1", "N2"], "person_id": ["CAND-1", HOSTILE_ID],
                          "note_date": ["2024-03-02", "2024-03-02"],
                          "note_title": ["MRI LUMBAR SPINE", '<svg onload="window.__pwned=6">'],
                          "status": ["processed", "processed"]})
    manifest = {"versions": {"vertebro": "0.1.0"}, "input": {"description": "browser-test.csv", "rows": 2}}
    return {"patients": patients, "mentions": mentions, "notes": notes, "manifest": manifest}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_html_report(path, **_frames())
    return path


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright  # dev dependency

    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=list(CHROMIUM_ARGS),
                                              headless=True)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()


class Page:
    """An opened report with the console errors and requests it produced."""

    def __init__(self, browser, report: Path):
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page = browser.new_page(viewport={"width": 1360, "height": 900})
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.goto(report.resolve().as_uri())
        self.page.wait_for_selector("#patient-table tbody tr.row")

    def column(self, name: str) -> list[str]:
        return self.page.eval_on_selector_all(
            f"#patient-table tbody tr.row td.col-{name}", "cells => cells.map(cell => cell.textContent)")

    def sort_by(self, key: str) -> str:
        self.page.click(f'#patient-table th[data-key="{key}"] button')
        return self.page.get_attribute(f'#patient-table th[data-key="{key}"]', "aria-sort")

    def show_all_rows(self) -> None:
        self.page.select_option("#page-size", "250")


@pytest.fixture
def opened(browser, report):
    page = Page(browser, report)
    yield page
    page.page.close()


def test_page_renders_without_errors_or_network(opened, report):
    page = opened.page
    assert page.title() == "vertebro screening report"
    assert page.locator("#patient-table tbody tr.row").count() == 25
    assert page.text_content("#result-count") == "Showing 1–25 of 60 patients"
    assert page.text_content("#page-info") == "Page 1 of 3"
    # Both plots decoded and drew (an image that failed has naturalWidth 0).
    widths = page.eval_on_selector_all("img.plot", "images => images.map(image => image.naturalWidth)")
    assert len(widths) == 2 and all(width > 100 for width in widths)
    # Nothing sticks out sideways at a common desktop width.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1360
    assert opened.errors == []
    assert [url for url in opened.requests if not url.startswith("data:")] == [report.resolve().as_uri()]


def test_candidate_evidence_is_highlighted(opened):
    page = opened.page
    detail = page.locator('#patient-table tr.detail[data-person="CAND-1"]')
    assert detail.count() == 1  # candidates open expanded
    marks = detail.locator("blockquote.snippet mark.hl")
    assert marks.evaluate_all("marks => marks.map(mark => [mark.dataset.concept, mark.textContent])") == [
        ["FRACTURE", "acute compression fracture"], ["LEVEL", "L1"],
        ["OEDEMA", "marrow oedema on STIR"], ["RETROPULSION", "retropulsion"]]
    assert detail.locator("blockquote.snippet").text_content() == ACUTE
    fracture = detail.locator("mark.c-FRACTURE").first
    assert fracture.evaluate("mark => getComputedStyle(mark).backgroundColor") == "rgb(255, 216, 168)"
    negated = detail.locator("mark.c-RETROPULSION")
    assert "st-negated" in negated.get_attribute("class")
    assert "line-through" in negated.evaluate("mark => getComputedStyle(mark).textDecorationLine")
    chips = detail.locator("ul.mentions li").all_text_contents()
    assert any("acuity: acute" in chip and "levels: L1" in chip for chip in chips)
    assert any("negated" in chip for chip in chips)
    assert page.locator(".legend .hl").count() >= 12


def test_sorting_by_clicking_headers(opened):
    opened.show_all_rows()
    assert opened.sort_by("score") == "descending"
    scores = [float(text) for text in opened.column("score")]
    assert len(scores) == 60 and scores == sorted(scores, reverse=True)
    assert opened.sort_by("score") == "ascending"
    scores = [float(text) for text in opened.column("score")]
    assert scores == sorted(scores)

    assert opened.sort_by("id") == "ascending"
    ids = opened.column("id")
    fillers = [person for person in ids if re.fullmatch(r"P\d{3}", person)]
    assert fillers == sorted(fillers) and len(fillers) == 58

    assert opened.sort_by("tier") == "ascending"
    ranks = [TIERS.index(tier) for tier in opened.page.eval_on_selector_all(
        "#patient-table tbody tr.row", "rows => rows.map(row => row.dataset.tier)")]
    assert ranks == sorted(ranks)
    assert opened.page.get_attribute('#patient-table th[data-key="score"]', "aria-sort") == "none"
    assert opened.errors == []


def test_filtering_by_text_and_tier(opened):
    page = opened.page
    page.fill("#filter-text", "P01")
    assert sorted(opened.column("id")) == [f"P{i:03d}" for i in range(10, 20)]
    assert page.text_content("#result-count") == "Showing 1–10 of 10 patients (filtered from 60)"

    page.fill("#filter-text", "")
    page.select_option("#filter-tier", "contraindicated")
    tiers = page.eval_on_selector_all("#patient-table tbody tr.row", "rows => rows.map(row => row.dataset.tier)")
    assert tiers == ["contraindicated"] * 12

    page.fill("#filter-text", "no such patient")
    assert page.locator("#patient-table tbody tr.row").count() == 0
    assert page.text_content("#patient-table tbody") == "No patients match the filter."
    page.select_option("#filter-tier", "")
    page.fill("#filter-text", "")
    assert page.text_content("#result-count") == "Showing 1–25 of 60 patients"
    assert opened.errors == []


def test_paging(opened):
    page = opened.page
    first = opened.column("id")
    page.click("#page-next")
    assert page.text_content("#page-info") == "Page 2 of 3"
    second = opened.column("id")
    assert len(second) == 25 and not set(first) & set(second)
    page.click("#page-next")
    assert len(opened.column("id")) == 10 and page.is_disabled("#page-next")
    page.click("#page-prev")
    assert opened.column("id") == second


def test_hostile_note_text_shows_as_text_and_runs_nothing(opened):
    page = opened.page
    page.fill("#filter-text", "window.__pwned")  # matches the hostile patient's id and reasons
    row = page.locator("#patient-table tbody tr.row")
    assert row.count() == 1
    assert row.locator("td.col-id").text_content() == HOSTILE_ID
    row.locator("button.toggle").click()
    detail = page.locator("#patient-table tr.detail")
    assert detail.locator("blockquote.snippet").text_content() == HOSTILE_SNIPPET
    assert detail.locator("mark.c-FRACTURE").text_content() == "fracture"
    assert detail.locator(".note-title").text_content() == '<svg onload="window.__pwned=6">'
    assert 'indeterminate L2 <img src=x onerror="window.__pwned=5">' in detail.text_content()
    page.wait_for_timeout(200)  # give any injected handler a chance to fire
    assert page.evaluate("typeof window.__pwned") == "undefined"
    # Nothing from the notes became an element: the only images are the two plots, no links at all.
    assert page.locator("img").count() == 2
    assert page.locator("#patients img, #patients a, #patients svg, #patients script").count() == 0
    assert page.locator("a").count() == 0
    assert page.locator("script").count() == 4
    assert opened.errors == []


def test_screenshot_helper(report, tmp_path):
    # In a subprocess: this module's Playwright instance owns the event loop here.
    png = tmp_path / "report.png"
    subprocess.run([sys.executable, "-m", "pipeline.report.html", str(report), str(png)],
                   check=True, timeout=120, cwd=Path(__file__).parents[1])
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
