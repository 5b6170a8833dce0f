"""Golden files: whole notes, their expected mention table and patient row, compared exactly.

When a rule change alters one of these on purpose, regenerate the expected
files and review the diff like any other change of behaviour.
"""

from pathlib import Path

import pandas as pd
import pytest

import pipeline

GOLDEN = Path(__file__).parent / "golden"
MENTION_COLUMNS = ["note_id", "concept", "start", "end", "lexical_variant", "section", "negated",
                   "uncertain", "historical", "hypothetical", "family", "levels", "acuity",
                   "aetiology", "scope", "lab", "value", "corrected", "new"]
PATIENT_COLUMNS = ["person_id", "tier", "fracture_levels", "acute_levels", "candidate_levels",
                   "fracture", "acute_fracture", "oedema", "retropulsion", "epidural_disease",
                   "malignancy"]


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(object).where(frame.notna(), "").astype(str).reset_index(drop=True)


@pytest.mark.parametrize("note", sorted(path.name.split(".")[0] for path in GOLDEN.glob("note-*.mentions.csv")))
def test_golden_note(note):
    notes = _read(GOLDEN / f"{note}.csv")
    result = pipeline.screen(notes)
    mentions = _as_text(result.mentions[MENTION_COLUMNS]).replace({"nan": ""})
    expected = _read(GOLDEN / f"{note}.mentions.csv")
    pd.testing.assert_frame_equal(mentions, expected, check_dtype=False)
    patient = _as_text(result.patients[PATIENT_COLUMNS])
    pd.testing.assert_frame_equal(patient, _read(GOLDEN / f"{note}.patient.csv"), check_dtype=False)
