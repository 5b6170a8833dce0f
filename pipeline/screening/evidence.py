"""Human-readable ``reasons`` and ``evidence`` columns of the patients frame."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from .frame import format_date, join_by

__all__ = ["EVIDENCE_MAX_CHARS", "EVIDENCE_SEPARATOR", "evidence_text", "join_reasons"]

EVIDENCE_SEPARATOR = " | "
# Keeps patients.csv readable in a spreadsheet cell (Excel's limit is 32767);
# the full set of sentences is in mentions.parquet.
EVIDENCE_MAX_CHARS = 2000
_ELLIPSIS = " | …"


def evidence_text(prepared: pd.DataFrame, picks: pd.DataFrame,
                  max_chars: int = EVIDENCE_MAX_CHARS) -> pd.Series:
    """person_id -> the sentences behind the decision, oldest first.

    ``picks`` has person_id and row (a row of ``prepared``). Each sentence
    appears once per note: ``[note 17, 2025-05-12] Acute L2 compression
    fracture with marrow oedema. | [note 18, 2025-05-13] INR 1.0.`` Undated
    notes show ``undated``. Text longer than ``max_chars`` is cut at a
    sentence boundary and ends with ``| …``.
    """
    if picks.empty:
        return pd.Series(dtype=object)
    # ``row`` is the position in ``prepared`` (a RangeIndex), so no merge is needed.
    picks = picks.dropna(subset=["row"]).astype({"row": "int64"}).drop_duplicates(
        ["person_id", "row"])
    chosen = prepared.iloc[picks["row"].to_numpy()][
        ["note_id", "note_date", "snippet", "lexical_variant", "seq"]].reset_index(drop=True)
    chosen["person_id"] = picks["person_id"].to_numpy()
    sentence = chosen["snippet"].where(chosen["snippet"] != "", chosen["lexical_variant"])
    chosen["sentence"] = [" ".join(text.split()) for text in sentence]
    chosen = chosen.sort_values("seq", kind="stable").drop_duplicates(
        ["person_id", "note_id", "sentence"])
    date = format_date(chosen["note_date"]).replace("", "undated")
    chosen["item"] = "[note " + chosen["note_id"] + ", " + date + "] " + chosen["sentence"]
    joined = join_by(chosen["person_id"], chosen["item"], EVIDENCE_SEPARATOR)
    too_long = joined.str.len() > max_chars
    if too_long.any():
        joined[too_long] = joined[too_long].map(lambda text: _truncate(text, max_chars))
    return joined


def _truncate(text: str, max_chars: int) -> str:
    room = max_chars - len(_ELLIPSIS)
    cut = text.rfind(EVIDENCE_SEPARATOR, 0, room + 1)
    head = text[:cut] if cut > 0 else text[:room]
    return head + _ELLIPSIS


def join_reasons(parts: Iterable[pd.Series], index: pd.Index) -> pd.Series:
    """``"; "``-join the non-empty reason parts of each patient, in the given order.

    Each part is a person_id-indexed Series of text (absent = nothing to say).
    """
    aligned = [part.reindex(index).fillna("").astype(str).tolist() for part in parts]
    joined = ["; ".join(text for text in texts if text) for texts in zip(*aligned)]
    return pd.Series(joined, index=index, dtype=object)
