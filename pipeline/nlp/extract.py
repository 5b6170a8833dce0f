"""The batch function every engine runs: notes in, note rows and mention rows out.

``process_batch(batch, extractor)`` takes a canonical notes frame (see
``docs/design.md``) and returns ``(notes, mentions)`` frames. It never raises
for a bad note: the note gets ``status="error"`` and ``error`` names the
exception class (never the note text), and the batch goes on.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..prefilter import Prefilter, compile_prefilter
from .attributes import affirmed
from .levels import join_levels
from .pipeline import Extractor
from .rules import RuleSet, load_rules

logger = logging.getLogger(__name__)

SNIPPET_LIMIT = 250

NOTE_FLAGS = ["fracture", "acute_fracture", "oedema", "retropulsion", "epidural_disease",
              "infection", "coagulopathy", "anticoagulant", "malignancy"]
NOTE_COLUMNS = ["row", "note_id", "person_id", "note_date", "note_title", "status", "error",
                "n_mentions", *NOTE_FLAGS]
MENTION_COLUMNS = [
    "note_nlp_id", "note_id", "person_id", "note_date", "section_concept_id", "snippet",
    "snippet_start", "offset", "lexical_variant", "note_nlp_concept_id",
    "note_nlp_source_concept_id", "nlp_system", "nlp_date", "nlp_datetime", "term_exists",
    "term_temporal", "term_modifiers", "concept", "start", "end", "section", "negated",
    "uncertain", "historical", "hypothetical", "family", "levels", "acuity", "aetiology",
    "scope", "lab", "value", "unit", "corrected", "med_status", "modality", "new", "row",
]
BOOLEAN_ATTRIBUTES = ["negated", "uncertain", "historical", "hypothetical", "family", "new"]

#: Concepts that decide a patient's row on their own: whether there is a
#: fracture at all, and the flags reported for every patient. A note with a
#: trigger of these is processed at once; with ``defer``, a note whose only
#: triggers are of the other concepts (infection, coagulopathy and labs,
#: anticoagulants, pain, osteoporosis, prior augmentation: facts screening
#: reads only for a patient with a fracture) is *deferred* until the first
#: pass has found which patients have one (see :mod:`pipeline.run`).
FIRST_PASS_CONCEPTS = ("FRACTURE", "OEDEMA", "RETROPULSION", "EPIDURAL_DISEASE", "MALIGNANCY")
#: The status of a deferred note until the second pass decides it, and the
#: notes-frame column that carries its text until then.
DEFERRED = "deferred"
DEFERRED_TEXT = "deferred_text"

MODALITIES = [
    ("MRI", re.compile(r"\b(?:MRI|MR|magnetic resonance|STIR)\b", re.IGNORECASE)),
    ("NM", re.compile(r"\b(?:bone scan|scintigra\w*|nuclear medicine|SPECT|NM)\b", re.IGNORECASE)),
    ("CT", re.compile(r"\b(?:CT|computed tomography|CAT scan)\b", re.IGNORECASE)),
    ("XR", re.compile(r"\b(?:x-?rays?|radiographs?|XR|CXR|plain films?|AP and lateral|views)\b", re.IGNORECASE)),
]


#: The columns of the notes and mentions frames that are not text.
COLUMN_DTYPES = {
    **dict.fromkeys(("row", "n_mentions", "start", "end", "snippet_start", "note_nlp_id", "section_concept_id",
                     "note_nlp_concept_id", "note_nlp_source_concept_id"), "int64"),
    "note_date": "datetime64[ns]",
    "value": "float64",
    **dict.fromkeys((*BOOLEAN_ATTRIBUTES, *NOTE_FLAGS), "bool"),
}


def empty_frame(columns: list[str]) -> pd.DataFrame:
    """A frame with no rows and ``columns`` typed as a filled one's (not all object): concatenated
    with others, it changes no column's dtype. Text columns are ``str``: object on pandas 2, the
    string dtype pandas 3 gives a column of Python strings."""
    return pd.DataFrame({column: pd.Series(dtype=COLUMN_DTYPES.get(column, str)) for column in columns})


def modality_of(title: str, text: str) -> str:
    """The imaging modality of a report, from its title or first lines ("" for clinical notes)."""
    for source in (title or "", text[:200]):
        for name, pattern in MODALITIES:
            if pattern.search(source):
                return name
    return ""


def note_nlp_id(note_id: str, start: int, end: int, concept: str, lab: str) -> int:
    """A deterministic 63-bit id: the same mention gets the same id in every engine and run."""
    digest = hashlib.blake2b(f"{note_id}\x1f{start}\x1f{end}\x1f{concept}\x1f{lab}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def term_modifiers(mention: dict, levels: str | None = None) -> str:
    """``negated=false;...;levels=T12;L1``; ``levels``: the mention's levels joined, if known."""
    parts = [f"{name}={'true' if mention[name] else 'false'}" for name in BOOLEAN_ATTRIBUTES]
    for name in ("section", "acuity", "aetiology", "scope", "lab", "unit", "corrected", "med_status"):
        if mention[name]:
            parts.append(f"{name}={mention[name]}")
    if mention["value"] is not None:
        parts.append(f"value={mention['value']:g}")
    if mention["levels"]:
        parts.append(f"levels={join_levels(mention['levels']) if levels is None else levels}")
    return ";".join(parts)


def snippet(text: str, mention: dict) -> tuple[str, int]:
    """The sentence of a mention, cut to at most 250 characters around it."""
    start, end = mention["sentence_start"], mention["sentence_end"]
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end - start > SNIPPET_LIMIT:
        centre = (mention["start"] + mention["end"]) // 2
        start = max(start, min(centre - SNIPPET_LIMIT // 2, end - SNIPPET_LIMIT))
        end = min(end, start + SNIPPET_LIMIT)
    return text[start:end], start


def note_flags(mentions: list[dict]) -> dict[str, bool]:
    """Note-level flags: any affirmed, current mention of the concept."""
    current = [m for m in mentions if affirmed(m) and not m["historical"]]
    concepts = {m["concept"] for m in current}
    return {
        "fracture": "FRACTURE" in concepts,
        "acute_fracture": any(m["concept"] == "FRACTURE" and (m["acuity"] in ("acute", "subacute") or m["new"])
                              for m in current),
        "oedema": "OEDEMA" in concepts,
        "retropulsion": "RETROPULSION" in concepts,
        "epidural_disease": "EPIDURAL_DISEASE" in concepts,
        "infection": any(m["concept"] == "INFECTION" and not m["corrected"] for m in current),
        "coagulopathy": "COAGULOPATHY" in concepts,
        "anticoagulant": any(m["concept"] == "ANTICOAGULANT" and m["med_status"] != "held" for m in current),
        "malignancy": "MALIGNANCY" in concepts or any(m["aetiology"] == "malignant" for m in current),
    }


@dataclass
class BatchProcessor:
    """Holds what a worker builds once: the pipeline, the pre-filter, the run stamp."""

    patterns: list[str] = field(default_factory=list)
    nlp_date: str = field(default_factory=lambda: _dt.date.today().isoformat())
    nlp_datetime: str = field(default_factory=lambda: _dt.datetime.now().replace(microsecond=0).isoformat())
    use_prefilter: bool = True
    #: defer notes whose only triggers are of concepts outside FIRST_PASS_CONCEPTS
    defer: bool = False

    def __post_init__(self):
        self.rules: RuleSet = load_rules([Path(p) for p in self.patterns])
        self.extractor = Extractor(rules=self.rules)
        self.prefilter: Prefilter = compile_prefilter(self.rules)
        self.first_pass: Prefilter = compile_prefilter(self.rules, concepts=FIRST_PASS_CONCEPTS)
        self.nlp_system = f"vertebro {__version__}"

    def __call__(self, batch: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        return process_batch(batch, self)

    def without_deferring(self) -> BatchProcessor:
        """The same pipeline (not rebuilt), processing every note with a trigger."""
        full = copy.copy(self)
        full.defer = False
        return full


def _note_row(note, status: str, error: str, mentions: list[dict]) -> dict:
    return {
        "row": note.row, "note_id": note.note_id, "person_id": note.person_id,
        "note_date": note.note_date, "note_title": note.note_title, "status": status,
        "error": error, "n_mentions": len(mentions), **note_flags(mentions),
    }


def process_batch(batch: pd.DataFrame, processor: BatchProcessor) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Extract the mentions of one batch of notes (the function every engine runs).

    With ``processor.defer`` (and the pre-filter on), a note that can only
    hold mentions of concepts outside :data:`FIRST_PASS_CONCEPTS` is not
    processed: its row has status ``deferred`` and its text is in the
    ``deferred_text`` column, for the second pass.
    """
    defer = processor.defer and processor.use_prefilter
    note_rows: list[dict] = []
    mention_rows: list[dict] = []
    for note in batch.itertuples(index=False):
        text = note.note_text
        if text is None or (isinstance(text, float) and np.isnan(text)) or not str(text).strip():
            note_rows.append(_note_row(note, "empty", "", []))
            continue
        text = str(text)
        if processor.use_prefilter and not processor.prefilter(text):
            note_rows.append(_note_row(note, "no_trigger", "", []))
            continue
        if defer and not processor.first_pass(text):
            row = _note_row(note, DEFERRED, "", [])
            row[DEFERRED_TEXT] = text
            note_rows.append(row)
            continue
        try:
            title = note.note_title if isinstance(note.note_title, str) else ""
            mentions = processor.extractor.mentions(text, title, note.note_date)
            modality = modality_of(title, text)
            rows = [_mention_row(note, text, mention, modality, processor) for mention in mentions]
        except Exception as error:  # a bad note never kills the batch
            logger.warning("note %s (row %s) failed: %s", note.note_id, note.row, type(error).__name__)
            note_rows.append(_note_row(note, "error", type(error).__name__, []))
            continue
        mention_rows.extend(rows)
        note_rows.append(_note_row(note, "processed", "", mentions))
    note_columns = [*NOTE_COLUMNS, DEFERRED_TEXT] if defer else NOTE_COLUMNS
    notes = pd.DataFrame(note_rows, columns=note_columns) if note_rows else empty_frame(note_columns)
    if not mention_rows:
        return notes, empty_frame(MENTION_COLUMNS)
    # rows as tuples in MENTION_COLUMNS order: pandas builds a frame from tuples faster than from dicts
    return notes, pd.DataFrame.from_records(mention_rows, columns=MENTION_COLUMNS, nrows=len(mention_rows))


def _mention_row(note, text: str, mention: dict, modality: str, processor: BatchProcessor) -> tuple:
    """One row of the mentions frame, its values in ``MENTION_COLUMNS`` order (each commented)."""
    sentence, sentence_start = snippet(text, mention)
    levels = join_levels(mention["levels"])
    return (
        note_nlp_id(note.note_id, mention["start"], mention["end"], mention["concept"],
                    mention["lab"]),                                # note_nlp_id
        note.note_id,                                               # note_id
        note.person_id,                                             # person_id
        note.note_date,                                             # note_date
        0,                                                          # section_concept_id
        sentence,                                                   # snippet
        sentence_start,                                             # snippet_start
        str(mention["start"]),                                      # offset
        mention["lexical_variant"],                                 # lexical_variant
        0,                                                          # note_nlp_concept_id
        0,                                                          # note_nlp_source_concept_id
        processor.nlp_system,                                       # nlp_system
        processor.nlp_date,                                         # nlp_date
        processor.nlp_datetime,                                     # nlp_datetime
        "Y" if affirmed(mention) else "N",                          # term_exists
        "historical" if mention["historical"] else "present",       # term_temporal
        term_modifiers(mention, levels),                            # term_modifiers
        mention["concept"],                                         # concept
        mention["start"],                                           # start
        mention["end"],                                             # end
        mention["section"],                                         # section
        mention["negated"],                                         # negated
        mention["uncertain"],                                       # uncertain
        mention["historical"],                                      # historical
        mention["hypothetical"],                                    # hypothetical
        mention["family"],                                          # family
        levels,                                                     # levels
        mention["acuity"],                                          # acuity
        mention["aetiology"],                                       # aetiology
        mention["scope"],                                           # scope
        mention["lab"],                                             # lab
        np.nan if mention["value"] is None else float(mention["value"]),  # value
        mention["unit"],                                            # unit
        mention["corrected"],                                       # corrected
        mention["med_status"],                                      # med_status
        modality,                                                   # modality
        mention["new"],                                             # new
        note.row,                                                   # row
    )
