"""The mentions frame as the screening stage reads it.

``prepare_mentions`` keeps only the *affirmed* mentions of the concepts the
screening uses (affirmed = not negated, not uncertain, not hypothetical, not
family; SPEC §4) and normalises their columns once, so the decision modules
can rely on types. Historical mentions are kept: they count as chronic
fracture evidence and are filtered out by each decision that needs current
facts.

Every kept mention gets:

* ``row`` — its position in the prepared frame (the key evidence refers to);
* ``note_date`` — the note's day (time of day dropped), ``NaT`` when unknown;
* ``seq`` — its rank in time order: note date (undated notes count as
  oldest), then note order in the input, then character offset. The latest
  lab value is the one with the highest ``seq``; level statuses compare
  note dates (see ``levels.decide_level_status``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..nlp.levels import RANK as LEVEL_ORDER, UNSPECIFIED  # one craniocaudal order for all stages

SCREENED_CONCEPTS = frozenset({
    "FRACTURE", "OEDEMA", "RETROPULSION", "EPIDURAL_DISEASE", "INFECTION",
    "COAGULOPATHY", "ANTICOAGULANT", "MALIGNANCY", "PAIN", "OSTEOPOROSIS",
})

#: Screened concepts whose mentions count only in the window around the patient's
#: index date (contraindications.in_window; pain in the score). A note dated outside
#: the window whose only possible mentions are of these cannot change a patient's row.
WINDOWED_CONCEPTS = frozenset({"INFECTION", "COAGULOPATHY", "PAIN"})

_CONCEPT_CATEGORIES = sorted(SCREENED_CONCEPTS)

_OTHER_LEVEL_RANK = len(LEVEL_ORDER)          # unknown labels sort after S5 ...
_UNSPECIFIED_RANK = len(LEVEL_ORDER) + 1      # ... and `unspecified` always last

_TEXT_COLUMNS = ("note_id", "person_id", "concept", "levels", "acuity", "aetiology",
                 "scope", "lab", "corrected", "med_status", "modality", "snippet",
                 "lexical_variant")
TRUE_STRINGS = frozenset({"true", "t", "1", "yes", "y"})


def level_rank(levels: pd.Series) -> pd.Series:
    """Craniocaudal sort key: C1..C7, T1..T12, L1..L5, S1..S5, others, `unspecified`."""
    rank = levels.map(LEVEL_ORDER)
    rank = rank.where(levels != UNSPECIFIED, _UNSPECIFIED_RANK)
    return rank.fillna(_OTHER_LEVEL_RANK).astype("int64")


def _groups(keys) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.Index]:
    """Stable grouping: (order, starts, ends, group keys), groups in first-seen order."""
    codes, uniques = pd.factorize(np.asarray(keys, dtype=object))
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    bounds = np.flatnonzero(sorted_codes[1:] != sorted_codes[:-1]) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(codes)]))
    return order, starts, ends, pd.Index(uniques.take(sorted_codes[starts]), dtype=object)


def join_by(keys, values, sep: str) -> pd.Series:
    """``sep``-join ``values`` per key, keeping their order within each key.

    The same result as ``groupby(keys).agg(sep.join)`` without a Python call
    per group into pandas, which matters for a million patients.
    """
    if len(keys) == 0:
        return pd.Series(dtype=object)
    order, starts, ends, index = _groups(keys)
    items = np.asarray(values, dtype=object)[order].tolist()
    return pd.Series([sep.join(items[start:end]) for start, end in zip(starts, ends)],
                     index=index, dtype=object)


def collect_by(keys, values) -> pd.Series:
    """Lists of ``values`` per key (as ``groupby(keys).agg(list)``, faster)."""
    if len(keys) == 0:
        return pd.Series(dtype=object)
    order, starts, ends, index = _groups(keys)
    items = np.asarray(values)[order].tolist()
    return pd.Series([items[start:end] for start, end in zip(starts, ends)],
                     index=index, dtype=object)


def format_date(dates: pd.Series) -> pd.Series:
    """ISO day, or ``""`` when unknown."""
    text = dates.dt.strftime("%Y-%m-%d")
    return text.fillna("").astype(object)


def as_dates(values: pd.Series) -> pd.Series:
    """Coerce a date column to naive day-precision ``datetime64[ns]`` (NaT if unparseable)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        dates = values
    else:
        dates = pd.to_datetime(values.replace("", None), errors="coerce", format="ISO8601")
    if getattr(dates.dtype, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    return dates.astype("datetime64[ns]").dt.normalize()


def as_text(values: pd.Series) -> pd.Series:
    """Strings, ``""`` for missing; a column that already holds only strings is kept as is."""
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=False) == "string":
        return values
    if values.dtype != object:
        values = values.astype(object)
    values = values.where(values.notna(), "")
    return values.astype(str)


def _text(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series("", index=frame.index, dtype=object)
    return as_text(frame[column])


def affirmed_mask(mentions: pd.DataFrame) -> pd.Series:
    """Not negated, uncertain, hypothetical or about a family member (SPEC §4's "affirmed")."""
    return ~(flag_column(mentions, "negated") | flag_column(mentions, "uncertain")
             | flag_column(mentions, "hypothetical") | flag_column(mentions, "family"))


def flag_column(frame: pd.DataFrame, column: str) -> pd.Series:
    """A boolean flag column from any saved form (bool, 0/1, "true"/"false"); False when absent."""
    if column not in frame:
        return pd.Series(False, index=frame.index)
    values = frame[column]
    if pd.api.types.is_bool_dtype(values):
        return values.fillna(False).astype(bool)
    if pd.api.types.is_numeric_dtype(values):
        return values.fillna(0).astype(bool)
    # Saved CSV mentions: "true"/"false" text.
    return values.astype(str).str.strip().str.lower().isin(TRUE_STRINGS)


def _levels_text(frame: pd.DataFrame) -> pd.Series:
    if "levels" in frame and len(frame) and pd.api.types.infer_dtype(
            frame["levels"], skipna=True) not in ("string", "empty"):
        # Lists of levels (e.g. gold annotations) rather than ";"-joined text.
        return frame["levels"].map(
            lambda value: ";".join(value) if isinstance(value, (list, tuple, np.ndarray))
            else ("" if value is None or value != value else str(value)))
    return _text(frame, "levels")


def prepare_mentions(mentions: pd.DataFrame | None,
                     notes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Affirmed mentions of the screened concepts, typed and time-ordered.

    ``note_date`` comes from the mentions frame, or from ``notes`` (by
    ``note_id``) when the mentions frame has none. Missing optional columns
    take their empty value, so older saved mention files still re-score.
    """
    if mentions is None or len(mentions) == 0:
        return _empty()
    keep = affirmed_mask(mentions) & _text(mentions, "concept").isin(SCREENED_CONCEPTS)
    return _prepared(mentions.loc[keep.to_numpy()], notes)


def prepare_denials(mentions: pd.DataFrame | None,
                    notes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Fracture mentions that deny a fracture at a named level and say nothing more.

    "T12: no fracture", "no compression fracture at T12 or L1": negated, not
    uncertain, hypothetical, about a relative or historical, naming their
    levels, and not qualified by age or change: "no acute fracture at L1"
    (only its age is denied), "no new fracture at L1" and "no further
    collapse of L1" (the old one stands) are not denials of the level.
    ``levels.retire_denied`` reads them; prepared as ``prepare_mentions``.
    """
    if mentions is None or len(mentions) == 0:
        return _empty()
    keep = ((_text(mentions, "concept") == "FRACTURE") & flag_column(mentions, "negated")
            & ~(flag_column(mentions, "uncertain") | flag_column(mentions, "hypothetical")
                | flag_column(mentions, "family") | flag_column(mentions, "historical")
                | flag_column(mentions, "new"))
            & (_text(mentions, "acuity") == "") & (_levels_text(mentions) != ""))
    return _prepared(mentions.loc[keep.to_numpy()], notes)


def _prepared(source: pd.DataFrame, notes: pd.DataFrame | None) -> pd.DataFrame:
    if source.empty:
        return _empty()
    prepared = pd.DataFrame(index=pd.RangeIndex(len(source)))
    for column in _TEXT_COLUMNS:
        prepared[column] = _text(source, column).to_numpy()
    prepared["levels"] = _levels_text(source).str.replace(" ", "", regex=False).to_numpy()
    prepared["historical"] = flag_column(source, "historical").to_numpy()
    prepared["new"] = flag_column(source, "new").to_numpy()
    prepared["value"] = (pd.to_numeric(source["value"], errors="coerce").to_numpy(dtype=float)
                         if "value" in source else np.nan)
    prepared["start"] = (pd.to_numeric(source["start"], errors="coerce").fillna(0)
                         .astype("int64").to_numpy() if "start" in source else 0)
    if "note_date" in source:
        prepared["note_date"] = as_dates(source["note_date"]).to_numpy()
    elif notes is not None and "note_date" in notes and "note_id" in notes:
        by_note = pd.Series(as_dates(notes["note_date"]).to_numpy(),
                            index=_text(notes, "note_id").to_numpy())
        by_note = by_note[~by_note.index.duplicated()]
        prepared["note_date"] = prepared["note_id"].map(by_note).astype("datetime64[ns]")
    else:
        prepared["note_date"] = pd.Series(pd.NaT, index=prepared.index, dtype="datetime64[ns]")

    # Time order: undated notes are the oldest.
    date_key = date_keys(prepared["note_date"])
    note_order = pd.factorize(prepared["note_id"])[0]
    order = np.lexsort((prepared["start"].to_numpy(), note_order, date_key))
    seq = np.empty(len(prepared), dtype="int64")
    seq[order] = np.arange(len(prepared))
    prepared["seq"] = seq
    prepared["row"] = prepared.index.to_numpy()
    # Categorical: the many "concept == X" selections then cost almost nothing.
    prepared["concept"] = pd.Categorical(prepared["concept"], categories=_CONCEPT_CATEGORIES)
    return prepared


def date_keys(dates: pd.Series) -> np.ndarray:
    """Note dates as int64 sort keys: NaT is the smallest int64, so undated notes are the oldest."""
    return dates.to_numpy(dtype="datetime64[ns]").astype("int64")


def patient_groups(person_ids: pd.Series, count: int) -> np.ndarray:
    """The group (0 to ``count`` - 1) of each row: a stable hash of ``person_id`` modulo ``count``.

    Screening a cohort in such groups gives the rows of screening it whole:
    a patient's row depends on that patient's mentions only.
    """
    hashes = pd.util.hash_pandas_object(person_ids.astype(str), index=False).to_numpy()
    return (hashes % count).astype("int64")


def of_concept(prepared: pd.DataFrame, *concepts: str) -> pd.DataFrame:
    """The rows of ``prepared`` with one of ``concepts`` (select first, then compare text)."""
    if len(concepts) == 1:
        return prepared[prepared["concept"] == concepts[0]]
    return prepared[prepared["concept"].isin(concepts)]


def _empty() -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series(dtype=object) for column in _TEXT_COLUMNS})
    frame["concept"] = pd.Categorical([], categories=_CONCEPT_CATEGORIES)
    frame["historical"] = pd.Series(dtype=bool)
    frame["new"] = pd.Series(dtype=bool)
    frame["value"] = pd.Series(dtype=float)
    frame["start"] = pd.Series(dtype="int64")
    frame["note_date"] = pd.Series(dtype="datetime64[ns]")
    frame["seq"] = pd.Series(dtype="int64")
    frame["row"] = pd.Series(dtype="int64")
    return frame
