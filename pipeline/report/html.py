"""report.html: one self-contained page for the reviewer of a screening run.

The page (SPEC §5) holds the run summary, the cohort funnel and tier
counts as plots, a sortable, filterable, paginated patient table, and for
each patient the evidence sentences with the mention spans highlighted by
concept. It makes no network request: styles, script, plots and data are
inline, and a Content-Security-Policy forbids everything else (only the
page's own script, identified by its hash, may run).

Untrusted note text never becomes markup. The server-rendered parts go
through Jinja with autoescape on; patient rows and evidence travel as JSON
in ``<script type="application/json">`` blocks with ``<``, ``>`` and ``&``
written as ``\\u003c``-style escapes (so ``</script>`` in a note cannot end
the block), and the page's script builds the table and the highlights
with ``textContent`` only — never ``innerHTML``. The highlight geometry
(which characters of a sentence belong to which mention) is computed here,
in Python, by ``highlight_segments``.

Size is bounded for large cohorts: the table lists at most
``MAX_TABLE_PATIENTS`` patients, each patient shows at most
``MAX_EVIDENCE_PER_PATIENT`` mentions (most relevant first), and evidence
stops being embedded once ``MAX_EVIDENCE_BYTES`` is used (patients in tier
order, best score first). The page says so wherever a cap applied.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import multiprocessing
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from .. import __version__
from ..io.writers import atomic_path
from . import plots
from ..nlp.levels import RANK as _LEVEL_RANK, UNSPECIFIED as _UNSPECIFIED
from ..screening.frame import TRUE_STRINGS as _TRUE_STRINGS, flag_column as _flag_series
from .plots import TIER_COLOURS, TIER_LABELS, TIER_ORDER

__all__ = [
    "write_html_report", "render_html_report", "cohort_funnel", "highlight_segments",
    "script_json", "save_screenshot",
    "MAX_EVIDENCE_PER_PATIENT", "MAX_EVIDENCE_BYTES", "MAX_TABLE_PATIENTS",
]

logger = logging.getLogger(__name__)

#: Mentions shown per patient (the most relevant; see ``_select_evidence``).
MAX_EVIDENCE_PER_PATIENT = 20
#: Budget for all embedded evidence JSON; keeps a 10,000-patient page well
#: under 20 MB whatever the notes look like.
MAX_EVIDENCE_BYTES = 10_000_000
#: Patients listed in the table (tier order, best score first).
MAX_TABLE_PATIENTS = 50_000
#: Rows per table page (the reader can change it on the page).
PAGE_SIZE = 25

#: Concepts: label, highlight background, border/accent colour. One place
#: for the colours: the template builds the CSS classes and legend from it.
CONCEPTS: dict[str, tuple[str, str, str]] = {
    "FRACTURE": ("Fracture", "#ffd8a8", "#e8590c"),
    "OEDEMA": ("Oedema", "#a5d8ff", "#1971c2"),
    "RETROPULSION": ("Retropulsion", "#ffc9c9", "#c92a2a"),
    "EPIDURAL_DISEASE": ("Epidural disease", "#eebefa", "#9c36b5"),
    "INFECTION": ("Infection", "#fcc2d7", "#c2255c"),
    "COAGULOPATHY": ("Coagulopathy", "#d0bfff", "#6741d9"),
    "ANTICOAGULANT": ("Anticoagulant", "#99e9f2", "#0c8599"),
    "MALIGNANCY": ("Malignancy", "#96f2d7", "#087f5b"),
    "PAIN": ("Pain", "#ffec99", "#e67700"),
    "OSTEOPOROSIS": ("Osteoporosis", "#d8f5a2", "#5c940d"),
    "PRIOR_AUGMENTATION": ("Prior augmentation", "#dee2e6", "#495057"),
    "LEVEL": ("Level", "transparent", "#343a40"),
}
_OTHER_CONCEPT = ("Other", "#e9ecef", "#868e96")

#: Concepts that decide the tier; their mentions are shown before the others.
_DECISIVE_CONCEPTS = frozenset({
    "FRACTURE", "OEDEMA", "RETROPULSION", "EPIDURAL_DISEASE", "INFECTION", "COAGULOPATHY",
})

#: Patient flags shown as tags in the table: (column, label, is a contraindication).
_FLAGS: tuple[tuple[str, str, bool], ...] = (
    ("retropulsion", "Retropulsion", True),
    ("epidural_disease", "Epidural disease", True),
    ("infection", "Infection", True),
    ("coagulopathy", "Coagulopathy", True),
    ("oedema", "Oedema", False),
    ("malignancy", "Malignancy", False),
    ("anticoagulant", "Anticoagulant", False),
)

_NOTE_STATUSES = ("processed", "no_trigger", "empty", "error")
_VERSION_ORDER = ("vertebro", "spacy", "medspacy", "pandas", "python")
_VERSION_LABELS = {"spacy": "spaCy", "medspacy": "medspaCy", "pandas": "pandas",
                   "python": "Python", "vertebro": "vertebro"}



CHROMIUM_PATH = "/usr/bin/chromium"
#: Flags for headless Debian Chromium in CI and for screenshots: no
#: sandbox (containers run as root), no GPU, and nothing that phones home.
CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)


# --------------------------------------------------------------------------
# public API


def write_html_report(path: str | os.PathLike, *, patients: pd.DataFrame,
                      mentions: pd.DataFrame, notes: pd.DataFrame,
                      manifest: Mapping[str, Any] | None, workers: int = 1) -> None:
    """Write ``report.html`` for one run, atomically (``io.writers.atomic_path``).

    ``patients``, ``mentions`` and ``notes`` are the frames of
    docs/design.md §4, §3 and §2; ``manifest`` is the run's manifest dict
    (any key may be missing). The file is readable by its owner only, like
    every output that quotes note text. With ``workers`` > 1 the evidence is
    built by two processes (the same page).
    """
    chunks = _page_chunks(patients=patients, mentions=mentions, notes=notes, manifest=manifest,
                          workers=workers)
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8", errors="replace") as stream:
            stream.writelines(chunks)  # the page is written as rendered, never whole in memory


def render_html_report(*, patients: pd.DataFrame, mentions: pd.DataFrame,
                       notes: pd.DataFrame, manifest: Mapping[str, Any] | None, workers: int = 1) -> str:
    """Return the report page as a string (what ``write_html_report`` writes)."""
    return "".join(_page_chunks(patients=patients, mentions=mentions, notes=notes, manifest=manifest,
                                workers=workers))


def _page_chunks(*, patients: pd.DataFrame, mentions: pd.DataFrame,
                 notes: pd.DataFrame, manifest: Mapping[str, Any] | None, workers: int = 1) -> Iterator[str]:
    """The report page, as the template renders it, piece by piece."""
    manifest = manifest if isinstance(manifest, Mapping) else {}
    patients = patients if patients is not None else pd.DataFrame()
    mentions = mentions if mentions is not None else pd.DataFrame()
    notes = notes if notes is not None else pd.DataFrame()

    listed = _patient_rows(patients, limit=MAX_TABLE_PATIENTS)
    evidence, evidence_stats = _evidence_by_patient(listed, mentions, notes, workers=workers)
    for row in listed:
        row["ev"] = evidence_stats.get(row["id"], {"total": 0, "state": "none"})

    funnel = cohort_funnel(patients)
    tier_counts = _tier_counts(patients)
    script = _resource_text("report.js")
    if "</script" in script.lower():  # our own file; guard against an edit that breaks the page
        raise ValueError("report.js must not contain '</script'")
    script_hash = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()

    meta = {
        "tiers": [{"key": tier, "label": TIER_LABELS.get(tier, tier)} for tier in _tier_keys(tier_counts)],
        "concepts": {key: label for key, (label, _, _) in CONCEPTS.items()},
        "flags": [{"key": key, "label": label, "contra": contra} for key, label, contra in _FLAGS],
        "pageSize": PAGE_SIZE,
        "maxEvidence": MAX_EVIDENCE_PER_PATIENT,
    }
    context = {
        "title": "vertebro screening report",
        "version": __version__,
        "run": _run_summary(manifest, notes),
        "kpis": _kpis(patients, notes, manifest, tier_counts),
        "funnel": _funnel_rows(funnel),
        "funnel_image": plots.svg_data_uri(plots.funnel_svg(funnel)),
        "tier_rows": [{"key": tier, "label": TIER_LABELS.get(tier, tier),
                       "count": tier_counts.get(tier, 0)} for tier in _tier_keys(tier_counts)],
        "tiers_image": plots.svg_data_uri(plots.tier_counts_svg(tier_counts)),
        "funnel_alt": "Cohort funnel: " + ", ".join(f"{label} {count:,}" for label, count in funnel),
        "tiers_alt": "Patients per tier: " + ", ".join(
            f"{TIER_LABELS.get(tier, tier)} {tier_counts.get(tier, 0):,}" for tier in _tier_keys(tier_counts)),
        "concepts": [{"key": key, "label": label, "background": background, "accent": accent}
                     for key, (label, background, accent) in CONCEPTS.items()],
        "tier_colours": [{"key": tier, "colour": colour} for tier, colour in TIER_COLOURS.items()],
        "n_patients": len(patients),
        "n_listed": len(listed),
        "max_evidence": MAX_EVIDENCE_PER_PATIENT,
        "n_capped": sum(1 for stats in evidence_stats.values() if stats["state"] == "capped"),
        "n_omitted": sum(1 for stats in evidence_stats.values() if stats["state"] == "omitted"),
        "css": Markup(_resource_text("report.css")),
        "script": Markup(script),
        "csp": ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                f"script-src 'sha256-{script_hash}'; base-uri 'none'; form-action 'none'"),
        "meta_json": script_json(meta),
        "patients_json": _rows_json(listed),
        "evidence_json": Markup("{") + Markup(",").join(
            script_json(person_id) + Markup(":") + payload for person_id, payload in evidence.items()
        ) + Markup("}"),
    }
    return _environment().get_template("report.html").generate(**context)


def _rows_json(rows: list[dict[str, Any]]) -> Markup:
    """``script_json(rows)``, emptying ``rows`` as it goes: 50,000 row dicts weigh more than their JSON."""
    parts = []
    for index, row in enumerate(rows):
        parts.append(script_json(row))
        rows[index] = None
    return Markup("[") + Markup(",").join(parts) + Markup("]")


def cohort_funnel(patients: pd.DataFrame) -> list[tuple[str, int]]:
    """The cohort funnel, from all patients down to the candidates.

    Derived from the tiers (SPEC §4), so each stage is a subset of the one
    before: *with a fracture* is every tier but ``no_fracture``; *acute or
    indeterminate* adds that a level is acute or indeterminate (tiers
    candidate, needs_imaging, contraindicated — ``not_indicated`` has only
    chronic levels); *no contraindication* drops ``contraindicated``.
    """
    tiers = _text_series(patients, "tier")
    return [
        ("Patients", int(len(tiers))),
        ("With a fracture", int((tiers != "no_fracture").sum())),
        ("Acute or indeterminate", int(tiers.isin(["candidate", "needs_imaging", "contraindicated"]).sum())),
        ("No contraindication", int(tiers.isin(["candidate", "needs_imaging"]).sum())),
        ("Candidates", int((tiers == "candidate").sum())),
    ]


def highlight_segments(text: str, spans: Iterable[tuple[int, int, int]]) -> list[tuple[str, int | None]]:
    """Cut ``text`` into ``(piece, mention)`` segments for highlighting.

    ``spans`` are ``(start, end, mention)`` with offsets into ``text``
    (clipped to it; empty spans ignored). A piece covered by several spans
    (a level inside a fracture phrase) belongs to the narrowest one; a piece
    covered by none has ``mention=None``. Joining the pieces gives ``text``
    back exactly.

    >>> highlight_segments("acute L1 fracture", [(0, 17, 0), (6, 8, 1)])
    [('acute ', 0), ('L1', 1), (' fracture', 0)]
    """
    length = len(text)
    clipped = []
    for start, end, mention in spans:
        start, end = max(0, min(int(start), length)), max(0, min(int(end), length))
        if start < end:
            clipped.append((start, end, mention))
    bounds = sorted({0, length, *(s for s, _, _ in clipped), *(e for _, e, _ in clipped)})
    segments: list[tuple[str, int | None]] = []
    for left, right in zip(bounds, bounds[1:]):
        covering = [(end - start, mention) for start, end, mention in clipped
                    if start <= left and right <= end]
        mention = min(covering)[1] if covering else None
        if segments and segments[-1][1] == mention:
            segments[-1] = (segments[-1][0] + text[left:right], mention)
        else:
            segments.append((text[left:right], mention))
    return segments or [("", None)]


_SCRIPT_JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                        0x2028: "\\u2028", 0x2029: "\\u2029"}


def script_json(value: Any) -> Markup:
    """JSON for inside a ``<script type="application/json">`` block.

    ``<``, ``>`` and ``&`` only ever occur inside JSON strings, where their
    ``\\u`` escapes mean the same characters, so the text cannot contain
    ``</script>`` or ``<!--`` and cannot end or confuse the block.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return Markup(text.translate(_SCRIPT_JSON_ESCAPES))


def save_screenshot(report: str | os.PathLike, png: str | os.PathLike, *,
                    width: int = 1360, height: int = 900, full_page: bool = True,
                    executable_path: str = CHROMIUM_PATH) -> Path:
    """Open ``report`` in headless Chromium and save a PNG screenshot.

    Needs the ``playwright`` Python package (the ``dev`` extra) and Debian's
    Chromium (``.ci/browser.sh``); Playwright's own browser download is not
    used. Example: ``save_screenshot("out/report.html", "reports/demo-screenshot.png")``.
    """
    from playwright.sync_api import sync_playwright  # dev dependency, imported on use

    target = Path(png)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable_path,
                                             args=list(CHROMIUM_ARGS), headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height},
                                    device_scale_factor=1)
            page.goto(Path(report).resolve().as_uri())
            page.wait_for_selector("#patient-table tbody tr")
            page.screenshot(path=str(target), full_page=full_page)
        finally:
            browser.close()
    return target


# --------------------------------------------------------------------------
# patient rows


def table_order(patients: pd.DataFrame, *, limit: int = MAX_TABLE_PATIENTS) -> np.ndarray:
    """Positions of the first ``limit`` patients in table order (the patients the page lists).

    Table order: tier (``TIER_ORDER``), then best score, then person id.
    A run over a large cohort reads the mentions of these patients only.
    """
    order = pd.DataFrame({
        "tier": _text_series(patients, "tier").map(
            {tier: rank for rank, tier in enumerate(TIER_ORDER)}).fillna(len(TIER_ORDER)).to_numpy(),
        "score": (-pd.to_numeric(patients["score"], errors="coerce")).fillna(math.inf).to_numpy()
        if "score" in patients else 0.0,
        "person": _text_series(patients, "person_id").to_numpy(),
    })
    return order.sort_values(["tier", "score", "person"], kind="stable").index[:limit].to_numpy()


def _patient_rows(patients: pd.DataFrame, *, limit: int) -> list[dict[str, Any]]:
    """JSON-ready dicts for the first ``limit`` patients in table order (:func:`table_order`)."""
    if patients.empty:
        return []
    patients = patients.iloc[table_order(patients, limit=limit)]
    names = ("person_id", "tier", "score", "fracture_levels", "acute_levels", "candidate_levels",
             "indeterminate_levels", "chronic_levels", "index_date", "n_notes", "reasons",
             "latest_inr", "latest_platelets", *(key for key, _, _ in _FLAGS))
    columns = [patients[name].tolist() if name in patients else [None] * len(patients) for name in names]
    return [_patient_row(dict(zip(names, values))) for values in zip(*columns)]


def _patient_row(patient: Mapping[str, Any]) -> dict[str, Any]:
    """One patient as the page's script reads it (short keys: 50,000 rows add up)."""
    statuses: dict[str, str] = {}
    for status, name in (("chronic", "chronic_levels"), ("indeterminate", "indeterminate_levels"),
                         ("acute", "acute_levels"), ("candidate", "candidate_levels")):
        for level in _levels(patient[name]):
            statuses[level] = status  # later, stronger statuses overwrite
    fracture = _levels(patient["fracture_levels"])
    levels = sorted(fracture + [level for level in statuses if level not in fracture], key=_level_rank)
    return {
        "id": _text(patient["person_id"]),
        "tier": _text(patient["tier"]),
        "score": _number(patient["score"]),
        "levels": [[level, statuses.get(level, "")] for level in levels],
        "rank": _level_rank(levels[0]) if levels else 999,
        "acute": _levels(patient["acute_levels"]),
        "indet": _levels(patient["indeterminate_levels"]),
        "chronic": _levels(patient["chronic_levels"]),
        "cand": _levels(patient["candidate_levels"]),
        "date": _date_text(patient["index_date"]),
        "notes": _integer(patient["n_notes"]),
        "reasons": [_text(reason) for reason in _as_list(patient["reasons"])],
        "flags": [key for key, _, _ in _FLAGS if _truthy(patient[key])],
        "inr": _number(patient["latest_inr"]),
        "plt": _number(patient["latest_platelets"]),
    }


# --------------------------------------------------------------------------
# evidence


_MENTION_TEXT = ("note_id", "person_id", "concept", "snippet", "lexical_variant", "levels", "acuity",
                 "aetiology", "scope", "lab", "unit", "corrected", "med_status", "modality", "section")
_MENTION_FLAGS = ("negated", "uncertain", "hypothetical", "family", "historical", "new")


def _evidence_by_patient(rows: Sequence[Mapping[str, Any]], mentions: pd.DataFrame,
                         notes: pd.DataFrame, *, workers: int = 1
                         ) -> tuple[dict[str, Markup], dict[str, dict[str, Any]]]:
    """Evidence JSON (escaped) per listed patient, and per-patient counts.

    Patients are served in table order until ``MAX_EVIDENCE_BYTES`` is
    spent; the rest are marked ``omitted``. The mentions are typed and
    ranked ``EVIDENCE_CHUNK`` patients at a time, so that a cohort of
    50,000 listed patients never has all their mentions copied at once.
    With ``workers`` > 1 a forked process builds the second half of the
    patients' evidence meanwhile (:func:`_payloads_in_order`): the page is
    the same.
    """
    stats: dict[str, dict[str, Any]] = {}
    if mentions.empty or not rows or "person_id" not in mentions or "concept" not in mentions:
        return {}, stats
    person = _text_series(mentions, "person_id")
    evidence = (_text_series(mentions, "concept") != "LEVEL").to_numpy()
    totals = person[evidence].value_counts().to_dict()
    waiting = [row for row in rows if totals.get(row["id"], 0)]
    payloads: dict[str, Markup] = {}
    spent = 0
    built = _payloads_in_order(waiting, mentions, notes, person, workers=workers)
    try:
        for row in waiting:
            person_id = row["id"]
            total = int(totals[person_id])
            if spent >= MAX_EVIDENCE_BYTES:
                stats[person_id] = _omitted(total)  # built no further: the generator stops here
                continue
            payload, size, shown = next(built)
            spent += size
            payloads[person_id] = payload
            stats[person_id] = {"total": total, "shown": shown,
                                "state": "capped" if total > MAX_EVIDENCE_PER_PATIENT else "full"}
    finally:
        built.close()
    return payloads, stats


#: Listed patients whose mentions the report types and ranks at once.
EVIDENCE_CHUNK = 2000
#: Fewest patients with evidence for which a second process is worth forking.
PARALLEL_EVIDENCE_MIN = 200
#: Least time (s) the forked evidence process is waited for, once this one has built its half.
EVIDENCE_PROCESS_PATIENCE = 60.0


def _payloads(rows: Sequence[Mapping[str, Any]], mentions: pd.DataFrame, notes: pd.DataFrame,
              person: pd.Series) -> Iterator[tuple[Markup, int, int]]:
    """``(payload, bytes, shown)`` of each of ``rows`` (patients with evidence), in order, built lazily.

    A patient's payload depends on their own mentions only, not on which
    patients are built together.
    """
    for first in range(0, len(rows), EVIDENCE_CHUNK):
        chunk = rows[first:first + EVIDENCE_CHUNK]
        yield from _chunk_payloads(chunk, _mention_frame(mentions, {row["id"] for row in chunk}, person), notes)


def _payloads_in_order(rows: Sequence[Mapping[str, Any]], mentions: pd.DataFrame, notes: pd.DataFrame,
                       person: pd.Series, *, workers: int) -> Iterator[tuple[Markup, int, int]]:
    """:func:`_payloads`, the second half built by a forked process while this one builds the first.

    The forked process stops once its own payloads pass ``MAX_EVIDENCE_BYTES``:
    the page cannot use any beyond that, whatever the first half spent. If it
    fails, this process builds the second half itself. One process with
    ``workers`` < 2, few patients, or no ``fork`` on this platform.
    """
    if workers < 2 or len(rows) < PARALLEL_EVIDENCE_MIN or "fork" not in multiprocessing.get_all_start_methods():
        yield from _payloads(rows, mentions, notes, person)
        return
    half = len(rows) // 2
    try:
        second = _ForkedCall(_payloads_within_budget, rows[half:], mentions, notes, person)
    except (AssertionError, OSError) as error:  # a daemonic process may not fork; out of processes
        logger.info("report: building the evidence in one process (%s)", type(error).__name__)
        yield from _payloads(rows, mentions, notes, person)
        return
    try:
        started = time.perf_counter()
        yield from _payloads(rows[:half], mentions, notes, person)
        # however long this half took, the other half gets ten times that (a stuck process,
        # e.g. forked while another thread held a lock it needs, must not hang the run)
        patience = max(EVIDENCE_PROCESS_PATIENCE, 10 * (time.perf_counter() - started))
        try:
            built = second.result(timeout=patience)
        except ChildProcessError as error:
            logger.warning("report: the second evidence process failed (%s); building its half here", error)
            built = list(_payloads(rows[half:], mentions, notes, person))
        yield from built
    finally:
        second.close()


def _payloads_within_budget(rows, mentions, notes, person) -> list[tuple[Markup, int, int]]:
    built, spent = [], 0
    for item in _payloads(rows, mentions, notes, person):
        built.append(item)
        spent += item[1]
        if spent >= MAX_EVIDENCE_BYTES:
            break
    return built


class _ForkedCall:
    """``function(*args)`` in a forked process (which sees this one's data without copying it);
    :meth:`result` waits for its value. Errors come back by class name only (a message may quote
    note text)."""

    def __init__(self, function, *args):
        context = multiprocessing.get_context("fork")
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_send_result, args=(send, function, args), daemon=True)
        self._process.start()
        send.close()

    def result(self, timeout: float | None = None):
        if timeout is not None and not self._receive.poll(timeout):
            raise ChildProcessError(f"no answer in {timeout:.0f} s")
        try:
            ok, value = self._receive.recv()
        except (EOFError, OSError) as error:
            raise ChildProcessError(f"exit code {self._process.exitcode}") from error
        if not ok:
            raise ChildProcessError(value)
        return value

    def close(self) -> None:
        if self._process.is_alive():
            self._process.terminate()  # its result is not wanted (the budget ran out first)
        self._process.join()
        self._receive.close()


def _send_result(connection, function, args) -> None:
    try:
        connection.send((True, function(*args)))
    except BaseException as error:  # noqa: BLE001 - reported to the parent, which carries on
        connection.send((False, type(error).__name__))
    finally:
        connection.close()


def _chunk_payloads(rows: Sequence[Mapping[str, Any]], frame: pd.DataFrame, notes: pd.DataFrame
                    ) -> Iterator[tuple[Markup, int, int]]:
    """:func:`_payloads` of some listed patients (``frame``: their mentions)."""
    selected = _select_evidence(frame[frame["concept"] != "LEVEL"])

    # From here on plain dicts, built only for the patients that get evidence (pandas'
    # per-group overhead would dominate otherwise) and _RECORD_GROUP patients at a time (a
    # whole column's .tolist() would hold every mention of the chunk as Python objects)
    columns = {name: frame[name].array if pd.api.types.is_datetime64_any_dtype(frame[name])
               else frame[name].to_numpy() for name in frame.columns}

    def records_at(positions: set[int]) -> dict[int, dict[str, Any]]:
        wanted = np.fromiter(sorted(positions), dtype=np.intp, count=len(positions))
        values = [_column_list(columns[name], wanted) for name in columns]
        return {position: dict(zip(columns, row)) for position, row in zip(wanted.tolist(), zip(*values))}

    note_positions = frame.groupby("note_id", sort=False).indices
    selected_positions = dict(zip(
        selected["person_id"].drop_duplicates(),
        np.split(selected["order"].to_numpy(),
                 np.flatnonzero(selected["person_id"].to_numpy()[1:]
                                != selected["person_id"].to_numpy()[:-1]) + 1)))
    titles = _note_titles(notes, set(selected["note_id"]))
    note_ids = columns["note_id"]

    for first in range(0, len(rows), _RECORD_GROUP):
        group = rows[first:first + _RECORD_GROUP]
        needed: set[int] = set()
        for row in group:
            chosen = selected_positions[row["id"]]
            needed.update(chosen.tolist())
            for note_id in {note_ids[position] for position in chosen}:
                needed.update(note_positions[note_id].tolist())
        records = records_at(needed)
        for row in group:
            chosen = [records[int(position)] for position in selected_positions[row["id"]]]
            in_notes = {member["note_id"]: [records[int(position)] for position in note_positions[member["note_id"]]]
                        for member in chosen}
            items, shown = _evidence_items(chosen, in_notes, titles)
            payload = script_json({"items": items})
            yield payload, len(payload.encode("utf-8", "replace")), shown


def _omitted(total: int) -> dict[str, Any]:
    """The evidence counts of a patient whose evidence did not fit in the page."""
    return {"total": total, "shown": 0, "state": "omitted"}


def _column_list(values, positions: np.ndarray) -> list:
    """``values[positions].tolist()``; a date column makes one Timestamp per distinct date."""
    if not isinstance(values, pd.arrays.DatetimeArray):
        return values[positions].tolist()
    codes, dates = pd.factorize(values[positions], use_na_sentinel=False)
    stamps = list(dates)
    return [stamps[code] for code in codes.tolist()]


#: Listed patients whose mention records are built at once (and dropped after).
_RECORD_GROUP = 100


def _mention_frame(mentions: pd.DataFrame, person_ids: set[str],
                   person: pd.Series | None = None) -> pd.DataFrame:
    """The mentions of listed patients, with typed columns and an input-order key."""
    if person is None:
        person = _text_series(mentions, "person_id")
    keep = person.isin(person_ids).to_numpy()
    source = mentions.loc[keep]
    frame = pd.DataFrame(index=pd.RangeIndex(len(source)))
    for column in _MENTION_TEXT:
        frame[column] = _text_series(source, column).to_numpy()
    if "levels" in source and source["levels"].map(lambda value: isinstance(
            value, (list, tuple, np.ndarray))).any():
        frame["levels"] = [";".join(_levels(value)) for value in source["levels"]]
    for column in _MENTION_FLAGS:
        frame[column] = _flag_series(source, column).to_numpy()
    if not any(column in source for column in ("negated", "uncertain", "hypothetical", "family")) \
            and "term_exists" in source:
        frame["negated"] = (_text_series(source, "term_exists").str.upper() == "N").to_numpy()
    for column in ("start", "end", "snippet_start", "value"):
        frame[column] = (pd.to_numeric(source[column], errors="coerce").to_numpy(dtype=float)
                         if column in source else np.nan)
    frame["note_date"] = (_dates(source["note_date"]).to_numpy() if "note_date" in source
                          else np.datetime64("NaT", "ns"))
    frame["order"] = np.arange(len(frame))
    frame["affirmed"] = ~(frame["negated"] | frame["uncertain"] | frame["hypothetical"] | frame["family"])
    return frame


def _select_evidence(frame: pd.DataFrame) -> pd.DataFrame:
    """The ``MAX_EVIDENCE_PER_PATIENT`` most relevant mentions of each patient.

    Relevance: mentions of the concepts that decide the tier first, then
    affirmed before negated/uncertain, then the most recent note, then
    input order. "No retropulsion" thus outranks "osteoporosis".
    """
    ranked = frame.assign(
        decisive=~frame["concept"].isin(_DECISIVE_CONCEPTS),
        denied=~frame["affirmed"],
        undated=frame["note_date"].isna(),
        when=-frame["note_date"].to_numpy(dtype="datetime64[ns]").astype("int64"),
    ).sort_values(["person_id", "decisive", "denied", "undated", "when", "order"], kind="stable")
    return ranked.groupby("person_id", sort=False).head(MAX_EVIDENCE_PER_PATIENT)


def _evidence_items(selected: Sequence[dict[str, Any]], by_note: Mapping[str, list[dict[str, Any]]],
                    titles: Mapping[str, str]) -> tuple[list[dict[str, Any]], int]:
    """Group one patient's selected mentions into sentences, newest note first.

    Mentions whose snippets overlap in the same note share one sentence
    (the union of the snippets); every other mention of that note lying
    inside the sentence is highlighted too.
    """
    per_note: dict[str, list[dict[str, Any]]] = {}
    for member in selected:
        per_note.setdefault(member["note_id"], []).append(member)
    windows = []
    for note_id, members in per_note.items():
        windows.extend(_note_windows(members, by_note.get(note_id, members)))
    windows.sort(key=lambda window: (pd.isna(window["when"]),
                                     -(window["when"].value if not pd.isna(window["when"]) else 0),
                                     window["note_id"], window["start"]))
    items = []
    shown: set[int] = set()
    for window in windows:
        members = window["mentions"]
        located = [(start, end, index) for index, (start, end) in enumerate(window["spans"])
                   if start is not None]
        items.append({
            "note": window["note_id"],
            "date": _date_text(window["when"]),
            "title": titles.get(window["note_id"], ""),
            "section": window["section"],
            "modality": next((member["modality"] for member in members if member["modality"]), ""),
            "seg": [[piece, -1 if index is None else index]
                    for piece, index in highlight_segments(window["text"], located)],
            "m": [_mention_view(member, located=window["spans"][i][0] is not None)
                  for i, member in enumerate(members)],
        })
        shown.update(member["order"] for member in members if member["concept"] != "LEVEL")
    return items, len(shown)


def _note_windows(selected: Sequence[dict[str, Any]],
                  note_mentions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sentences of one note around the selected mentions, merged where they overlap."""
    located: list[dict[str, Any]] = []
    loose: list[dict[str, Any]] = []
    for member in selected:
        text = member["snippet"] or member["lexical_variant"]
        start = member["snippet_start"]
        window = {"note_id": member["note_id"], "when": member["note_date"], "text": text,
                  "section": member["section"], "selected": [member]}
        if math.isnan(start) or not member["snippet"]:
            window["start"] = math.inf
            loose.append(window)
        else:
            window["start"] = int(start)
            located.append(window)

    located.sort(key=lambda window: (window["start"], -len(window["text"])))
    merged: list[dict[str, Any]] = []
    for window in located:
        if merged and _merge_into(merged[-1], window):
            continue
        merged.append(window)
    # Snippets without an offset: identical texts share one sentence.
    by_text: dict[str, dict[str, Any]] = {}
    for window in loose:
        if window["text"] in by_text:
            by_text[window["text"]]["selected"].extend(window["selected"])
        else:
            by_text[window["text"]] = window
    merged.extend(by_text.values())

    for window in merged:
        chosen = {member["order"] for member in window["selected"]}
        members = list(window["selected"])
        if window["start"] != math.inf:
            end = window["start"] + len(window["text"])
            members.extend(other for other in note_mentions if other["order"] not in chosen
                           and window["start"] <= other["start"] and other["end"] <= end)
        members.sort(key=lambda member: (member["start"] if not math.isnan(member["start"]) else math.inf,
                                         member["order"]))
        window["mentions"] = members
        window["spans"] = [_locate(window, member) for member in members]
    return merged


def _merge_into(current: dict[str, Any], window: dict[str, Any]) -> bool:
    """Extend ``current`` by an overlapping ``window`` of the same note, if consistent."""
    current_end = current["start"] + len(current["text"])
    if window["start"] >= current_end:
        return False
    overlap = current["text"][window["start"] - current["start"]:]
    if not window["text"].startswith(overlap[:len(window["text"])]):
        return False  # the snippets disagree about the note text; keep both
    if window["start"] + len(window["text"]) > current_end:
        current["text"] += window["text"][current_end - window["start"]:]
    current["selected"].extend(window["selected"])
    return True


def _locate(window: Mapping[str, Any], member: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """Offsets of a mention inside its sentence, or ``(None, None)`` if not found.

    The mention's note offsets are trusted when they fall inside the
    sentence and match the matched text; otherwise the matched text is
    searched for (exactly, then ignoring case).
    """
    text, variant = window["text"], member["lexical_variant"]
    if window["start"] != math.inf and not math.isnan(member["start"]) and not math.isnan(member["end"]):
        start = int(member["start"]) - window["start"]
        end = int(member["end"]) - window["start"]
        if 0 <= start < end <= len(text) and (
                not variant or " ".join(text[start:end].split()) == " ".join(variant.split())):
            return start, end
    if variant:
        found = text.find(variant)
        if found < 0:
            found = text.lower().find(variant.lower())
        if found >= 0:
            return found, found + len(variant)
    return None, None


def _mention_view(member: Mapping[str, Any], *, located: bool) -> dict[str, Any]:
    """What the page shows of one mention: concept, state and attribute chips."""
    states = [name for name in ("negated", "uncertain", "hypothetical", "family") if member[name]]
    attributes = list(states)
    if member["historical"]:
        attributes.append("historical")
    if member["new"]:
        attributes.append("new")
    if member["acuity"]:
        attributes.append(f"acuity: {member['acuity']}")
    if member["levels"]:
        attributes.append("levels: " + ", ".join(member["levels"].split(";")))
    if member["aetiology"]:
        attributes.append(f"aetiology: {member['aetiology']}")
    if member["scope"]:
        attributes.append(f"scope: {member['scope']}")
    if member["lab"]:
        value = "" if math.isnan(member["value"]) else f" {_format_number(member['value'])}"
        unit = f" {member['unit']}" if member["unit"] else ""
        attributes.append(f"{member['lab']}{value}{unit}")
    if member["corrected"]:
        attributes.append(f"corrected: {member['corrected']}")
    if member["med_status"]:
        attributes.append(f"medication: {member['med_status']}")
    view = {"c": member["concept"], "x": member["lexical_variant"],
            "st": states[0] if states else ("historical" if member["historical"] else "affirmed"),
            "a": attributes}
    if not located:
        view["lost"] = True
    return view


def _note_titles(notes: pd.DataFrame, note_ids: set[str]) -> dict[str, str]:
    if notes.empty or "note_id" not in notes or "note_title" not in notes or not note_ids:
        return {}
    ids = _text_series(notes, "note_id")
    keep = ids.isin(note_ids).to_numpy()
    return dict(zip(ids[keep], _text_series(notes, "note_title")[keep]))


# --------------------------------------------------------------------------
# run summary


def _run_summary(manifest: Mapping[str, Any], notes: pd.DataFrame) -> dict[str, Any]:
    """Flatten the manifest into label/value pairs the template prints as text."""
    versions = manifest.get("versions")
    versions = versions if isinstance(versions, Mapping) else {}
    ordered = [name for name in _VERSION_ORDER if name in versions]
    ordered += sorted(name for name in versions if name not in _VERSION_ORDER)

    input_rows = [_input_summary(item) for item in _input_items(manifest.get("input"))]

    counts = manifest.get("counts")
    counts = counts if isinstance(counts, Mapping) else {}
    status = counts.get("status")
    if not isinstance(status, Mapping):
        status = _text_series(notes, "status").value_counts().to_dict() if "status" in notes else {}
    status_rows = [(name, _integer(status.get(name, 0)) or 0) for name in _NOTE_STATUSES]
    status_rows += [(str(name), _integer(value) or 0) for name, value in status.items()
                    if name not in _NOTE_STATUSES]

    timings = manifest.get("timings")
    if isinstance(timings, Mapping):
        timing_rows = [(str(name).removesuffix("_seconds").replace("_", " "), _duration(value))
                       for name, value in timings.items()]
    elif timings is not None:
        timing_rows = [("total", _duration(timings))]
    else:
        timing_rows = []

    config = manifest.get("config")
    config_hash = manifest.get("config_hash") or (config.get("hash", "") if isinstance(config, Mapping) else "")
    tool = " ".join(_summary_text(manifest.get(key, "")) for key in ("tool", "command")).strip()
    return {
        "tool": tool,
        "started_at": _summary_text(manifest.get("started_at", "")),
        "config_hash": _summary_text(config_hash),
        "versions": [(_VERSION_LABELS.get(name, name), _summary_text(versions[name])) for name in ordered],
        "inputs": input_rows,
        "status": status_rows,
        "n_notes": sum(count for _, count in status_rows),
        "timings": timing_rows,
    }


def _input_items(value: Any) -> list[Any]:
    """The input(s) of the run: a dict, a dict with ``sources``, a list, or a description."""
    if isinstance(value, Mapping):
        sources = value.get("sources")
        if isinstance(sources, (list, tuple)) and sources:
            return list(sources)
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [] if value is None else [value]


def _input_summary(item: Any) -> dict[str, str]:
    if not isinstance(item, Mapping):
        return {"description": _summary_text(item), "fingerprint": "", "rows": ""}
    stats = item.get("stats") if isinstance(item.get("stats"), Mapping) else {}
    rows = item.get("rows", stats.get("rows", ""))
    number = _integer(rows)
    return {
        "description": _summary_text(item.get("description", item.get("path", ""))),
        "fingerprint": _summary_text(item.get("fingerprint", "")),
        "rows": f"{number:,}" if number is not None else _summary_text(rows),
    }


def _kpis(patients: pd.DataFrame, notes: pd.DataFrame, manifest: Mapping[str, Any],
          tier_counts: Mapping[str, int]) -> list[dict[str, Any]]:
    # the manifest counts every note; the frame may hold only the notes with evidence
    counts = manifest.get("counts")
    status = counts.get("status") if isinstance(counts, Mapping) else None
    if isinstance(status, Mapping):
        n_notes = sum(_integer(value) or 0 for value in status.values())
    else:
        n_notes = len(notes) if not notes.empty else None
    cards = [{"key": "patients", "label": "Patients", "value": len(patients)}]
    if n_notes is not None:
        cards.append({"key": "notes", "label": "Notes", "value": n_notes})
    cards += [{"key": tier, "label": label, "value": tier_counts.get(tier, 0)}
              for tier, label in (("candidate", "Candidates"), ("needs_imaging", "Needs imaging"),
                                  ("contraindicated", "Contraindicated"))]
    return cards


def _funnel_rows(funnel: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
    total = funnel[0][1] if funnel else 0
    return [{"label": label, "count": count,
             "share": f"{count / total:.0%}" if total else "—"} for label, count in funnel]


def _tier_counts(patients: pd.DataFrame) -> dict[str, int]:
    counts = _text_series(patients, "tier").value_counts()
    return {str(tier): int(count) for tier, count in counts.items()}


def _tier_keys(tier_counts: Mapping[str, int]) -> list[str]:
    return list(TIER_ORDER) + sorted(tier for tier in tier_counts if tier not in TIER_ORDER)


# --------------------------------------------------------------------------
# templates


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("pipeline.report", "templates"),
        autoescape=True,  # every template, whatever its name: note text is untrusted
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["thousands"] = lambda value: f"{int(value):,}"
    return environment


def _resource_text(name: str) -> str:
    return resources.files("pipeline.report").joinpath("templates", name).read_text(encoding="utf-8")


# --------------------------------------------------------------------------
# value helpers (frames may come from memory or from saved CSV)


def _missing(value: Any) -> bool:
    if isinstance(value, (str, int)):  # and bool
        return False
    if value is None or value is pd.NaT:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    try:
        return bool(pd.isna(value)) if np.ndim(value) == 0 else False
    except (TypeError, ValueError):
        return False


def _text(value: Any) -> str:
    if _missing(value):
        return ""
    if isinstance(value, (list, tuple, np.ndarray, set)):
        return ";".join(_text(item) for item in value)
    if isinstance(value, (pd.Timestamp, datetime, date)):
        return _date_text(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _summary_text(value: Any) -> str:
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    return _text(value)


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple, np.ndarray)):
        return [item for item in value if not _missing(item) and _text(item).strip()]
    if _missing(value):
        return []
    return [part.strip() for part in str(value).split(";") if part.strip()]


def _levels(value: Any) -> list[str]:
    return [_text(level).replace(" ", "") for level in _as_list(value)]


def _level_rank(level: str) -> int:
    if level == _UNSPECIFIED:
        return len(_LEVEL_RANK) + 1
    return _LEVEL_RANK.get(level, len(_LEVEL_RANK))


def _truthy(value: Any) -> bool:
    if _missing(value):
        return False
    if isinstance(value, str):
        return value.strip().lower() in _TRUE_STRINGS
    return bool(value)


def _number(value: Any) -> float | None:
    if isinstance(value, str):
        value = pd.to_numeric(value, errors="coerce")
    if _missing(value) or isinstance(value, (bool, np.bool_)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) or math.isinf(number) else number


def _integer(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _format_number(value: float) -> str:
    return f"{value:g}"


def _duration(value: Any) -> str:
    number = _number(value)
    if number is None:
        return _summary_text(value)
    return f"{number:.1f} s" if number < 120 else f"{number / 60:.1f} min"


def _date_text(value: Any) -> str:
    if _missing(value):
        return ""
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if isinstance(value, date):  # datetime and pd.Timestamp too; strftime("%Y-%m-%d"), faster
        return f"{value.year}-{value.month:02d}-{value.day:02d}"
    text = str(value).strip()
    if not text or _ISO_DAY.fullmatch(text):  # what the screening writes: nothing to parse
        return text
    parsed = pd.to_datetime(text, errors="coerce")
    return text if pd.isna(parsed) else parsed.strftime("%Y-%m-%d")


_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _dates(values: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        dates = values
    else:
        dates = pd.to_datetime(values.astype(object).where(values.notna(), None),
                               errors="coerce", format="ISO8601")
    if getattr(dates.dtype, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    return dates.astype("datetime64[ns]")


def _text_series(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column as ``str`` values, ``""`` for missing (fast path for text columns)."""
    if column not in frame:
        return pd.Series("", index=frame.index, dtype=object)
    values = frame[column]
    if pd.api.types.is_integer_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype(str).astype(object)
    values = values.astype(object)
    values = values.where(values.notna(), "")
    if pd.api.types.infer_dtype(values, skipna=False) in ("string", "empty"):
        return values
    return values.map(_text)


if __name__ == "__main__":  # python -m pipeline.report.html REPORT.html OUT.png
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python -m pipeline.report.html REPORT.html SCREENSHOT.png")
    sys.stdout.write(f"{save_screenshot(sys.argv[1], sys.argv[2])}\n")
