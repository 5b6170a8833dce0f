"""report.html and report.xlsx from small hand-made frames (docs/design.md §2–§4).

The browser behaviour (sorting, filtering, scripts not running) is in
test_browser.py; these tests read the files.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import time
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook

from pipeline.report import excel, html
from pipeline.report.excel import TRUNCATION_MARKER, write_excel_report
from pipeline.report.html import (
    cohort_funnel,
    highlight_segments,
    render_html_report,
    script_json,
    write_html_report,
)

from .conftest import REPO

HOSTILE = ('Pt typed <script>alert("x")</script> and <img src=x onerror="alert(2)"> '
           'and <a href="javascript:alert(3)">javascript:alert(3)</a> then </script><!-- '
           'before the L2 fracture.')
FORMULA = '=HYPERLINK("http://evil.example/","click") L3 fracture'


def make_mention(person, note, date, concept, snippet, snippet_start, text, nth=0, **attributes):
    """One mentions-frame row (design §3) for ``text`` inside ``snippet``."""
    local = -1
    for _ in range(nth + 1):
        local = snippet.index(text, local + 1)
    row = {
        "note_nlp_id": abs(hash((note, snippet_start + local, concept))) % 2**62,
        "note_id": note, "person_id": person, "note_date": pd.Timestamp(date),
        "snippet": snippet, "snippet_start": snippet_start, "offset": str(snippet_start + local),
        "lexical_variant": text, "concept": concept,
        "start": snippet_start + local, "end": snippet_start + local + len(text),
        "section": "findings", "negated": False, "uncertain": False, "historical": False,
        "hypothetical": False, "family": False, "levels": "", "acuity": "", "aetiology": "",
        "scope": "", "lab": "", "value": np.nan, "unit": "", "corrected": "", "med_status": "",
        "modality": "MRI", "new": False,
    }
    row.update(attributes)
    denied = row["negated"] or row["uncertain"] or row["hypothetical"] or row["family"]
    row["term_exists"] = "N" if denied else "Y"
    row["term_temporal"] = "historical" if row["historical"] else "present"
    return row


ACUTE = "There is an acute compression fracture of L1 with marrow oedema on STIR. No retropulsion."
CHRONIC = "Chronic wedge deformity of T9, unchanged from prior."
BURST = "Acute burst fracture of T12 with retropulsed fragment narrowing the canal."


@pytest.fixture
def frames():
    """Five patients, one per tier; P002's note text is hostile."""
    mentions = pd.DataFrame([
        make_mention("P001", "N1", "2024-03-02", "FRACTURE", ACUTE, 100, "acute compression fracture",
                     levels="L1", acuity="acute", aetiology="osteoporotic"),
        make_mention("P001", "N1", "2024-03-02", "LEVEL", ACUTE, 100, "L1", levels="L1"),
        make_mention("P001", "N1", "2024-03-02", "OEDEMA", ACUTE, 100, "marrow oedema on STIR", levels="L1"),
        make_mention("P001", "N1", "2024-03-02", "RETROPULSION", ACUTE, 100, "retropulsion",
                     negated=True, levels="L1"),
        make_mention("P001", "N2", "2023-01-10", "FRACTURE", CHRONIC, 40, "wedge deformity",
                     levels="T9", acuity="chronic", modality="XR"),
        make_mention("P002", "N3", "2024-02-01", "FRACTURE", HOSTILE, 0, "fracture", levels="L2"),
        make_mention("P003", "N5", "2024-01-04", "FRACTURE", BURST, 0, "Acute burst fracture",
                     levels="T12", acuity="acute"),
        make_mention("P003", "N5", "2024-01-04", "RETROPULSION", BURST, 0, "retropulsed fragment", levels="T12"),
        make_mention("P004", "N6", "2022-05-05", "FRACTURE", FORMULA, 0, "fracture", levels="L3",
                     acuity="healed", historical=True),
        make_mention("P005", "N7", "2024-01-01", "FRACTURE", "No acute fracture.", 0, "fracture", negated=True),
    ])
    notes = pd.DataFrame({
        "note_id": ["N1", "N2", "N3", "N5", "N6", "N7", "N8"],
        "person_id": ["P001", "P001", "P002", "P003", "P004", "P005", "P005"],
        "note_date": ["2024-03-02", "2023-01-10", "2024-02-01", "2024-01-04", "2022-05-05", "2024-01-01", ""],
        "note_title": ["MRI LUMBAR SPINE", "XR THORACIC SPINE", '<b onmouseover="alert(4)">Note</b>',
                       "CT SPINE", "XR LUMBAR", "XR", ""],
        "status": ["processed"] * 6 + ["empty"],
        "error": [""] * 7,
        "n_mentions": [4, 1, 1, 2, 1, 1, 0],
    })
    patients = pd.DataFrame({
        "person_id": ["P005", "P004", "P003", "P002", "P001"],
        "tier": ["no_fracture", "not_indicated", "contraindicated", "needs_imaging", "candidate"],
        "score": [0.0, 5.0, 70.0, 40.0, 82.5],
        "fracture": [False, True, True, True, True],
        "acute_fracture": [False, False, True, False, True],
        "oedema": [False, False, False, False, True],
        "retropulsion": [False, False, True, False, False],
        "epidural_disease": [False] * 5, "infection": [False] * 5, "coagulopathy": [False] * 5,
        "anticoagulant": [False] * 5, "malignancy": [False] * 5,
        "fracture_levels": ["", "L3", "T12", "L2", "T9;L1"],
        "acute_levels": ["", "", "T12", "", "L1"],
        "candidate_levels": ["", "", "", "", "L1"],
        "index_date": [pd.NaT, pd.NaT, pd.Timestamp("2024-01-04"), pd.Timestamp("2024-02-01"),
                       pd.Timestamp("2024-03-02")],
        "n_notes": [2, 1, 1, 1, 2],
        "reasons": ["no affirmed fracture", "only chronic levels: L3", "retropulsion at T12",
                    "indeterminate L2 <script>alert(5)</script>", "acute L1 (oedema); no contraindication"],
        "evidence": ["", "", "", "", ""],
        "indeterminate_levels": ["", "", "", "L2", ""],
        "chronic_levels": ["", "L3", "", "", "T9"],
    })
    manifest = {
        "tool": "vertebro 0.1.0",
        "versions": {"vertebro": "0.1.0", "spacy": "3.7.5", "medspacy": "1.3.1",
                     "pandas": "2.3.3", "python": "3.11.2"},
        "input": {"description": "export <b>2024</b>.csv", "fingerprint": "sha256:abc123", "rows": 7},
        "config_hash": "sha256:feedbeef",
        "counts": {"status": {"processed": 6, "no_trigger": 0, "empty": 1, "error": 0},
                   "tier": {"candidate": 1}},
        "timings": {"read": 0.5, "nlp": 2.25},
        "started_at": "2024-03-10T09:15:02",
    }
    return {"patients": patients, "mentions": mentions, "notes": notes, "manifest": manifest}


@pytest.fixture
def page(frames):
    return render_html_report(**frames)


class _Collector(HTMLParser):
    """Tags with their attributes, and the text inside <script> blocks by type."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[tuple[dict[str, str], str]] = []
        self._script: dict[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = {name: value or "" for name, value in attrs}
        self.tags.append((tag, attributes))
        if tag == "script":
            self._script = attributes
            self.scripts.append((attributes, ""))

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None

    def handle_data(self, data):
        if self._script is not None:
            attributes, text = self.scripts[-1]
            self.scripts[-1] = (attributes, text + data)


def parse(page: str) -> _Collector:
    collector = _Collector()
    collector.feed(page)
    return collector


def json_block(page: str, block_id: str):
    for attributes, text in parse(page).scripts:
        if attributes.get("id") == block_id:
            assert attributes.get("type") == "application/json"
            return json.loads(text)
    raise AssertionError(f"no script block {block_id}")


# --------------------------------------------------------------------------
# escaping and self-containment


def test_hostile_note_text_never_appears_as_markup(page):
    for raw in ('<script>alert("x")</script>', "<img src=x", 'onerror="alert(2)"',
                '<a href="javascript:', "<script>alert(5)", '<b onmouseover', "<b>2024</b>"):
        assert raw not in page
    # Only the page's own four script elements exist: three JSON blocks and the code.
    scripts = parse(page).scripts
    assert [attributes.get("type", "") for attributes, _ in scripts] == [
        "application/json", "application/json", "application/json", ""]
    assert page.count("<script") == 4 and page.count("</script>") == 4


def test_hostile_text_survives_as_data(page):
    evidence = json_block(page, "vb-evidence")
    sentence = "".join(piece for piece, _ in evidence["P002"]["items"][0]["seg"])
    assert sentence == HOSTILE
    assert evidence["P002"]["items"][0]["title"] == '<b onmouseover="alert(4)">Note</b>'
    patients = {row["id"]: row for row in json_block(page, "vb-patients")}
    assert patients["P002"]["reasons"] == ["indeterminate L2 <script>alert(5)</script>"]
    # The manifest text is HTML-escaped in the page.
    assert "export &lt;b&gt;2024&lt;/b&gt;.csv" in page


def test_script_json_cannot_close_its_block():
    text = script_json({"x": "</script><script>alert(1)</script><!-- & \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"x": "</script><script>alert(1)</script><!-- & \u2028"}


def test_no_external_references(page):
    for tag, attributes in parse(page).tags:
        for name in ("src", "href", "action", "srcset", "data", "poster", "background"):
            value = attributes.get(name, "").strip().lower()
            assert not value.startswith(("http:", "https:", "//", "javascript:", "ftp:")), (tag, name, value)
            if tag == "img" and name == "src":
                assert value.startswith("data:image/")
    # Outside the JSON data (where note text may quote a URL as text), no URL at all.
    markup = re.sub(r'(<script type="application/json"[^>]*>).*?</script>', r"\1</script>", page,
                    flags=re.DOTALL)
    assert "http://" not in markup and "https://" not in markup
    assert "@import" not in markup and "url(" not in markup
    # The script may only run because its hash is in the Content-Security-Policy.
    policy = next(attributes["content"] for tag, attributes in parse(page).tags
                  if tag == "meta" and attributes.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in policy and "'unsafe-inline'" not in policy.split("script-src")[1]


# --------------------------------------------------------------------------
# summary, funnel, plots


def test_cohort_funnel_numbers(frames, page):
    assert cohort_funnel(frames["patients"]) == [
        ("Patients", 5), ("With a fracture", 4), ("Acute or indeterminate", 3),
        ("No contraindication", 2), ("Candidates", 1)]
    assert re.findall(r'<tr data-stage="\d">.*?data-count="(\d+)"', page) == ["5", "4", "3", "2", "1"]
    tiers = dict(re.findall(r'<tr data-tier="(\w+)">.*?data-count="(\d+)"', page))
    assert tiers == {"candidate": "1", "needs_imaging": "1", "contraindicated": "1",
                     "not_indicated": "1", "no_fracture": "1"}


def test_plots_are_embedded_svg(page):
    images = [attributes for tag, attributes in parse(page).tags
              if tag == "img" and "plot" in attributes.get("class", "")]
    assert len(images) == 2
    for image in images:
        prefix = "data:image/svg+xml;base64,"
        assert image["src"].startswith(prefix)
        svg = base64.b64decode(image["src"][len(prefix):]).decode("utf-8")
        assert svg.startswith("<svg") and svg.count("<rect") == 5
        assert image["alt"]
    assert "Cohort funnel: Patients 5, With a fracture 4" in page


def _bars(svg: str) -> list[tuple[float, float]]:
    """(x, width) of each bar, top to bottom."""
    return [(float(x), float(width)) for x, width in re.findall(r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', svg)]


def test_funnel_bars_are_centred_and_proportional():
    from pipeline.report.plots import funnel_svg

    svg = funnel_svg([("Patients", 200), ("With a fracture", 50), ("Candidates", 0)])
    (x0, w0), (x1, w1), (x2, w2) = _bars(svg)
    assert w1 == pytest.approx(w0 / 4, abs=0.1) and w2 == 0
    assert x0 + w0 / 2 == pytest.approx(x1 + w1 / 2, abs=0.1) == pytest.approx(x2, abs=0.1)
    assert "200  (100%)" in svg and "50  (25%)" in svg and "0  (0%)" in svg
    assert re.findall(r">([A-Za-z ]+)</text>", svg) == ["Patients", "With a fracture", "Candidates"]
    assert funnel_svg([("Patients", 200), ("With a fracture", 50), ("Candidates", 0)]) == svg  # deterministic


def test_tier_plot_orders_tiers_and_escapes_unknown_ones():
    from pipeline.report.plots import TIER_COLOURS, tier_counts_svg

    svg = tier_counts_svg({"no_fracture": 30, "candidate": 10, "<b>new&tier": 3})
    bars = _bars(svg)
    assert [width for _, width in bars][:2] == [pytest.approx(bars[4][1] / 3, abs=0.1), 0.0]  # needs_imaging drawn as 0
    assert len(bars) == 6 and len({x for x, _ in bars}) == 1  # every bar starts at the axis
    assert re.findall(r'fill="(#[0-9a-f]{6})"/>', svg)[:5] == [TIER_COLOURS[tier] for tier in (
        "candidate", "needs_imaging", "contraindicated", "not_indicated", "no_fracture")]
    assert "&lt;b&gt;new&amp;tier" in svg and "<b>" not in svg
    assert tier_counts_svg({}).count("<rect") == 5  # an empty cohort still draws its axis rows


def test_run_summary(page):
    for text in ("vertebro <b>0.1.0</b>", "spaCy <b>3.7.5</b>", "medspaCy <b>1.3.1</b>",
                 "pandas <b>2.3.3</b>", "Python <b>3.11.2</b>", "sha256:feedbeef",
                 "sha256:abc123", "2024-03-10T09:15:02", "nlp <b>2.2 s</b>"):
        assert text in page
    statuses = dict(re.findall(r'<tr data-status="(\w+)">.*?<td class="num">(\d+)</td>', page))
    assert statuses == {"processed": "6", "no_trigger": "0", "empty": "1", "error": "0"}


def test_missing_manifest_keys_and_empty_frames(frames):
    page = render_html_report(patients=frames["patients"], mentions=frames["mentions"],
                              notes=frames["notes"], manifest={})
    # Status counts fall back to the notes frame.
    assert re.findall(r'<tr data-status="(\w+)">.*?<td class="num">(\d+)</td>', page)[:3] == [
        ("processed", "6"), ("no_trigger", "0"), ("empty", "1")]
    empty = render_html_report(patients=pd.DataFrame(columns=["person_id", "tier"]),
                               mentions=pd.DataFrame(), notes=pd.DataFrame(), manifest=None)
    assert json_block(empty, "vb-patients") == [] and json_block(empty, "vb-evidence") == {}


# --------------------------------------------------------------------------
# patient rows and evidence


def test_patient_rows_in_tier_order_with_level_statuses(page):
    rows = json_block(page, "vb-patients")
    assert [row["id"] for row in rows] == ["P001", "P002", "P003", "P004", "P005"]
    first = rows[0]
    assert first["levels"] == [["T9", "chronic"], ["L1", "candidate"]]
    assert first["score"] == 82.5 and first["date"] == "2024-03-02" and first["notes"] == 2
    assert first["reasons"] == ["acute L1 (oedema)", "no contraindication"]
    assert first["flags"] == ["oedema"]
    assert first["ev"] == {"total": 4, "shown": 4, "state": "full"}
    assert rows[2]["flags"] == ["retropulsion"]


def test_evidence_highlights_several_mentions_in_one_sentence(page):
    items = json_block(page, "vb-evidence")["P001"]["items"]
    assert [item["note"] for item in items] == ["N1", "N2"]  # newest note first
    acute = items[0]
    assert acute["title"] == "MRI LUMBAR SPINE" and acute["date"] == "2024-03-02"
    highlighted = [(piece, acute["m"][index]["c"]) for piece, index in acute["seg"] if index >= 0]
    assert highlighted == [("acute compression fracture", "FRACTURE"), ("L1", "LEVEL"),
                           ("marrow oedema on STIR", "OEDEMA"), ("retropulsion", "RETROPULSION")]
    assert "".join(piece for piece, _ in acute["seg"]) == ACUTE
    by_concept = {mention["c"]: mention for mention in acute["m"]}
    assert by_concept["RETROPULSION"]["st"] == "negated"
    assert "negated" in by_concept["RETROPULSION"]["a"]
    assert {"acuity: acute", "levels: L1", "aetiology: osteoporotic"} <= set(by_concept["FRACTURE"]["a"])
    historical = json_block(page, "vb-evidence")["P004"]["items"][0]["m"][0]
    assert historical["st"] == "historical" and "acuity: healed" in historical["a"]


def test_highlight_segments_nested_overlapping_and_out_of_range():
    text = "acute L1 fracture and oedema"
    assert highlight_segments(text, [(0, 17, 0), (6, 8, 1), (22, 28, 2)]) == [
        ("acute ", 0), ("L1", 1), (" fracture", 0), (" and ", None), ("oedema", 2)]
    # Overlap: the shared piece goes to the narrower span; joining gives the text back.
    segments = highlight_segments(text, [(0, 12, 0), (6, 17, 1), (-5, 2, 2), (40, 50, 3), (5, 5, 4)])
    assert "".join(piece for piece, _ in segments) == text
    assert segments[0] == ("ac", 2)
    assert highlight_segments("", [(0, 3, 0)]) == [("", None)]


def test_mention_offsets_that_miss_the_sentence_are_found_by_text(frames):
    mentions = frames["mentions"].copy()
    fracture = mentions.index[(mentions["person_id"] == "P003") & (mentions["concept"] == "FRACTURE")][0]
    mentions.loc[fracture, ["start", "end"]] = [500, 520]  # stale offsets
    page = render_html_report(**{**frames, "mentions": mentions})
    item = json_block(page, "vb-evidence")["P003"]["items"][0]
    highlighted = [piece for piece, index in item["seg"] if index >= 0]
    assert highlighted == ["Acute burst fracture", "retropulsed fragment"]


def test_overlapping_snippets_of_one_note_are_merged(frames):
    note = "Acute L1 fracture. Marrow oedema at L1. No retropulsion."
    mentions = pd.DataFrame([
        make_mention("P9", "N9", "2024-01-01", "FRACTURE", note[:38], 0, "Acute L1 fracture", levels="L1"),
        make_mention("P9", "N9", "2024-01-01", "OEDEMA", note[19:], 19, "Marrow oedema", levels="L1"),
    ])
    patients = pd.DataFrame({"person_id": ["P9"], "tier": ["candidate"], "score": [50.0]})
    page = render_html_report(patients=patients, mentions=mentions, notes=pd.DataFrame(), manifest={})
    items = json_block(page, "vb-evidence")["P9"]["items"]
    assert len(items) == 1
    assert "".join(piece for piece, _ in items[0]["seg"]) == note


def test_evidence_is_capped_per_patient_and_the_page_says_so():
    sentences = [f"Sentence {i}: acute fracture of L{i % 5 + 1}." for i in range(30)]
    mentions = pd.DataFrame([
        make_mention("P1", f"N{i}", f"2024-01-{i + 1:02d}", "FRACTURE", text, 0, "fracture")
        for i, text in enumerate(sentences)])
    patients = pd.DataFrame({"person_id": ["P1"], "tier": ["candidate"], "score": [90.0]})
    page = render_html_report(patients=patients, mentions=mentions, notes=pd.DataFrame(), manifest={})
    evidence = json_block(page, "vb-evidence")["P1"]
    assert len(evidence["items"]) == html.MAX_EVIDENCE_PER_PATIENT
    assert evidence["items"][0]["date"] == "2024-01-30"  # newest first
    assert json_block(page, "vb-patients")[0]["ev"] == {"total": 30, "shown": 20, "state": "capped"}
    assert f"up to {html.MAX_EVIDENCE_PER_PATIENT} mentions per patient" in page
    assert "1 patient has more mentions than shown" in page


def test_evidence_budget_omits_the_rest_and_says_so(frames, monkeypatch):
    monkeypatch.setattr(html, "MAX_EVIDENCE_BYTES", 1)
    page = render_html_report(**frames)
    evidence = json_block(page, "vb-evidence")
    assert list(evidence) == ["P001"]  # the first patient in table order, then the budget is spent
    states = {row["id"]: row["ev"]["state"] for row in json_block(page, "vb-patients")}
    assert states["P002"] == "omitted"
    assert "is not embedded, to keep this page small" in page


def test_ten_thousand_patients_stay_well_below_20_mb(tmp_path):
    """Worst case: every patient has 25 distinct 250-character sentences."""
    rng = np.random.default_rng(7)
    n_patients, per_patient = 10_000, 25
    person = np.repeat([f"P{i:05d}" for i in range(n_patients)], per_patient)
    sentence = ("Acute compression fracture of L1 with marrow oedema; " * 5)[:250]
    mentions = pd.DataFrame({
        "person_id": person,
        "note_id": [f"{p}-N{i}" for p, i in zip(person, np.tile(np.arange(per_patient), n_patients))],
        "note_date": pd.Timestamp("2024-01-01"),
        "concept": "FRACTURE", "snippet": sentence, "snippet_start": 0, "start": 6, "end": 32,
        "lexical_variant": "compression fracture", "levels": "L1", "acuity": "acute",
        "negated": False, "uncertain": False, "hypothetical": False, "family": False,
        "historical": False,
    })
    tiers = np.array(html.TIER_ORDER)[rng.integers(0, 5, n_patients)]
    patients = pd.DataFrame({
        "person_id": [f"P{i:05d}" for i in range(n_patients)], "tier": tiers,
        "score": rng.uniform(0, 100, n_patients).round(1), "fracture_levels": "L1",
        "acute_levels": "L1", "n_notes": per_patient,
        "reasons": "acute L1 fracture with marrow oedema; no local contraindication",
    })
    path = tmp_path / "report.html"
    write_html_report(path, patients=patients, mentions=mentions, notes=pd.DataFrame(), manifest={})
    size = path.stat().st_size
    assert size < 16_000_000, size
    page = path.read_text(encoding="utf-8")
    assert len(json_block(page, "vb-patients")) == n_patients
    assert "is not embedded, to keep this page small" in page


def test_write_replaces_the_file_owner_only_and_leaves_no_temporary(frames, tmp_path):
    path = tmp_path / "report.html"
    path.write_text("old")
    write_html_report(path, **frames)
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert path.stat().st_mode & 0o077 == 0
    workbook = tmp_path / "report.xlsx"
    write_excel_report(workbook, patients=frames["patients"], mentions=frames["mentions"])
    assert workbook.stat().st_mode & 0o077 == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.xlsx"]


def test_templates_ship_inside_the_package():
    from importlib import resources
    folder = resources.files("pipeline.report").joinpath("templates")
    assert {"report.html", "report.css", "report.js"} <= {entry.name for entry in folder.iterdir()}


def test_page_script_builds_dom_without_html_parsing():
    from importlib import resources
    script = resources.files("pipeline.report").joinpath("templates", "report.js").read_text()
    script = re.sub(r"/\*.*?\*/", "", script, flags=re.DOTALL)  # the comments may name the sinks
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "setAttribute(\"href", "setAttribute(\"src", ".href", ".src"):
        assert sink not in script, sink


# --------------------------------------------------------------------------
# Excel


def _workbook(path):
    return load_workbook(path)


def test_excel_sheets_rows_and_no_formulas(frames, tmp_path):
    path = tmp_path / "report.xlsx"
    write_excel_report(path, patients=frames["patients"], mentions=frames["mentions"])
    workbook = _workbook(path)
    assert workbook.sheetnames == ["Patients", "Evidence"]
    patients = list(workbook["Patients"].iter_rows(values_only=True))
    assert patients[0][:3] == ("person_id", "tier", "score")
    assert [row[0] for row in patients[1:]] == ["P001", "P002", "P003", "P004", "P005"]
    evidence = list(workbook["Evidence"].iter_rows(values_only=True))
    header = evidence[0]
    rows = [dict(zip(header, row)) for row in evidence[1:]]
    # Affirmed, non-LEVEL mentions only: not the negated retropulsion, the LEVEL or P005's "no fracture".
    assert sorted((row["person_id"], row["concept"]) for row in rows) == [
        ("P001", "FRACTURE"), ("P001", "FRACTURE"), ("P001", "OEDEMA"), ("P002", "FRACTURE"),
        ("P003", "FRACTURE"), ("P003", "RETROPULSION"), ("P004", "FRACTURE")]
    for name in ("note_id", "note_date", "levels", "acuity", "historical", "snippet", "tier"):
        assert name in header
    formula_row = next(row for row in rows if row["person_id"] == "P004")
    assert formula_row["snippet"] == FORMULA and formula_row["historical"] is True
    hostile_row = next(row for row in rows if row["person_id"] == "P002")
    assert hostile_row["snippet"] == HOSTILE
    cells = [cell for sheet in workbook for row in sheet.iter_rows() for cell in row]
    assert cells and not [cell.coordinate for cell in cells if cell.data_type == "f"]


@pytest.mark.parametrize("text", ["=1+1", "+1+1", "-1+1", "@SUM(A1:A2)", "=cmd|'/C calc'!A0", "#N/A"])
def test_excel_cells_that_look_like_formulas_stay_text(text, tmp_path):
    path = tmp_path / "report.xlsx"
    patients = pd.DataFrame({"person_id": [text], "tier": ["candidate"], "reasons": [text]})
    mentions = pd.DataFrame([make_mention(text, "N1", "2024-01-01", "FRACTURE", text + " fracture", 0, "fracture")])
    write_excel_report(path, patients=patients, mentions=mentions)
    workbook = _workbook(path)
    values = []
    for sheet in workbook:
        for row in sheet.iter_rows(min_row=2):
            for cell in row:
                assert cell.data_type != "f" and cell.data_type != "e", (cell.coordinate, cell.value)
                if cell.value == text:
                    assert cell.data_type == "s" and cell.quotePrefix
                    values.append(cell.value)
    assert len(values) == 3  # person_id on both sheets and the reasons cell


def test_excel_long_cells_are_truncated_and_control_characters_dropped(tmp_path):
    path = tmp_path / "report.xlsx"
    long_text = "fracture " * 5000  # 45,000 characters
    patients = pd.DataFrame({"person_id": ["P1"], "tier": ["candidate"],
                             "reasons": [long_text], "evidence": ["bad\x00\x07 bytes\x1b"]})
    write_excel_report(path, patients=patients, mentions=pd.DataFrame())
    header, row = list(_workbook(path)["Patients"].iter_rows(values_only=True))
    record = dict(zip(header, row))
    assert len(record["reasons"]) == excel.MAX_CELL_CHARS
    assert record["reasons"].endswith(TRUNCATION_MARKER)
    assert record["reasons"].startswith("fracture fracture")
    assert record["evidence"] == "bad bytes"


def test_excel_splits_rows_over_continuation_sheets(frames, tmp_path, monkeypatch):
    monkeypatch.setattr(excel, "MAX_SHEET_ROWS", 3)  # a header and two rows per sheet
    path = tmp_path / "report.xlsx"
    write_excel_report(path, patients=frames["patients"], mentions=frames["mentions"])
    workbook = _workbook(path)
    assert workbook.sheetnames == ["Patients", "Patients 2", "Patients 3",
                                   "Evidence", "Evidence 2", "Evidence 3", "Evidence 4"]
    evidence_rows = []
    for name in ("Evidence", "Evidence 2", "Evidence 3", "Evidence 4"):
        rows = list(workbook[name].iter_rows(values_only=True))
        assert rows[0][0] == "person_id" and 2 <= len(rows) <= 3
        evidence_rows += rows[1:]
    assert len(evidence_rows) == 7
    assert [row[0] for name in ("Patients", "Patients 2", "Patients 3")
            for row in list(workbook[name].iter_rows(values_only=True))[1:]] == [
        "P001", "P002", "P003", "P004", "P005"]


def test_excel_with_no_mentions_still_has_both_sheets(frames, tmp_path):
    path = tmp_path / "report.xlsx"
    write_excel_report(path, patients=frames["patients"], mentions=pd.DataFrame())
    workbook = _workbook(path)
    assert workbook.sheetnames == ["Patients", "Evidence"]
    assert workbook["Evidence"].max_row == 1


def test_rows_json_is_the_json_of_the_rows_and_frees_them():
    from pipeline.report.html import _rows_json, script_json
    rows = [{"id": "p1", "reasons": ["</script><b>x</b>", "ünïcode"], "score": 1.5}, {"id": "p2", "flags": []}]
    expected = script_json([dict(row) for row in rows])
    assert _rows_json(rows) == expected and rows == [None, None]
    assert _rows_json([]) == script_json([])


def test_evidence_ranked_in_chunks_of_patients_gives_the_same_page(monkeypatch):
    import pipeline
    from pipeline.report import html as html_module
    notes = pd.read_json(REPO / "corpora" / "dev" / "notes.jsonl", lines=True,
                         dtype={"note_id": str, "person_id": str})
    result = pipeline.screen(notes, all_mentions=True)
    frames = {"patients": result.patients, "mentions": result.mentions, "notes": result.notes,
              "manifest": {}}
    whole = html_module.render_html_report(**frames)
    monkeypatch.setattr(html_module, "EVIDENCE_CHUNK", 3)
    assert html_module.render_html_report(**frames) == whole
    assert whole.count('"items":') > 40  # most of the 80 patients have evidence


@pytest.fixture(scope="module")
def dev_frames():
    import pipeline
    notes = pd.read_json(REPO / "corpora" / "dev" / "notes.jsonl", lines=True,
                         dtype={"note_id": str, "person_id": str})
    result = pipeline.screen(notes, all_mentions=True)
    return {"patients": result.patients, "mentions": result.mentions, "notes": result.notes, "manifest": {}}


def _evidence_block(page: str) -> tuple[int, int]:
    """Bytes of the page's evidence JSON and the number of patients in it."""
    block = re.search(r'<script type="application/json" id="vb-evidence">(.*?)</script>', page, re.S)
    assert block, "no evidence block"
    return len(block.group(1).encode()), len(json.loads(block.group(1)))


@pytest.mark.skipif(sys.platform == "win32", reason="the second evidence process is forked")
def test_evidence_built_by_two_processes_gives_the_same_page(monkeypatch, dev_frames):
    """The forked half, whatever the budget: spent in the first half, cut inside the second
    half, or never reached."""
    from pipeline.report import html as html_module
    monkeypatch.setattr(html_module, "PARALLEL_EVIDENCE_MIN", 2)
    whole = html_module.render_html_report(**dev_frames)
    size, patients = _evidence_block(whole)
    assert patients > 40
    forked, shown = [], []
    original = html_module._ForkedCall
    monkeypatch.setattr(html_module, "_ForkedCall", lambda *args: forked.append(1) or original(*args))
    for budget in (1, size // 10, size // 2 + size // 10, size - size // 50, 10 ** 9):
        monkeypatch.setattr(html_module, "MAX_EVIDENCE_BYTES", budget)
        page = html_module.render_html_report(**dev_frames, workers=2)
        assert page == html_module.render_html_report(**dev_frames, workers=1), budget
        shown.append(_evidence_block(page)[1])
    assert len(forked) == 5
    assert shown[0] == 1 and shown[1] < patients // 2 < shown[2] < shown[3] < shown[4] == patients


@pytest.mark.skipif(sys.platform == "win32", reason="the second evidence process is forked")
@pytest.mark.parametrize("failure", ["raises", "dies", "hangs"])
def test_failed_evidence_process_is_replaced_by_this_one(monkeypatch, caplog, dev_frames, failure):
    from pipeline.report import html as html_module
    monkeypatch.setattr(html_module, "PARALLEL_EVIDENCE_MIN", 2)
    whole = html_module.render_html_report(**dev_frames)

    def broken(*args):
        if failure == "dies":
            os._exit(3)
        if failure == "hangs":
            time.sleep(120)
        raise ValueError("a message quoting a note: Acute L1 fracture")

    monkeypatch.setattr(html_module, "EVIDENCE_PROCESS_PATIENCE", 0.5)

    monkeypatch.setattr(html_module, "_payloads_within_budget", broken)
    with caplog.at_level("WARNING"):
        assert html_module.render_html_report(**dev_frames, workers=2) == whole
    assert "second evidence process failed" in caplog.text
    assert "fracture" not in caplog.text  # the class name only, never the message
