"""report.xlsx (``--excel``): the patients and their evidence for spreadsheet review.

Two sheets:

* **Patients** — the patients frame (docs/design.md §4), one row per
  patient, in the report's order (tier, then best score);
* **Evidence** — one row per *affirmed* mention (not negated, uncertain,
  hypothetical or family) of every screened concept: patient, note, date,
  concept, matched text, attributes, levels and the sentence. ``LEVEL``
  mentions are not rows of their own: they are the ``levels`` of the
  others.

Note text is untrusted and spreadsheets execute formulas, so every text
cell is written as text: a value starting with ``=``, ``+``, ``-`` or ``@``
(or spelling an error code such as ``#N/A``) gets an explicit string type
and Excel's quote prefix, never a formula. Characters the XML of a sheet
cannot hold (control characters) are dropped, values longer than a cell
holds are cut with ``TRUNCATION_MARKER``, and a table longer than a sheet
continues on "Evidence 2", "Evidence 3", ….

The workbook is streamed (openpyxl write-only mode), so memory stays flat
however many mentions there are.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter

from ..io.writers import atomic_path
from .html import table_order

__all__ = ["write_excel_report", "evidence_table", "patient_table",
           "MAX_SHEET_ROWS", "MAX_CELL_CHARS", "TRUNCATION_MARKER"]

#: Rows per sheet, header included (Excel's limit). Tests lower it.
MAX_SHEET_ROWS = 1_048_576
#: Characters per cell (Excel's limit).
MAX_CELL_CHARS = 32_767
TRUNCATION_MARKER = "…[truncated]"

#: A text cell starting with one of these would be read as a formula by
#: Excel (or by openpyxl, for "="); such cells are forced to text.
FORMULA_PREFIXES = ("=", "+", "-", "@")

EVIDENCE_COLUMNS = (
    "person_id", "tier", "note_id", "note_date", "concept", "lexical_variant", "levels",
    "acuity", "aetiology", "historical", "new", "section", "scope", "lab", "value", "unit",
    "corrected", "med_status", "modality", "start", "end", "snippet",
)
_DENIALS = ("negated", "uncertain", "hypothetical", "family")
_TRUE_STRINGS = frozenset({"true", "t", "1", "yes", "y"})

_HEADER_FONT = Font(bold=True, color="FFFFFF")
_HEADER_FILL = PatternFill("solid", fgColor="243B53")
_WIDE_COLUMNS = {"snippet": 90, "reasons": 70, "evidence": 50, "lexical_variant": 28}


def write_excel_report(path: str | os.PathLike, *, patients: pd.DataFrame,
                       mentions: pd.DataFrame) -> None:
    """Write ``report.xlsx`` atomically: Patients and Evidence sheets (see module doc)."""
    workbook = Workbook(write_only=True)
    _write_table(workbook, "Patients", patient_table(patients))
    _write_table(workbook, "Evidence", evidence_table(mentions, patients))
    with atomic_path(path) as temporary:
        workbook.save(temporary)


def patient_table(patients: pd.DataFrame | None) -> pd.DataFrame:
    """The patients frame in report order: tier (candidates first), then score."""
    if patients is None or patients.empty:
        return pd.DataFrame(columns=list(patients.columns) if patients is not None else ["person_id"])
    return patients.iloc[table_order(patients, limit=len(patients))].reset_index(drop=True)


def evidence_table(mentions: pd.DataFrame | None,
                   patients: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per affirmed, non-``LEVEL`` mention, by patient then note date.

    ``tier`` is looked up from ``patients`` so the sheet can be filtered by
    tier; columns absent from ``mentions`` are left out.
    """
    if mentions is None or mentions.empty or "concept" not in mentions:
        return pd.DataFrame(columns=list(EVIDENCE_COLUMNS))
    denied = np.zeros(len(mentions), dtype=bool)
    present = [column for column in _DENIALS if column in mentions]
    for column in present:
        denied |= _flags(mentions[column])
    if not present and "term_exists" in mentions:
        denied = mentions["term_exists"].astype(str).str.upper().eq("N").to_numpy()
    concept = mentions["concept"].astype(str)
    keep = ~denied & concept.ne("LEVEL").to_numpy() & concept.ne("").to_numpy()
    rows = mentions.loc[keep].copy()
    if patients is not None and "tier" in patients and "person_id" in patients:
        tiers = pd.Series(patients["tier"].to_numpy(), index=patients["person_id"].astype(str))
        rows["tier"] = rows["person_id"].astype(str).map(tiers[~tiers.index.duplicated()])
    columns = [column for column in EVIDENCE_COLUMNS if column in rows]
    rows = rows[columns]
    sort_keys = [column for column in ("person_id", "note_date", "note_id", "start") if column in rows]
    if sort_keys:
        rows = rows.sort_values(sort_keys, kind="stable", na_position="last")
    return rows.reset_index(drop=True)


def cell_value(value: Any) -> Any:
    """A frame value as openpyxl should store it (text cleaned and cut to fit).

    Lists become ``;``-joined text, timestamps naive datetimes (or dates at
    midnight), NaN/NaT/None an empty cell.
    """
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return None if math.isnan(number) else (number if math.isfinite(number) else str(number))
    if isinstance(value, (pd.Timestamp, datetime, np.datetime64)):
        stamp = pd.Timestamp(value)
        if stamp.tzinfo is not None:
            stamp = stamp.tz_localize(None)
        moment = stamp.to_pydatetime()
        return moment.date() if moment.time() == datetime.min.time() else moment
    if isinstance(value, date):
        return value
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return _clean_text(";".join("" if cell_value(item) is None else str(item) for item in value))
    if isinstance(value, dict):
        return _clean_text(json.dumps(value, ensure_ascii=False, default=str))
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return _clean_text(str(value))


def _clean_text(text: str) -> str:
    text = ILLEGAL_CHARACTERS_RE.sub("", text)
    # A lone surrogate (undecodable file names) cannot be written as XML.
    text = text.encode("utf-8", "replace").decode("utf-8")
    if len(text) > MAX_CELL_CHARS:
        text = text[:MAX_CELL_CHARS - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER
    return text


def _write_table(workbook: Workbook, title: str, table: pd.DataFrame) -> None:
    """Write ``table`` on sheet ``title``, continuing on "title 2", … when full."""
    rows_per_sheet = MAX_SHEET_ROWS - 1  # one row is the header
    if rows_per_sheet < 1:
        raise ValueError("MAX_SHEET_ROWS must leave room for a header and a row")
    columns = [str(column) for column in table.columns]
    widths = _column_widths(table)
    chunks = max(1, math.ceil(len(table) / rows_per_sheet))
    for index in range(chunks):
        chunk = table.iloc[index * rows_per_sheet:(index + 1) * rows_per_sheet]
        sheet = workbook.create_sheet(title if index == 0 else f"{title} {index + 1}")
        sheet.freeze_panes = "A2"
        for number, width in enumerate(widths, start=1):
            sheet.column_dimensions[get_column_letter(number)].width = width
        if columns:
            sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{len(chunk) + 1}"
        sheet.append([_header_cell(sheet, name) for name in columns])
        for values in chunk.itertuples(index=False, name=None):
            sheet.append(list(_row_cells(sheet, values)))


def _row_cells(sheet: Any, values: Sequence[Any]) -> Iterator[Any]:
    for value in values:
        value = cell_value(value)
        if isinstance(value, str) and (value.startswith(FORMULA_PREFIXES) or value in ERROR_CODES):
            yield _text_cell(sheet, value)
        else:
            yield value


def _text_cell(sheet: Any, text: str) -> WriteOnlyCell:
    """A cell that holds ``text`` as a string, whatever it starts with."""
    cell = WriteOnlyCell(sheet, text)
    cell.data_type = "s"     # openpyxl inferred "f" for "=…" and "e" for "#N/A"
    cell.quotePrefix = True  # and Excel keeps it text when the cell is edited
    return cell


def _header_cell(sheet: Any, name: str) -> WriteOnlyCell:
    cell = _text_cell(sheet, name) if name.startswith(FORMULA_PREFIXES) else WriteOnlyCell(sheet, name)
    cell.font = _HEADER_FONT
    cell.fill = _HEADER_FILL
    return cell


def _column_widths(table: pd.DataFrame) -> list[float]:
    """Widths from the header and the first rows; long text columns get a fixed width."""
    sample = table.head(200)
    widths = []
    for column in table.columns:
        name = str(column)
        if name in _WIDE_COLUMNS:
            widths.append(_WIDE_COLUMNS[name])
            continue
        longest = max((len(str(cell_value(value) or "")) for value in sample[column]), default=0)
        widths.append(float(min(max(len(name) + 3, longest + 2, 8), 40)))
    return widths


def _flags(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values):
        return values.fillna(False).to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(values):
        return values.fillna(0).astype(bool).to_numpy()
    return values.astype(str).str.strip().str.lower().isin(_TRUE_STRINGS).to_numpy()
