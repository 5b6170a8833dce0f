"""Screening (SPEC §4-§5) on hand-made mention frames: no NLP involved.

Each mention is built with ``mention()`` (or a concept shortcut) carrying
the attributes the extractor would set; ``screen()`` runs
``screen_patients`` and returns the patients frame indexed by person_id.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.config import Config, load_config
from pipeline.screening import PATIENT_COLUMNS, LevelStatus, Tier, screen_patients
from pipeline.screening.evidence import EVIDENCE_MAX_CHARS
from pipeline.screening.levels import level_evidence, decide_level_status, fracture_rows
from pipeline.screening.frame import prepare_mentions

INDEX = "2025-05-01"
_offsets = itertools.count()

# The mentions frame of docs/design.md §3, with the empty value of each column.
MENTION_DEFAULTS = {
    "note_nlp_id": 0, "note_id": "n1", "person_id": "P1", "note_date": INDEX,
    "section_concept_id": 0, "snippet": "", "snippet_start": 0, "offset": "0",
    "lexical_variant": "", "note_nlp_concept_id": 0, "note_nlp_source_concept_id": 0,
    "nlp_system": "vertebro test", "nlp_date": "2025-06-01", "nlp_datetime": "",
    "term_exists": "Y", "term_temporal": "present", "term_modifiers": "",
    "concept": "FRACTURE", "start": 0, "end": 0, "section": "findings",
    "negated": False, "uncertain": False, "historical": False, "hypothetical": False,
    "family": False, "levels": "", "acuity": "", "aetiology": "", "scope": "", "lab": "",
    "value": float("nan"), "unit": "", "corrected": "", "med_status": "", "modality": "",
    "new": False,
}


def mention(concept: str, **attrs) -> dict:
    """One mention row; ``start`` increases in creation order unless given."""
    row = {**MENTION_DEFAULTS, "concept": concept, "start": next(_offsets) * 10, **attrs}
    row["snippet"] = attrs.get("snippet", f"{concept.lower()} {attrs.get('levels', '')}".strip())
    row["lexical_variant"] = attrs.get("lexical_variant", concept.lower())
    return row


def fracture(levels: str = "", acuity: str = "", **attrs) -> dict:
    return mention("FRACTURE", levels=levels, acuity=acuity, **attrs)


def oedema(levels: str = "", **attrs) -> dict:
    return mention("OEDEMA", levels=levels, **attrs)


def inr(value: float, **attrs) -> dict:
    return mention("COAGULOPATHY", lab="INR", value=value, section="labs",
                   snippet=f"INR {value}", **attrs)


def platelets(value: float, **attrs) -> dict:
    return mention("COAGULOPATHY", lab="platelets", value=value, unit="10^9/L",
                   section="labs", snippet=f"Platelets {value}", **attrs)


def acute_mri(levels: str = "L1", **attrs) -> list[dict]:
    """"Acute L1 compression fracture with marrow oedema" on MRI."""
    return [fracture(levels, "acute", modality="MRI", **attrs),
            oedema(levels, modality="MRI", **attrs)]


def mentions_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(MENTION_DEFAULTS))
    frame["note_date"] = pd.to_datetime(frame["note_date"])
    return frame


def notes_frame(rows: list[dict], extra_people: tuple[str, ...] = ()) -> pd.DataFrame:
    notes = [{"note_id": row["note_id"], "person_id": row["person_id"],
              "note_date": row["note_date"]} for row in rows]
    notes += [{"note_id": f"{person}-only", "person_id": person, "note_date": INDEX}
              for person in extra_people]
    return pd.DataFrame(notes, columns=["note_id", "person_id", "note_date"]).drop_duplicates(
        "note_id")


def screen(*groups, config: Config | None = None, extra_people: tuple[str, ...] = ()
           ) -> pd.DataFrame:
    rows = [row for group in groups for row in (group if isinstance(group, list) else [group])]
    patients = screen_patients(mentions_frame(rows), notes_frame(rows, extra_people),
                               config or Config())
    return patients.set_index("person_id", drop=False)


def one(*groups, **kwargs) -> pd.Series:
    """The single patient P1."""
    return screen(*groups, **kwargs).loc["P1"]


class Cohort:
    """A table of one-patient cases screened together in one call.

    Case ``key`` becomes its own person (note ids prefixed), so a parametrised
    test looks its patient up instead of paying a screening call per case,
    and the batch also shows that patients never leak into each other.
    """

    def __init__(self, cases: dict[str, list[dict]]):
        self.cases = cases
        self._patients: pd.DataFrame | None = None

    def __getitem__(self, key: str) -> pd.Series:
        if self._patients is None:
            rows = [{**row, "person_id": f"case {name}", "note_id": f"{name}/{row['note_id']}"}
                    for name, case in self.cases.items() for row in case]
            self._patients = screen(rows)
            assert len(self._patients) == len(self.cases)
        return self._patients.loc[f"case {key}"]


# --- Tiers, in SPEC precedence ----------------------------------------------

TIER_CASES = [
    # name, mentions, tier, candidate_levels
    ("no fracture", [oedema("L1")], Tier.NO_FRACTURE, ""),
    ("acute + oedema on MRI", [*acute_mri("L1"), inr(1.0)], Tier.CANDIDATE, "L1"),
    ("new fracture", [fracture("T12", new=True)], Tier.CANDIDATE, "T12"),
    ("subacute", [fracture("L3", "subacute")], Tier.CANDIDATE, "L3"),
    ("oedema at the level", [fracture("L2"), oedema("L2", modality="MRI")], Tier.CANDIDATE, "L2"),
    ("no acuity", [fracture("L2")], Tier.NEEDS_IMAGING, ""),
    ("age indeterminate", [fracture("L4", "indeterminate")], Tier.NEEDS_IMAGING, ""),
    ("healed only", [fracture("T9", "healed")], Tier.NOT_INDICATED, ""),
    ("chronic only", [fracture("T9", "chronic")], Tier.NOT_INDICATED, ""),
    ("acute + sepsis", [*acute_mri("L1"), mention("INFECTION", scope="systemic")],
     Tier.CONTRAINDICATED, ""),
    ("indeterminate + sepsis", [fracture("L2"), mention("INFECTION", scope="systemic")],
     Tier.CONTRAINDICATED, ""),
    ("acute + retropulsion at it", [*acute_mri("L1"), mention("RETROPULSION", levels="L1")],
     Tier.CONTRAINDICATED, ""),
    ("indeterminate + epidural at it",
     [fracture("L2"), mention("EPIDURAL_DISEASE", levels="L2")], Tier.CONTRAINDICATED, ""),
    ("acute L1 free beside indeterminate L3", [*acute_mri("L1"), fracture("L3")],
     Tier.CANDIDATE, "L1"),
    ("acute blocked, indeterminate free -> imaging",
     [*acute_mri("L1"), mention("RETROPULSION", levels="L1"), fracture("L3")],
     Tier.NEEDS_IMAGING, ""),
    ("chronic + sepsis stays not indicated",
     [fracture("T9", "healed"), mention("INFECTION", scope="systemic")],
     Tier.NOT_INDICATED, ""),
]


TIER_COHORT = Cohort({case[0]: case[1] for case in TIER_CASES})


@pytest.mark.parametrize("name, rows, tier, candidates", TIER_CASES,
                         ids=[case[0] for case in TIER_CASES])
def test_tier(name, rows, tier, candidates):
    patient = TIER_COHORT[name]
    assert patient["tier"] == tier
    assert patient["candidate_levels"] == candidates


def test_candidate_levels_empty_unless_candidate():
    patient = one(*acute_mri("L1"), inr(2.6))
    assert patient["tier"] == Tier.CONTRAINDICATED
    assert patient["acute_levels"] == "L1"
    assert patient["candidate_levels"] == ""


def test_retropulsion_at_chronic_level_beside_acute_candidate():
    patient = one(fracture("L1", "chronic", modality="XR"),
                  mention("RETROPULSION", levels="L1"), *acute_mri("L2"))
    assert patient["tier"] == Tier.CANDIDATE
    assert patient["candidate_levels"] == "L2"
    assert patient["fracture_levels"] == "L1;L2"
    assert patient["chronic_levels"] == "L1"
    assert patient["retropulsion"]
    assert "L1 chronic" in patient["reasons"] and "with retropulsion" in patient["reasons"]


def test_retropulsion_at_one_of_two_acute_levels():
    patient = one(*acute_mri("L1"), *acute_mri("L2"), mention("RETROPULSION", levels="L1"))
    assert (patient["tier"], patient["candidate_levels"]) == (Tier.CANDIDATE, "L2")
    assert patient["acute_levels"] == "L1;L2"


# --- Local contraindications --------------------------------------------------

LOCAL_BLOCKS = {
    "retropulsion": mention("RETROPULSION", levels="L1"),
    "epidural": mention("EPIDURAL_DISEASE", levels="L1"),
    "osteomyelitis": mention("INFECTION", scope="local", levels="L1",
                             lexical_variant="osteomyelitis"),
    "discitis-range": mention("INFECTION", scope="local", levels="L1;L2",
                              lexical_variant="discitis"),
    "scope-inferred": mention("INFECTION", scope="", levels="L1"),   # has a level: local
    "levelless-retropulsion": mention("RETROPULSION"),   # every fracture level of its note
    "levelless-epidural": mention("EPIDURAL_DISEASE"),
}
LOCAL_BLOCK_COHORT = Cohort({name: [*acute_mri("L1"), finding]
                             for name, finding in LOCAL_BLOCKS.items()})


@pytest.mark.parametrize("name", LOCAL_BLOCKS)
def test_local_contraindication_blocks_its_level(name):
    patient = LOCAL_BLOCK_COHORT[name]
    assert patient["tier"] == Tier.CONTRAINDICATED
    assert patient["candidate_levels"] == ""


NOT_LOCAL = {
    "negated-retropulsion": mention("RETROPULSION", levels="L1", negated=True),
    "negated-epidural": mention("EPIDURAL_DISEASE", levels="L1", negated=True),
    "historical-retropulsion": mention("RETROPULSION", levels="L1", historical=True),
    "other-level": mention("RETROPULSION", levels="L4"),          # no fracture at L4
    "levelless-other-note": mention("RETROPULSION", note_id="other"),  # no fracture there
    "history-of-osteomyelitis": mention("INFECTION", scope="local", levels="L1",
                                        historical=True, corrected="treated"),
    "treated": mention("INFECTION", scope="local", levels="L1", corrected="treated"),
    "hypothetical": mention("INFECTION", scope="local", levels="L1", hypothetical=True),
    "infection-out-of-window": mention("INFECTION", scope="local", levels="L1",
                                       note_id="old", note_date="2025-03-01"),
}
NOT_LOCAL_COHORT = Cohort({name: [*acute_mri("L1"), finding]
                           for name, finding in NOT_LOCAL.items()})


@pytest.mark.parametrize("name", NOT_LOCAL)
def test_not_a_local_contraindication(name):
    patient = NOT_LOCAL_COHORT[name]
    assert (patient["tier"], patient["candidate_levels"]) == (Tier.CANDIDATE, "L1")


def test_retropulsion_is_not_window_restricted():
    patient = one(*acute_mri("L1"),
                  mention("RETROPULSION", levels="L1", note_id="old", note_date="2024-01-01"))
    assert patient["tier"] == Tier.CONTRAINDICATED


def test_levelless_local_finding_applies_to_every_level_of_its_note():
    patient = one(*acute_mri("L1"), *acute_mri("L3"), mention("RETROPULSION"),
                  *acute_mri("T10", note_id="n2"))
    assert (patient["tier"], patient["candidate_levels"]) == (Tier.CANDIDATE, "T10")


def test_levelless_local_finding_goes_to_the_fractures_written_before_it():
    # "L1 burst fracture with retropulsion ... Post-op orders: TLSO for the T6 fracture"
    patient = one(*acute_mri("L1"), mention("RETROPULSION"), *acute_mri("T6", start=5000))
    assert (patient["tier"], patient["candidate_levels"]) == (Tier.CANDIDATE, "T6")
    # a fracture named just after it is written with it: "retropulsed fragment from the L1 fracture"
    with_it = one(*acute_mri("T6"), mention("RETROPULSION", start=4000), *acute_mri("L1", start=4030))
    assert with_it["tier"] == Tier.CONTRAINDICATED
    # when none is written before it, every fracture of the note: "Retropulsion 3 mm. ... L1 and T6"
    first = one(mention("RETROPULSION", start=0), *acute_mri("L1", start=500), *acute_mri("T6", start=900))
    assert first["tier"] == Tier.CONTRAINDICATED


# --- Systemic contraindications -----------------------------------------------

SYSTEMIC = {
    "sepsis": (mention("INFECTION", scope="systemic", lexical_variant="sepsis"), "infection"),
    "scope-inferred": (mention("INFECTION", scope="", lexical_variant="pneumonia"),
                       "infection"),   # no level: systemic
    "inr": (inr(2.6), "coagulopathy"),
    "platelets": (platelets(32), "coagulopathy"),
    "dic": (mention("COAGULOPATHY", lexical_variant="DIC"), "coagulopathy"),
    "thrombocytopenia": (mention("COAGULOPATHY", lexical_variant="thrombocytopenia"),
                         "coagulopathy"),
}
SYSTEMIC_COHORT = Cohort({name: [*acute_mri("L1"), finding]
                          for name, (finding, _) in SYSTEMIC.items()})


@pytest.mark.parametrize("name", SYSTEMIC)
def test_systemic_contraindication(name):
    patient, flag = SYSTEMIC_COHORT[name], SYSTEMIC[name][1]
    assert patient["tier"] == Tier.CONTRAINDICATED
    assert patient[flag]


NOT_SYSTEMIC = {
    "historical-infection": mention("INFECTION", scope="systemic", historical=True),
    "resolved": mention("INFECTION", scope="systemic", corrected="resolved"),
    "hypothetical": mention("INFECTION", scope="systemic", hypothetical=True),
    "negated": mention("INFECTION", scope="systemic", negated=True),       # "no fever"
    "historical-dx": mention("COAGULOPATHY", lexical_variant="coagulopathy", historical=True),
    "corrected-dx": mention("COAGULOPATHY", lexical_variant="coagulopathy",
                            corrected="reversed"),
    "inr-at-threshold": inr(1.5),          # allowed: only > max_inr contraindicates
    "platelets-at-threshold": platelets(50),   # allowed: only < min_platelets does
    "historical-inr": inr(2.6, historical=True),   # "INR was 2.6 last year"
}
NOT_SYSTEMIC_COHORT = Cohort({name: [*acute_mri("L1"), finding]
                              for name, finding in NOT_SYSTEMIC.items()})


@pytest.mark.parametrize("name", NOT_SYSTEMIC)
def test_not_a_systemic_contraindication(name):
    patient = NOT_SYSTEMIC_COHORT[name]
    assert patient["tier"] == Tier.CANDIDATE
    assert not patient["coagulopathy"]


def test_anticoagulant_is_reported_not_disqualifying():
    patient = one(*acute_mri("L1"),
                  mention("ANTICOAGULANT", lexical_variant="Apixaban", med_status="held"))
    assert patient["tier"] == Tier.CANDIDATE
    assert patient["anticoagulant"]
    assert "anticoagulant: apixaban (held)" in patient["reasons"]


# --- The window ----------------------------------------------------------------

WINDOW_CASES = [
    ("2025-05-31", True),    # day 30 after the index date: in
    ("2025-06-01", False),   # day 31 after: out
    ("2025-04-01", True),    # day 30 before: in
    ("2025-03-31", False),   # day 31 before: out
]


WINDOW_FINDINGS = {
    "inr": lambda **kw: inr(2.5, **kw),
    "platelets": lambda **kw: platelets(20, **kw),
    "sepsis": lambda **kw: mention("INFECTION", scope="systemic", **kw),
    "coagulopathy-dx": lambda **kw: mention("COAGULOPATHY", lexical_variant="coagulopathy",
                                            **kw),
}
WINDOW_COHORT = Cohort({
    f"{name} {date}": [*acute_mri("L1", note_date=INDEX), make(note_id="later", note_date=date)]
    for name, make in WINDOW_FINDINGS.items() for date, _ in WINDOW_CASES})


@pytest.mark.parametrize("date, counts", WINDOW_CASES)
@pytest.mark.parametrize("name", WINDOW_FINDINGS)
def test_window_edges(name, date, counts):
    patient = WINDOW_COHORT[f"{name} {date}"]
    assert patient["index_date"] == INDEX
    assert patient["tier"] == (Tier.CONTRAINDICATED if counts else Tier.CANDIDATE)


@pytest.mark.parametrize("date, counts", WINDOW_CASES)
def test_anticoagulant_is_reported_in_the_window_only(date, counts):
    """Heparin during an admission weeks before the fracture is not what the procedure plans around."""
    patient = one(*acute_mri("L1", note_date=INDEX),
                  mention("ANTICOAGULANT", lexical_variant="heparin", note_id="other", note_date=date))
    assert patient["anticoagulant"] == counts
    assert patient["tier"] == Tier.CANDIDATE


def test_window_days_from_config():
    rows = [*acute_mri("L1"), inr(2.5, note_id="later", note_date="2025-05-11")]
    assert one(rows)["tier"] == Tier.CONTRAINDICATED
    assert one(rows, config=Config(window_days=7))["tier"] == Tier.CANDIDATE


def test_undated_findings_count_in_the_window():
    patient = one(*acute_mri("L1"), mention("INFECTION", scope="systemic", note_id="u",
                                            note_date=None))
    assert patient["tier"] == Tier.CONTRAINDICATED


def test_no_index_date_means_every_note_counts():
    # Everything undated: no index date, nothing can be excluded.
    patient = one(*acute_mri("L1", note_date=None), inr(3.0, note_id="x", note_date=None))
    assert patient["index_date"] == ""
    assert patient["tier"] == Tier.CONTRAINDICATED


def test_index_date_is_latest_acute_or_indeterminate_note():
    patient = one(*acute_mri("L1", note_date="2025-01-10"),
                  fracture("L1", note_id="n2", note_date="2025-02-01"),   # mention only
                  fracture("T6", "healed", note_id="n3", note_date="2025-09-01"),
                  fracture("L1", historical=True, note_id="n4", note_date="2025-10-01"))
    assert patient["index_date"] == "2025-02-01"
    assert patient["acute_levels"] == "L1"


def test_chronic_only_patient_window_is_centred_on_the_latest_fracture_note():
    rows = [fracture("T9", "healed", note_id="a", note_date="2020-01-15"),
            fracture("T9", historical=True, note_id="b", note_date="2019-12-01")]
    far = one(rows, inr(2.4, note_id="c", note_date="2019-12-02"),
              mention("ANTICOAGULANT", lexical_variant="warfarin", note_id="c",
                      note_date="2019-12-02"))
    assert far["index_date"] == "2020-01-15"
    assert far["tier"] == Tier.NOT_INDICATED
    assert not far["coagulopathy"]          # 44 days before: outside the window
    assert far["anticoagulant"]             # no index date in SPEC §4: reported whatever its date
    near = one(rows, inr(2.4, note_id="c", note_date="2020-01-10"))
    assert near["coagulopathy"] and near["tier"] == Tier.NOT_INDICATED


def test_without_fracture_the_procedure_facts_are_not_assessed():
    """No fracture, no procedure: infection, coagulation and anticoagulants are not reported.

    (It is what lets ``screen`` skip such notes of patients without a
    fracture.) The flags every patient gets (oedema, malignancy...) still are.
    """
    patient = one(mention("INFECTION", scope="systemic", lexical_variant="pneumonia",
                          note_date="2019-01-01"),
                  inr(3.6, note_id="b", note_date="2025-01-13"),
                  mention("ANTICOAGULANT", lexical_variant="warfarin", note_id="c"),
                  mention("MALIGNANCY", note_id="d"),
                  fracture("L1", negated=True, note_id="e"))
    assert patient["tier"] == Tier.NO_FRACTURE
    assert patient["index_date"] == ""
    assert not (patient["infection"] or patient["coagulopathy"] or patient["anticoagulant"])
    assert patient["malignancy"]
    assert patient["reasons"] == "no affirmed fracture"
    assert patient["evidence"] == ""


def test_fracture_without_index_date_every_note_counts_for_the_flags():
    """The fracture note is undated: no index date, so no note can be shown to be outside the window."""
    patient = one(fracture("T9", acuity="chronic", note_date=None),
                  mention("INFECTION", scope="systemic", lexical_variant="pneumonia",
                          note_date="2019-01-01", note_id="b"),
                  inr(3.6, note_id="c", note_date="2025-01-13"))
    assert patient["tier"] == Tier.NOT_INDICATED
    assert patient["index_date"] == ""
    assert patient["infection"] and patient["coagulopathy"]


# --- Latest lab value wins ------------------------------------------------------

LATEST_CASES = [
    # earlier value, later value, tier
    (inr(2.5, note_date="2025-05-02", note_id="a"), inr(1.1, note_date="2025-05-03", note_id="b"),
     Tier.CANDIDATE),
    (inr(1.1, note_date="2025-05-02", note_id="a"), inr(2.5, note_date="2025-05-03", note_id="b"),
     Tier.CONTRAINDICATED),
    (platelets(30, note_date="2025-05-02", note_id="a"),
     platelets(150, note_date="2025-05-03", note_id="b"), Tier.CANDIDATE),
    (platelets(150, note_date="2025-05-02", note_id="a"),
     platelets(30, note_date="2025-05-03", note_id="b"), Tier.CONTRAINDICATED),
    # same note: the later offset wins ("INR 2.1 ... repeat INR 1.2")
    (inr(2.1, note_id="a", start=10), inr(1.2, note_id="a", start=90), Tier.CANDIDATE),
    (inr(1.2, note_id="a", start=10), inr(2.1, note_id="a", start=90), Tier.CONTRAINDICATED),
    # undated values are the oldest
    (inr(1.0, note_id="a", note_date=None), inr(2.5, note_id="b"), Tier.CONTRAINDICATED),
    (inr(2.5, note_id="a", note_date=None), inr(1.0, note_id="b"), Tier.CANDIDATE),
]


# Listed later-first so that input order cannot decide.
LATEST_COHORT = Cohort({str(number): [*acute_mri("L1"), later, earlier]
                        for number, (earlier, later, _) in enumerate(LATEST_CASES)})


@pytest.mark.parametrize("number", range(len(LATEST_CASES)))
def test_latest_lab_value_wins(number):
    earlier, later, tier = LATEST_CASES[number]
    patient = LATEST_COHORT[str(number)]
    assert patient["tier"] == tier
    lab = "latest_inr" if later["lab"] == "INR" else "latest_platelets"
    assert patient[lab] == later["value"]


def test_low_platelets_beside_normal_inr():
    patient = one(*acute_mri("L1"), inr(1.0), platelets(40))
    assert patient["tier"] == Tier.CONTRAINDICATED
    assert "platelets 40 < 50" in patient["reasons"]


# --- Corrected coagulopathy ------------------------------------------------------

def test_corrected_inr_is_reported_not_disqualifying():
    patient = one(*acute_mri("L1"), inr(2.8, corrected="reversed"))
    assert patient["tier"] == Tier.CANDIDATE
    assert not patient["coagulopathy"]
    assert patient["latest_inr"] == 2.8
    assert "INR 2.8 (reversed)" in patient["reasons"]


def test_corrected_inr_supersedes_earlier_uncorrected_value():
    patient = one(*acute_mri("L1"), inr(3.0, note_id="a", note_date="2025-05-02"),
                  inr(2.8, corrected="reversed", note_id="b", note_date="2025-05-03"))
    assert patient["tier"] == Tier.CANDIDATE


def test_uncorrected_value_after_a_corrected_one_contraindicates():
    patient = one(*acute_mri("L1"), inr(2.8, corrected="reversed", note_id="a",
                                        note_date="2025-05-02"),
                  inr(2.2, note_id="b", note_date="2025-05-03"))
    assert patient["tier"] == Tier.CONTRAINDICATED
    assert "INR 2.2 > 1.5" in patient["reasons"]


DIAGNOSIS_CASES = {
    "thrombocytopenia, platelets 180": ("thrombocytopenia", platelets(180), Tier.CANDIDATE),
    "ITP, platelets 118": ("ITP", platelets(118), Tier.CANDIDATE),  # a platelet disorder, by its name
    "HITT, platelets 160": ("HITT", platelets(160), Tier.CANDIDATE),
    "DIC, INR 1.1": ("DIC", inr(1.1), Tier.CANDIDATE),
    "coagulopathy, INR 1.1": ("coagulopathy", inr(1.1), Tier.CANDIDATE),
    # a normal value of the other measure does not help
    "thrombocytopenia, INR 1.1": ("thrombocytopenia", inr(1.1), Tier.CONTRAINDICATED),
    # factor deficiencies keep a normal INR / count
    "haemophilia, INR 1.0": ("haemophilia A", inr(1.0), Tier.CONTRAINDICATED),
    "von Willebrand, platelets 200": ("von Willebrand disease", platelets(200),
                                      Tier.CONTRAINDICATED),
}
DIAGNOSIS_COHORT = Cohort({
    name: [*acute_mri("L1"),
           mention("COAGULOPATHY", lexical_variant=diagnosis, note_id="a",
                   note_date="2025-05-02"),
           {**lab, "note_id": "b", "note_date": "2025-05-03"}]
    for name, (diagnosis, lab, _) in DIAGNOSIS_CASES.items()})


@pytest.mark.parametrize("name", DIAGNOSIS_CASES)
def test_later_normal_lab_overrides_a_diagnosis(name):
    assert DIAGNOSIS_COHORT[name]["tier"] == DIAGNOSIS_CASES[name][2]


def test_diagnosis_after_a_normal_lab_stands():
    patient = one(*acute_mri("L1"), platelets(180, note_id="a", note_date="2025-05-02"),
                  mention("COAGULOPATHY", lexical_variant="thrombocytopenia", note_id="b",
                          note_date="2025-05-03"))
    assert patient["tier"] == Tier.CONTRAINDICATED
    assert "coagulopathy: thrombocytopenia" in patient["reasons"]


# --- Level status -------------------------------------------------------------------

CONFLICT_CASES = [
    ("older acute, newer chronic",
     [*acute_mri("L1", note_id="a", note_date="2025-03-01"),
      fracture("L1", "healed", note_id="b", note_date="2025-06-01", modality="XR")],
     LevelStatus.CHRONIC, Tier.NOT_INDICATED),
    ("older chronic, newer acute",
     [fracture("L1", "chronic", note_id="a", note_date="2025-03-01"),
      *acute_mri("L1", note_id="b", note_date="2025-06-01")],
     LevelStatus.ACUTE, Tier.CANDIDATE),
    ("acute beats chronic within a note",
     [fracture("L1", "chronic"), oedema("L1", modality="MRI")],
     LevelStatus.ACUTE, Tier.CANDIDATE),
    ("acute beats chronic on the same day",
     [fracture("L1", "chronic", note_id="a"), fracture("L1", "acute", note_id="b")],
     LevelStatus.ACUTE, Tier.CANDIDATE),
    ("undated acute is older than dated chronic",
     [*acute_mri("L1", note_id="a", note_date=None), fracture("L1", "healed", note_id="b")],
     LevelStatus.CHRONIC, Tier.NOT_INDICATED),
    # an explicit "age indeterminate" reads the age: the notes disagree and the latest wins
    ("older acute, newer age-indeterminate",
     [fracture("L1", "acute", note_id="a", note_date="2025-06-10"),
      fracture("L1", "indeterminate", note_id="b", note_date="2025-06-11", modality="CT")],
     LevelStatus.INDETERMINATE, Tier.NEEDS_IMAGING),
    ("older age-indeterminate, newer acute",
     [fracture("L1", "indeterminate", note_id="a", note_date="2025-06-01", modality="XR"),
      *acute_mri("L1", note_id="b", note_date="2025-06-05")],
     LevelStatus.ACUTE, Tier.CANDIDATE),
    ("acute beats age-indeterminate within a note",
     [fracture("L1", "indeterminate"), oedema("L1", modality="MRI")],
     LevelStatus.ACUTE, Tier.CANDIDATE),
    ("later plain mention does not override acute",
     [*acute_mri("L1", note_id="a", note_date="2025-03-01"),
      fracture("L1", note_id="b", note_date="2025-04-01")],
     LevelStatus.ACUTE, Tier.CANDIDATE),
    ("historical only", [fracture("T9", historical=True)],
     LevelStatus.CHRONIC, Tier.NOT_INDICATED),
    ("historical 'acute' is history", [fracture("T9", "acute", historical=True)],
     LevelStatus.CHRONIC, Tier.NOT_INDICATED),
    ("history plus a current plain mention",
     [fracture("T9", historical=True, note_id="a"), fracture("T9", note_id="b")],
     LevelStatus.INDETERMINATE, Tier.NEEDS_IMAGING),
    ("history plus acute evidence",
     [fracture("T9", historical=True, note_id="a", note_date="2025-06-01"),
      fracture("T9", "acute", note_id="b")],
     LevelStatus.ACUTE, Tier.CANDIDATE),
    ("negated oedema does not make chronic",
     [fracture("L2"), oedema("L2", negated=True)],
     LevelStatus.INDETERMINATE, Tier.NEEDS_IMAGING),
    ("historical oedema is not acute evidence",
     [fracture("L2"), oedema("L2", historical=True)],
     LevelStatus.INDETERMINATE, Tier.NEEDS_IMAGING),
    ("uncertain fracture ignored, affirmed one counts",
     [fracture("L2", "acute", uncertain=True), fracture("L2", "healed")],
     LevelStatus.CHRONIC, Tier.NOT_INDICATED),
]


CONFLICT_COHORT = Cohort({case[0]: case[1] for case in CONFLICT_CASES})


@pytest.mark.parametrize("name, rows, status, tier", CONFLICT_CASES,
                         ids=[case[0] for case in CONFLICT_CASES])
def test_level_status(name, rows, status, tier):
    patient = CONFLICT_COHORT[name]
    column = {LevelStatus.ACUTE: "acute_levels", LevelStatus.CHRONIC: "chronic_levels",
              LevelStatus.INDETERMINATE: "indeterminate_levels"}[status]
    assert patient["fracture_levels"] in ("L1", "L2", "T9")     # one level per case
    assert patient[column] == patient["fracture_levels"]
    assert patient["tier"] == tier


def test_negated_oedema_alone_leaves_the_oedema_flag_false():
    patient = one(fracture("L2"), oedema("L2", negated=True))
    assert not patient["oedema"]


# A later dated note that denies a level outright retires it (SPEC §4: when notes
# disagree about a level, the most recent dated note wins).
def xr_t12(**attrs) -> dict:
    """"T12 compression fracture" on a radiograph of 2025-03-01."""
    return mention("FRACTURE", **{"levels": "T12", "note_id": "xr", "note_date": "2025-03-01",
                                  "modality": "XR", **attrs})


def t12_denied(**attrs) -> dict:
    """"T12: no fracture" in a note of 2025-03-20 (an MRI unless said otherwise)."""
    return mention("FRACTURE", **{"levels": "T12", "negated": True, "note_id": "mri",
                                  "note_date": "2025-03-20", "modality": "MRI", **attrs})


RETIRE_CASES = [
    ("a later MRI denies the radiograph's level", [xr_t12(), t12_denied()],
     "", Tier.NO_FRACTURE),
    ("the later MRI denies one level and finds another",
     [xr_t12(), t12_denied(), *acute_mri("L1", note_id="mri", note_date="2025-03-20")],
     "L1", Tier.CANDIDATE),
    ("a list of denied levels", [xr_t12(), t12_denied(levels="T11;T12")],
     "", Tier.NO_FRACTURE),
    ("the denial is earlier than the fracture",
     [t12_denied(note_date="2025-02-01"), xr_t12()], "T12", Tier.NEEDS_IMAGING),
    ("the same note denies and affirms the level",
     [xr_t12(), t12_denied(), fracture("T12", "acute", note_id="mri", note_date="2025-03-20")],
     "T12", Tier.CANDIDATE),
    ("an undated denial is the oldest", [xr_t12(), t12_denied(note_date=None)],
     "T12", Tier.NEEDS_IMAGING),
    ("an undated fracture is older than a dated denial",
     [xr_t12(note_date=None), t12_denied()], "", Tier.NO_FRACTURE),
    ("'no new fracture at T12'", [xr_t12(), t12_denied(new=True)], "T12", Tier.NEEDS_IMAGING),
    ("'no further collapse of T12'", [xr_t12(acuity="chronic"), t12_denied(new=True)],
     "T12", Tier.NOT_INDICATED),
    ("'no acute fracture at T12'", [xr_t12(acuity="chronic"), t12_denied(acuity="acute")],
     "T12", Tier.NOT_INDICATED),
    ("a possible denial", [xr_t12(), t12_denied(uncertain=True)], "T12", Tier.NEEDS_IMAGING),
    ("a past denial ('the 2019 MRI showed no T12 fracture')",
     [xr_t12(), t12_denied(historical=True)], "T12", Tier.NEEDS_IMAGING),
    ("a relative's", [xr_t12(), t12_denied(family=True)], "T12", Tier.NEEDS_IMAGING),
    ("a plan's ('if no fracture at T12')", [xr_t12(), t12_denied(hypothetical=True)],
     "T12", Tier.NEEDS_IMAGING),
    ("'no fracture' without a level", [xr_t12(), t12_denied(levels="")],
     "T12", Tier.NEEDS_IMAGING),
    ("a denial of another level", [xr_t12(), t12_denied(levels="L1")],
     "T12", Tier.NEEDS_IMAGING),
]
RETIRE_COHORT = Cohort({case[0]: case[1] for case in RETIRE_CASES})


@pytest.mark.parametrize("name, rows, levels, tier", RETIRE_CASES,
                         ids=[case[0] for case in RETIRE_CASES])
def test_a_later_denial_retires_a_level(name, rows, levels, tier):
    patient = RETIRE_COHORT[name]
    assert (patient["fracture_levels"], patient["tier"]) == (levels, tier)
    assert patient["fracture"] == bool(levels)
    assert ("T12 not a fracture level" in patient["reasons"]) == ("T12" not in levels)


def test_a_retired_level_is_named_in_the_reasons():
    patient = RETIRE_COHORT["the later MRI denies one level and finds another"]
    assert patient["reasons"].startswith(
        "L1 acute (acute, marrow oedema on MRI 2025-03-20); "
        "T12 not a fracture level (no fracture on MRI 2025-03-20); no local contraindication at L1")


def test_a_retired_level_no_longer_sets_the_index_date():
    # T12 (indeterminate, 03-15) is denied on 04-01: the index date is L1's 03-01, and an
    # INR of 04-03 is 33 days away from it, outside the window.
    patient = one(fracture("L1", "acute", note_id="a", note_date="2025-03-01"),
                  fracture("T12", "indeterminate", note_id="b", note_date="2025-03-15"),
                  fracture("T12", negated=True, note_id="c", note_date="2025-04-01"),
                  inr(2.4, note_id="d", note_date="2025-04-03"))
    assert (patient["fracture_levels"], patient["index_date"]) == ("L1", "2025-03-01")
    assert (patient["tier"], patient["coagulopathy"]) == (Tier.CANDIDATE, False)
    kept = one(fracture("L1", "acute", note_id="a", note_date="2025-03-01"),
               fracture("T12", "indeterminate", note_id="b", note_date="2025-03-15"),
               inr(2.4, note_id="d", note_date="2025-04-03"))
    assert (kept["index_date"], kept["tier"]) == ("2025-03-15", Tier.CONTRAINDICATED)


@pytest.mark.parametrize("attribute", ["negated", "uncertain", "hypothetical", "family"])
def test_non_affirmed_fractures_are_ignored(attribute):
    # "no acute fracture", "rule out fracture", "risk of fracture",
    # "mother had osteoporotic fractures"
    patient = one(fracture("L1", "acute", **{attribute: True}), oedema("L1"))
    assert patient["tier"] == Tier.NO_FRACTURE
    assert not patient["fracture"]
    assert patient["fracture_levels"] == ""
    assert patient["score"] == 0


# --- Level-less oedema and fractures -------------------------------------------------

def test_levelless_oedema_links_to_the_single_level_of_its_note():
    patient = one(fracture("L1"), oedema(modality="MRI"))
    assert patient["acute_levels"] == "L1"
    assert patient["tier"] == Tier.CANDIDATE


def test_levelless_oedema_in_a_multilevel_note_links_to_nothing():
    patient = one(fracture("T12;L1"), oedema(modality="MRI"))
    assert patient["indeterminate_levels"] == "T12;L1"
    assert patient["tier"] == Tier.NEEDS_IMAGING
    assert patient["oedema"]   # still reported


def test_levelless_oedema_with_levelless_fracture_links_to_unspecified():
    patient = one(fracture(), oedema(modality="MRI"))
    assert patient["fracture_levels"] == "unspecified"
    assert patient["acute_levels"] == "unspecified"
    assert patient["candidate_levels"] == "unspecified"


def test_levelless_oedema_in_a_note_without_fracture_links_to_nothing():
    patient = one(fracture("L1", note_id="a"), oedema(note_id="b", modality="MRI"))
    assert patient["tier"] == Tier.NEEDS_IMAGING


def test_oedema_does_not_create_a_fracture_level():
    patient = one(fracture("L1", "healed"), oedema("L3"))
    assert patient["fracture_levels"] == "L1"
    assert patient["tier"] == Tier.NOT_INDICATED


def test_oedema_in_a_later_note_makes_the_level_acute():
    patient = one(fracture("L1", note_id="xr", note_date="2025-04-20", modality="XR"),
                  oedema("L1", note_id="mri", note_date="2025-05-01", modality="MRI"))
    assert patient["acute_levels"] == "L1"
    assert "L1 acute (marrow oedema on MRI 2025-05-01)" in patient["reasons"]


def test_unspecified_level_sorts_last_and_stays_separate_across_notes():
    patient = one(fracture("", note_id="a"), fracture("L1", note_id="b"))
    assert patient["fracture_levels"] == "L1;unspecified"


def test_levelless_fracture_in_a_single_level_note_is_that_level():
    patient = one(fracture("L1", "acute"), fracture("", "acute"))
    assert patient["fracture_levels"] == "L1"


def test_levels_are_craniocaudal():
    patient = one(fracture("S1", note_id="a"), fracture("L1", note_id="b"),
                  fracture("T12;C5", note_id="c"), fracture("", note_id="d"),
                  fracture("L10", note_id="e"))
    assert patient["fracture_levels"] == "C5;T12;L1;S1;L10;unspecified"


# --- Output shape ------------------------------------------------------------------------

def test_every_person_of_notes_gets_a_row_sorted_by_person_id():
    patients = screen(*acute_mri("L1", person_id="P2"), fracture("T9", person_id="P10"),
                      extra_people=("P3", "P1"))
    assert patients["person_id"].tolist() == ["P1", "P10", "P2", "P3"]
    for person in ("P1", "P3"):
        assert patients.loc[person, "tier"] == Tier.NO_FRACTURE
        assert patients.loc[person, "score"] == 0
        assert patients.loc[person, "n_notes"] == 1
    assert patients.loc["P2", "tier"] == Tier.CANDIDATE
    assert patients.loc["P10", "tier"] == Tier.NEEDS_IMAGING


def test_patient_with_only_non_screened_mentions():
    patients = screen(mention("LEVEL", levels="L1"), mention("PRIOR_AUGMENTATION"))
    assert patients.loc["P1", "tier"] == Tier.NO_FRACTURE


def test_columns_and_types():
    patients = screen(*acute_mri("L1"), extra_people=("P9",))
    assert list(patients.columns) == PATIENT_COLUMNS
    assert PATIENT_COLUMNS[:19] == [
        "person_id", "tier", "score", "fracture", "acute_fracture", "oedema",
        "retropulsion", "epidural_disease", "infection", "coagulopathy", "anticoagulant",
        "malignancy", "fracture_levels", "acute_levels", "candidate_levels", "index_date",
        "n_notes", "reasons", "evidence"]
    for flag in ["fracture", "acute_fracture", "oedema", "retropulsion", "epidural_disease",
                 "infection", "coagulopathy", "anticoagulant", "malignancy"]:
        assert patients[flag].dtype == bool, flag
    assert patients["score"].dtype == float
    assert patients["n_notes"].dtype == "int64"
    assert patients.loc["P9", "index_date"] == ""
    assert patients.loc["P9", "reasons"] == "no affirmed fracture"


def test_empty_mentions_frame():
    notes = pd.DataFrame({"note_id": ["1", "2"], "person_id": ["A", "B"],
                          "note_date": ["2025-01-01", ""]})
    patients = screen_patients(pd.DataFrame(), notes, Config())
    assert patients["tier"].tolist() == [Tier.NO_FRACTURE, Tier.NO_FRACTURE]
    assert patients["score"].tolist() == [0.0, 0.0]
    assert list(patients.columns) == PATIENT_COLUMNS


def test_flags():
    patient = one(*acute_mri("L1"), mention("MALIGNANCY", lexical_variant="myeloma"),
                  mention("EPIDURAL_DISEASE", levels="T4"),
                  mention("INFECTION", scope="local", levels="T4"))
    assert patient["acute_fracture"] and patient["oedema"] and patient["malignancy"]
    assert patient["epidural_disease"] and patient["infection"]
    assert not patient["retropulsion"] and not patient["coagulopathy"]
    assert patient["tier"] == Tier.CANDIDATE     # T4 is not a fracture level


def test_malignant_aetiology_sets_the_malignancy_flag():
    assert one(fracture("T11", "acute", aetiology="malignant"))["malignancy"]


@pytest.mark.parametrize("concept", ["MALIGNANCY", "OEDEMA", "RETROPULSION",
                                     "EPIDURAL_DISEASE", "ANTICOAGULANT"])
def test_historical_mentions_do_not_set_flags(concept):
    # "Breast cancer 2009, discharged, no recurrence"
    flag = {"MALIGNANCY": "malignancy", "OEDEMA": "oedema", "RETROPULSION": "retropulsion",
            "EPIDURAL_DISEASE": "epidural_disease", "ANTICOAGULANT": "anticoagulant"}[concept]
    assert not one(fracture("L2"), mention(concept, levels="L2", historical=True))[flag]
    assert one(fracture("L2"), mention(concept, levels="L2"))[flag]


def test_reasons_and_evidence():
    rows = [fracture("L2", "acute", modality="MRI", note_id="17", note_date="2025-05-12",
                     snippet="Acute L2 compression fracture."),
            oedema("L2", modality="MRI", note_id="17", note_date="2025-05-12",
                   snippet="Marrow oedema in L2 on STIR."),
            inr(1.0, note_id="18", note_date="2025-05-13")]
    patient = one(rows)
    assert patient["reasons"].startswith("L2 acute (acute, marrow oedema on MRI 2025-05-12)")
    assert "no local contraindication at L2" in patient["reasons"]
    assert "INR 1.0" in patient["reasons"]
    assert patient["evidence"] == (
        "[note 17, 2025-05-12] Acute L2 compression fracture. | "
        "[note 17, 2025-05-12] Marrow oedema in L2 on STIR. | [note 18, 2025-05-13] INR 1.0")


def test_systemic_infection_reason_is_summarised():
    terms = ["fever", "urosepsis", "bacteraemia", "fever", "blood cultures positive"]
    rows = [mention("INFECTION", scope="systemic", lexical_variant=term, note_id=f"i{day}",
                    note_date=f"2025-05-0{day}") for day, term in enumerate(terms, start=2)]
    patient = one(*acute_mri("L1"), rows)
    assert patient["tier"] == Tier.CONTRAINDICATED
    assert "systemic infection: fever, urosepsis, bacteraemia, +1 more (2025-05-06)" \
        in patient["reasons"]


def test_evidence_is_capped():
    rows = [fracture("L1", "acute", note_id=f"n{day:02d}", note_date=f"2025-05-{day:02d}",
                     snippet=f"Acute L1 compression fracture, report {day}. " + "x" * 150)
            for day in range(1, 29)]
    rows += [mention("ANTICOAGULANT", lexical_variant="warfarin", note_id=f"n{day:02d}",
                     note_date=f"2025-05-{day:02d}", snippet=f"warfarin day {day} " + "y" * 150)
             for day in range(1, 29)]
    evidence = one(rows)["evidence"]
    assert len(evidence) <= EVIDENCE_MAX_CHARS
    assert evidence.endswith(" | …")


# --- Score ----------------------------------------------------------------------------

def test_score_orders_acute_with_oedema_on_mri_above_indeterminate():
    patients = screen(*acute_mri("L1", person_id="A"), fracture("L1", person_id="B"),
                      fracture("L1", "healed", person_id="C"))
    scores = patients["score"]
    assert scores["A"] > scores["B"] > scores["C"] >= 0
    assert scores["A"] == 30 + 15 + 20      # acute level, on MRI, oedema
    assert scores["B"] == 15                # indeterminate level


def test_score_features_add_up():
    patient = one(fracture("L1", "acute", new=True, modality="MRI", aetiology="osteoporotic"),
                  oedema("L1", modality="MRI"), mention("PAIN", value=9.0),
                  mention("MALIGNANCY"))
    assert patient["score"] == 30 + 15 + 20 + 10 + 5 + 9 + 5 + 5   # 99


@pytest.mark.parametrize("weights, expected", [
    ({name: 90 for name in Config().weights}, 100.0),      # clipped at 100
    ({"acute_level": -50, "acute_on_mri": 0, "oedema": 0}, 0.0),  # clipped at 0
    ({"oedema": 40}, 30 + 15 + 40),
])
def test_score_is_clipped_to_0_100(weights, expected):
    patient = one(*acute_mri("L1"), config=Config(weights=weights))
    assert patient["score"] == expected
    assert patient["tier"] == Tier.CANDIDATE     # weights never change the tier


def test_score_range_across_cases():
    rows = []
    for number, (_, case_rows, _, _) in enumerate(TIER_CASES):
        rows += [{**row, "person_id": f"P{number:02d}", "note_id": f"{number}-{row['note_id']}"}
                 for row in case_rows]
    scores = screen(rows)["score"]
    assert scores.between(0, 100).all()


# --- Config changes a tier; robustness -------------------------------------------------

def test_config_override_changes_the_tier(tmp_path):
    rows = [*acute_mri("L1"), inr(1.8)]
    assert one(rows, config=load_config(None))["tier"] == Tier.CONTRAINDICATED
    path = tmp_path / "lenient.toml"
    path.write_text("max_inr = 2.0\n", encoding="utf-8")
    assert one(rows, config=load_config(path))["tier"] == Tier.CANDIDATE


def test_min_platelets_override():
    rows = [*acute_mri("L1"), platelets(70)]
    assert one(rows)["tier"] == Tier.CANDIDATE
    assert one(rows, config=Config(min_platelets=100))["tier"] == Tier.CONTRAINDICATED


def test_saved_csv_mentions_rescore_the_same():
    """``vertebro score`` re-reads mentions.csv: text booleans, text dates, int ids."""
    rows = [*acute_mri("L1", person_id="7", note_id="1"), inr(2.6, person_id="7", note_id="2"),
            fracture("T9", "acute", negated=True, person_id="7", note_id="2")]
    frame = mentions_frame(rows)
    as_csv = frame.astype(object)
    for column in ["negated", "uncertain", "historical", "hypothetical", "family", "new"]:
        as_csv[column] = frame[column].map({True: "true", False: "false"})
    as_csv["note_date"] = frame["note_date"].dt.strftime("%Y-%m-%d")
    as_csv[["levels", "acuity", "modality", "lab"]] = as_csv[
        ["levels", "acuity", "modality", "lab"]].replace("", None)
    as_csv["person_id"] = 7
    notes = pd.DataFrame({"note_id": [1, 2], "person_id": [7, 7]})
    expected = screen_patients(frame, notes_frame(rows), Config())
    rescored = screen_patients(as_csv, notes, Config())
    pd.testing.assert_frame_equal(rescored, expected)
    assert rescored.loc[0, "tier"] == Tier.CONTRAINDICATED


def test_note_dates_can_come_from_the_notes_frame():
    rows = [*acute_mri("L1", note_id="a"), inr(2.6, note_id="b")]
    frame = mentions_frame(rows).drop(columns="note_date")
    notes = pd.DataFrame({"note_id": ["a", "b"], "person_id": ["P1", "P1"],
                          "note_date": pd.to_datetime(["2025-05-01", "2025-07-01"])})
    patient = screen_patients(frame, notes, Config()).iloc[0]
    assert patient["index_date"] == "2025-05-01"
    assert patient["tier"] == Tier.CANDIDATE        # the INR is 61 days later


def test_level_statuses_table_directly():
    prepared = prepare_mentions(mentions_frame(
        [*acute_mri("L1"), fracture("L2"), fracture("L3", historical=True)]))
    fractures = fracture_rows(prepared)
    levels = decide_level_status(level_evidence(prepared, fractures))
    statuses = dict(zip(levels["level"], levels["status"]))
    assert statuses == {"L1": LevelStatus.ACUTE, "L2": LevelStatus.INDETERMINATE,
                        "L3": LevelStatus.CHRONIC}


def test_larger_cohort_is_fast_and_consistent():
    rows = []
    for person in range(300):
        pid = f"P{person:04d}"
        kind = person % 4
        rows += acute_mri("L1", person_id=pid, note_id=f"{pid}-1")
        if kind == 1:
            rows.append(inr(3.0, person_id=pid, note_id=f"{pid}-2"))
        elif kind == 2:
            rows.append(mention("RETROPULSION", levels="L1", person_id=pid, note_id=f"{pid}-1"))
        elif kind == 3:
            rows.append(fracture("L1", "healed", person_id=pid, note_id=f"{pid}-3",
                                 note_date="2025-08-01"))
    tiers = screen(rows)["tier"].value_counts().to_dict()
    assert tiers == {Tier.CANDIDATE: 75, Tier.CONTRAINDICATED: 150, Tier.NOT_INDICATED: 75}


# --- The annotated dev corpus: gold mentions in, gold patient rows out ---------------

GOLD = Path(__file__).resolve().parents[1] / "corpora" / "dev"


@pytest.mark.skipif(not (GOLD / "gold_mentions.jsonl").exists(), reason="dev corpus not built")
def test_gold_mentions_reproduce_gold_patients():
    mentions = pd.read_json(GOLD / "gold_mentions.jsonl", lines=True,
                            dtype={"note_id": str, "person_id": str})
    notes = pd.read_json(GOLD / "notes.jsonl", lines=True,
                         dtype={"note_id": str, "person_id": str})
    mentions = mentions.merge(notes[["note_id", "note_date"]], on="note_id", how="left")
    mentions["snippet"] = mentions["text"]
    gold = pd.read_csv(GOLD / "gold_patients.csv", dtype=str, keep_default_na=False)
    patients = screen_patients(mentions, notes, Config()).set_index("person_id")
    assert len(patients) == notes["person_id"].nunique()
    differences = []
    for expected in gold.to_dict("records"):
        actual = patients.loc[expected["person_id"]]
        for column in gold.columns.drop("person_id"):
            got = actual[column]
            got = str(bool(got)).lower() if isinstance(got, (bool, np.bool_)) else str(got)
            if got != expected[column]:
                differences.append(f"{expected['person_id']} {column}: "
                                   f"gold {expected[column]!r}, screened {got!r}")
    assert not differences, "\n".join(differences)
