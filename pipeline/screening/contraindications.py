"""Contraindications (SPEC §4): the time window, local per level, systemic per patient.

The decisions:

1. ``in_window`` — which mentions are close enough to the index date to count.
2. ``local_contraindications`` — retropulsion, epidural disease, local
   infection at a fracture level.
3. ``current_infections`` / ``systemic_infection`` — current infection.
4. ``latest_labs`` and ``coagulopathy`` — uncorrected coagulopathy.
5. ``current_anticoagulants`` — reported, never disqualifying.

Thresholds come from ``Config`` (``max_inr``, ``min_platelets``,
``window_days``); their sources are cited in ``default_config.toml``.
"""

from __future__ import annotations

import re
from enum import StrEnum

import numpy as np
import pandas as pd

from .frame import of_concept

__all__ = ["LocalContraindication", "in_window", "outside_window", "infection_scope",
           "local_contraindications", "current_infections", "systemic_infection",
           "latest_labs", "coagulopathy", "current_anticoagulants"]


class LocalContraindication(StrEnum):
    """Why cement cannot safely go into one level."""

    RETROPULSION = "retropulsion"
    EPIDURAL_DISEASE = "epidural disease"
    LOCAL_INFECTION = "local infection"


#: characters after a level-less local finding within which a fracture still
#: counts as written with it ("retropulsed fragment from the L1 fracture")
_CLOSE_AFTER = 100

_LOCAL_CONCEPTS = {"RETROPULSION": LocalContraindication.RETROPULSION.value,
                   "EPIDURAL_DISEASE": LocalContraindication.EPIDURAL_DISEASE.value}
LABS = ("INR", "platelets")


def in_window(prepared: pd.DataFrame, index_dates: pd.Series, window_days: int,
              fracture_people: pd.Index | None = None) -> np.ndarray:
    """Boolean mask over ``prepared``: does the mention's note count?

    * |note day - index day| <= ``window_days`` -> counts. With 30 days and
      an index date of 2025-05-01: 2025-05-31 counts (day 30), 2025-06-01
      does not (day 31); the same either side.
    * the note is undated -> counts. A finding that cannot be placed in time
      cannot be shown to be outside the window, and a screening tool errs
      towards showing a possible contraindication to the reviewer (the
      reasons name it). Undated values are still the *oldest* for
      latest-value-wins, so any dated value overrides them.
    * the patient has a fracture but no index date (only chronic levels, or
      every fracture note undated) -> every note counts.
    * the patient has no fracture (not in ``fracture_people``, when given)
      -> nothing counts. There is no procedure to contraindicate: "sepsis"
      in a patient without a fracture does not set the ``infection`` flag.
      This is also what lets ``screen`` skip such patients' notes that can
      only hold infection, coagulation or medication facts (two passes,
      :func:`pipeline.run.second_pass`) without changing any patient's row.
    """
    counts = ~outside_window(prepared["person_id"], prepared["note_date"], index_dates, window_days)
    if fracture_people is not None:
        counts &= prepared["person_id"].isin(fracture_people).to_numpy()
    return counts


def outside_window(person_ids: pd.Series, note_dates: pd.Series, index_dates: pd.Series,
                   window_days: int) -> np.ndarray:
    """Whether each note (its patient, its day date) lies more than ``window_days`` days from
    the patient's index date (``index_dates``: person_id -> date); False when either date is
    unknown. The one measure of the window: :func:`in_window`, and the second pass of
    ``screen`` (which notes it may skip)."""
    if len(index_dates):
        index = person_ids.map(index_dates).astype("datetime64[ns]")
    else:  # pandas 3 maps through an empty mapper as float64, which a date cannot become
        index = pd.Series(pd.NaT, index=person_ids.index, dtype="datetime64[ns]")
    return ((note_dates - index).dt.days.abs() > window_days).to_numpy()  # NaN (unknown) > n: False


def infection_scope(prepared: pd.DataFrame) -> pd.Series:
    """``scope`` of INFECTION mentions; an empty scope is inferred.

    "osteomyelitis at L2" -> local (as extracted). When the extractor left
    the scope empty: a mention linked to a level is local ("infection at
    T11"), one without a level is systemic ("infection").
    """
    scope = prepared["scope"].str.lower()
    inferred = np.where(prepared["levels"] != "", "local", "systemic")
    return scope.where(scope != "", pd.Series(inferred, index=prepared.index))


def current_infections(prepared: pd.DataFrame, window: np.ndarray) -> pd.DataFrame:
    """Affirmed, current infection mentions in the window (local and systemic).

    "sepsis" -> current. "history of osteomyelitis, treated 2019" -> no
    (historical, corrected). "UTI, resolved" -> no (corrected). "risk of
    infection" -> no (hypothetical; dropped before screening). Pneumonia 45
    days before the index date -> no (window).
    """
    infections = of_concept(prepared, "INFECTION")
    infections = infections[~infections["historical"] & (infections["corrected"] == "")
                            & window[infections["row"].to_numpy()]]
    return infections.assign(scope=infection_scope(infections))


def systemic_infection(infections: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``current_infections`` that are systemic: a per-patient contraindication.

    "bacteraemia, on IV antibiotics" -> contraindicated. "L2 discitis" ->
    not systemic (a local contraindication at L2).
    """
    return infections[infections["scope"] == "systemic"]


def local_contraindications(prepared: pd.DataFrame, fractures: pd.DataFrame,
                            infections: pd.DataFrame) -> pd.DataFrame:
    """(person_id, level, kind, row) for each local contraindication at a fracture level.

    What counts (affirmed and not historical):

    * RETROPULSION -> retropulsion, at any date. "retropulsed fragment at
      L1" -> L1. A fragment in the canal does not go back, so it is not
      window-restricted. Gait "retropulsion" is not a RETROPULSION mention.
    * EPIDURAL_DISEASE -> epidural disease, at any date. "epidural tumour
      extension at T10" -> T10 ("epidural steroid injection" is not one).
    * INFECTION with local scope, not corrected, in the window -> local
      infection. "L2-L3 discitis" -> L2 and L3. Infection is a current state,
      so like systemic infection it only counts in the window.

    Linking: the mention's own levels; a mention with no level applies to
    every fracture level the same note's current fracture mentions name
    (`unspecified` included): "Acute L1 fracture. Retropulsion of the
    posterosuperior corner." -> L1. Of those, the ones written before it or
    just after it, when there are any: "L1 burst fracture with retropulsion
    ... Post-op orders: TLSO for the T6 fracture" -> L1, not T6; "retropulsed
    fragment from the L1 fracture" after an old T12 wedge -> T12 and L1. Only
    the patient's fracture levels are returned: retropulsion at L4 with no L4
    fracture is not a contraindication for anything (still reported in the
    ``retropulsion`` flag).
    """
    structural = of_concept(prepared, *_LOCAL_CONCEPTS)
    structural = structural[~structural["historical"]]
    structural = structural.assign(kind=structural["concept"].astype(str).map(_LOCAL_CONCEPTS))
    local_infection = infections[infections["scope"] == "local"].assign(
        kind=LocalContraindication.LOCAL_INFECTION.value)
    findings = pd.concat([structural, local_infection], ignore_index=True)
    columns = ["person_id", "level", "kind", "row"]
    if findings.empty:
        return pd.DataFrame({column: pd.Series(dtype=object) for column in columns})

    exploded = findings.assign(level=findings["levels"].str.split(";")).explode("level")
    exploded["level"] = exploded["level"].fillna("")
    named = exploded[exploded["level"] != ""]
    note_levels = fractures.loc[~fractures["historical"], ["note_id", "level", "start"]]
    levelless = exploded[exploded["level"] == ""].drop(columns="level").merge(
        note_levels.rename(columns={"start": "fracture_start"}), on="note_id")
    # the fractures written before the finding or with it; all of them when none is
    earlier = (levelless["fracture_start"] < levelless["start"] + _CLOSE_AFTER).to_numpy()
    any_earlier = pd.Series(earlier).groupby(levelless["row"].to_numpy()).transform("any")
    levelless = levelless[earlier | ~any_earlier.to_numpy()]
    linked = pd.concat([named, levelless], ignore_index=True)
    fracture_levels = fractures[["person_id", "level"]].drop_duplicates()
    linked = linked.merge(fracture_levels, on=["person_id", "level"])
    return linked[columns].drop_duplicates().reset_index(drop=True)


def latest_labs(prepared: pd.DataFrame, window: np.ndarray) -> pd.DataFrame:
    """The latest INR and the latest platelet count per patient in the window.

    Latest = note date, then note order, then position in the note ("INR
    2.1 ... repeat INR 1.2" in one note -> 1.2). Only affirmed, non-historical
    values ("INR was 3.0 last year" is historical). PT is not read: the SIR
    2019 thresholds are stated for INR and platelets.

    Returns person_id, lab, value, corrected, row, seq (one row per patient
    and measure that has a value).
    """
    labs = _lab_values(prepared, window)
    latest = labs.sort_values("seq").drop_duplicates(["person_id", "lab"], keep="last")
    return latest[["person_id", "lab", "value", "corrected", "row", "seq"]].reset_index(drop=True)


def _lab_values(prepared: pd.DataFrame, window: np.ndarray) -> pd.DataFrame:
    """Affirmed, non-historical INR and platelet values in the window."""
    labs = of_concept(prepared, "COAGULOPATHY")
    return labs[labs["lab"].isin(LABS) & labs["value"].notna() & ~labs["historical"]
                & window[labs["row"].to_numpy()]]


# Which lab value can show that a coagulopathy *diagnosis* no longer holds.
# Factor deficiencies have a normal INR, so no lab value overrides them.
_NO_OVERRIDE = re.compile(r"ha?emophilia|willebrand|\bvwd?\b|factor\s+\w+\s+deficiency"
                          r"|bleeding disorder", re.IGNORECASE)
_PLATELET_DIAGNOSIS = re.compile(r"thrombocytop|platelet|\bITP\b|\bHITT?S?\b|\bTTP\b", re.IGNORECASE)


def _diagnosis_measure(diagnoses: pd.DataFrame) -> np.ndarray:
    text = diagnoses["lexical_variant"]
    return np.select([text.str.contains(_NO_OVERRIDE), text.str.contains(_PLATELET_DIAGNOSIS)],
                     ["", "platelets"], default="INR")


def _is_abnormal(labs: pd.DataFrame, max_inr: float, min_platelets: float) -> pd.Series:
    return (((labs["lab"] == "INR") & (labs["value"] > max_inr))
            | ((labs["lab"] == "platelets") & (labs["value"] < min_platelets)))


def coagulopathy(prepared: pd.DataFrame, window: np.ndarray, latest: pd.DataFrame, *,
                 max_inr: float, min_platelets: float) -> pd.DataFrame:
    """Rows (person_id, row, reason) of each uncorrected coagulopathy finding.

    A patient is coagulopathic when any of these holds in the window:

    1. the latest INR > ``max_inr`` and is not stated corrected.
       "INR 2.4" (latest) -> yes. "INR 2.4" then "INR 1.1" -> no (the later
       normal value wins). "INR 1.1" then "INR 2.4" -> yes.
    2. the latest platelet count < ``min_platelets`` and not stated corrected.
       "platelets 32" (latest) -> yes; "platelets 32" then "platelets 140" -> no.
    3. an affirmed, current coagulopathy diagnosis (no lab value, not
       historical, not corrected), unless a later normal value of the
       measure it concerns exists in the window.
       "thrombocytopenia" -> yes; "thrombocytopenia" then "platelets 180" ->
       no; "coagulopathy" / "DIC" then "INR 1.1" -> no; "haemophilia A" -> yes
       whatever the INR (a factor deficiency keeps a normal INR);
       "coagulopathy, reversed" -> no.

    Corrected values: "INR 2.8, reversed with vitamin K" is reported (it is
    still the latest INR) but does not contraindicate. The SPEC excludes only
    *uncorrected* coagulopathy, and SIR 2019 asks exactly for correction
    before a high-risk procedure. Being the latest value, it also supersedes
    an earlier uncorrected high INR.
    """
    abnormal = latest[_is_abnormal(latest, max_inr, min_platelets) & (latest["corrected"] == "")]
    symbol = np.where(abnormal["lab"] == "INR", " > " + _number(max_inr),
                      " < " + _number(min_platelets))
    values = [_lab_number(lab, value) for lab, value in zip(abnormal["lab"], abnormal["value"])]
    lab_findings = abnormal.assign(reason=abnormal["lab"] + " " + pd.Series(
        values, index=abnormal.index, dtype=object) + symbol)

    diagnoses = of_concept(prepared, "COAGULOPATHY")
    diagnoses = diagnoses[(diagnoses["lab"] == "") & ~diagnoses["historical"]
                          & (diagnoses["corrected"] == "") & window[diagnoses["row"].to_numpy()]]
    diagnoses = diagnoses.assign(measure=_diagnosis_measure(diagnoses))
    labs = _lab_values(prepared, window)
    normal = labs[~_is_abnormal(labs, max_inr, min_platelets)]
    last_normal = normal.groupby(["person_id", "lab"])["seq"].max().rename("normal_seq")
    diagnoses = diagnoses.join(last_normal, on=["person_id", "measure"])
    standing = diagnoses[~(diagnoses["normal_seq"] > diagnoses["seq"])]
    label = standing["lexical_variant"].where(standing["lexical_variant"] != "", "coagulopathy")
    diagnosis_findings = standing.assign(reason="coagulopathy: " + label.str.lower())

    columns = ["person_id", "row", "reason", "seq"]
    return pd.concat([lab_findings.reindex(columns=columns),
                      diagnosis_findings.reindex(columns=columns)], ignore_index=True)


def current_anticoagulants(prepared: pd.DataFrame, window: np.ndarray, chronic_only: pd.Index
                           ) -> pd.DataFrame:
    """Affirmed, non-historical anticoagulant mentions: reported, never disqualifying.

    "apixaban held since 2025-05-10" -> reported as "apixaban (held)".
    "history of warfarin" -> not reported (historical).
    Which notes count:

    * a patient with an acute or indeterminate level -> the window around the
      index date, like every fact about the procedure (see :func:`in_window`):
      "heparin 5000 u SC q8h" during an admission six weeks before the fracture
      is not the anticoagulation a proceduralist plans around, and the second
      pass of ``screen`` reads no other note of that kind outside the window.
    * a patient with only chronic levels (``chronic_only``) -> every note:
      SPEC §4 gives such a patient no index date, and long-term warfarin is a
      standing fact the report shows ("on warfarin long term", 2019, beside a
      2020 CT of old fractures).
    * a patient without a fracture -> none (no procedure to plan).

    SIR 2019 manages anticoagulants by holding them before the procedure, so
    their use alone does not change the tier.
    """
    anticoagulants = of_concept(prepared, "ANTICOAGULANT")
    counts = window[anticoagulants["row"].to_numpy()] | anticoagulants["person_id"].isin(chronic_only).to_numpy()
    return anticoagulants[~anticoagulants["historical"].to_numpy() & counts]


def _number(value: float) -> str:
    return f"{value:g}"


def _lab_number(lab: str, value: float) -> str:
    """INR with at least one decimal ("INR 1.0"), counts as plain numbers ("platelets 32")."""
    text = _number(value)
    if lab == "INR" and "." not in text and "e" not in text:
        text += ".0"
    return text


def describe_lab(lab: str, value: float, corrected: str) -> str:
    """Short lab text: ``INR 1.1``, ``platelets 32``, ``INR 2.8 (reversed)``."""
    text = f"{lab} {_lab_number(lab, value)}"
    return f"{text} ({corrected})" if corrected else text

