"""Screening: from the mentions table to one row per patient (SPEC §4-§5).

``screen_patients(mentions, notes, config)`` reads only the mentions frame
(docs/design.md §3) and the notes output frame (§2, for the person list,
``n_notes`` and dates) and returns the patients frame (§4). It runs the
decisions below in this order, each a documented function:

1. levels.py — fracture levels and their status (acute / chronic /
   indeterminate), then the index date.
2. contraindications.py — the window around the index date, local
   contraindications per level, systemic ones per patient.
3. tiers.py — the tier, first rule that applies (SPEC order).
4. score.py — the 0-100 ranking score from the config weights.
5. evidence.py — the ``reasons`` and ``evidence`` texts.

Patient flags (booleans). "Current" = affirmed and not historical, as the
note-level flags of notes.csv (design.md §2), so a patient's ``oedema``,
``retropulsion``, ``epidural_disease`` and ``anticoagulant`` are true exactly
when one of their notes' flags is:

* ``fracture`` — any affirmed fracture (historical included: "history of T9
  fracture" is a chronic level), i.e. at least one fracture level.
* ``acute_fracture`` — any acute level.
* ``oedema``, ``retropulsion``, ``epidural_disease`` — any current mention,
  at any date, linked to a fracture level or not.
* ``infection`` — a current, uncorrected infection, local or systemic, in the window.
* ``coagulopathy`` — the systemic coagulopathy contraindication (in the window).
* ``anticoagulant`` — any current anticoagulant mention (held or continued).
  These three are facts about the procedure: a patient without a fracture
  has no window and they are false (see ``in_window``).
* ``malignancy`` — a current malignancy mention ("breast cancer 2009, no
  recurrence" is historical and does not count) or a fracture of malignant
  aetiology ("pathological fracture").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import Config
from .contraindications import (LocalContraindication, coagulopathy, current_anticoagulants,
                                current_infections, describe_lab, in_window, latest_labs,
                                local_contraindications, systemic_infection)
from .evidence import evidence_text, join_reasons
from .frame import (as_text, format_date, join_by, level_rank, of_concept, prepare_denials,
                    prepare_mentions)
from .levels import (KEYS, LevelStatus, decide_level_status, fracture_rows, index_dates,
                     level_evidence, level_reason, retire_denied, retired_reason)
from .score import score_patients
from .tiers import REPORT_ORDER, Tier, assign_tiers

__all__ = ["screen_patients", "fracture_index_dates", "LevelStatus", "Tier", "LocalContraindication",
           "REPORT_ORDER", "PATIENT_COLUMNS"]

PATIENT_COLUMNS = [
    "person_id", "tier", "score", "fracture", "acute_fracture", "oedema", "retropulsion",
    "epidural_disease", "infection", "coagulopathy", "anticoagulant", "malignancy",
    "fracture_levels", "acute_levels", "candidate_levels", "index_date", "n_notes",
    "reasons", "evidence",
    # design.md §4 extras
    "indeterminate_levels", "chronic_levels", "latest_inr", "latest_platelets",
]


def screen_patients(mentions: pd.DataFrame, notes: pd.DataFrame | None,
                    config: Config, *, note_counts: pd.Series | None = None) -> pd.DataFrame:
    """One row per patient: tier, score, flags, levels, reasons and evidence.

    Every ``person_id`` of ``notes`` gets a row (patients without any mention
    are ``no_fracture`` with score 0), and so does any person found only in
    ``mentions``. Rows are sorted by ``person_id``; columns are
    ``PATIENT_COLUMNS``.

    ``note_counts`` (person_id -> number of notes), when given, names the
    patients and their ``n_notes`` instead of ``notes``; ``notes`` then
    needs only the notes that have mentions (a run over millions of notes
    counts them while streaming, see :func:`pipeline.run.note_census`).
    """
    people, n_notes = _people(notes, mentions, note_counts)
    prepared = prepare_mentions(mentions, notes)

    # 1. Levels and index date.
    fractures, levels, index, retired = _levels_and_index(prepared,
                                                          prepare_denials(mentions, notes))
    fracture_people = pd.Index(levels["person_id"].unique())
    window = in_window(prepared, index, config.window_days, fracture_people)

    # 2. Contraindications.
    infections = current_infections(prepared, window)
    local = local_contraindications(prepared, fractures, infections)
    systemic_infections = systemic_infection(infections)
    latest = latest_labs(prepared, window)
    coagulopathic = coagulopathy(prepared, window, latest, max_inr=config.max_inr,
                                 min_platelets=config.min_platelets)
    chronic_only = fracture_people.difference(levels.loc[levels["status"] != LevelStatus.CHRONIC, "person_id"])
    anticoagulants = current_anticoagulants(prepared, window, chronic_only)

    levels = _with_local(levels, local)
    status = levels["status"]
    levels["acute"] = status == LevelStatus.ACUTE
    levels["indeterminate"] = status == LevelStatus.INDETERMINATE
    levels["acute_free"] = levels["acute"] & ~levels["local"]
    levels["indeterminate_free"] = levels["indeterminate"] & ~levels["local"]
    by_person = levels.groupby("person_id").agg(
        acute=("acute", "any"), indeterminate=("indeterminate", "any"),
        acute_free=("acute_free", "any"), indeterminate_free=("indeterminate_free", "any"),
    ).reindex(people, fill_value=False).astype(bool)

    patients = pd.DataFrame(index=people)
    patients.index.name = "person_id"
    patients["has_fracture"] = people.isin(levels["person_id"])
    patients["has_active"] = by_person["acute"] | by_person["indeterminate"]
    patients["systemic"] = (people.isin(systemic_infections["person_id"])
                            | people.isin(coagulopathic["person_id"]))
    patients["acute_free"] = by_person["acute_free"]
    patients["indeterminate_free"] = by_person["indeterminate_free"]

    # 3. Tier.
    patients["tier"] = assign_tiers(patients)

    # Levels.
    def level_list(mask: pd.Series) -> pd.Series:
        return _joined_levels(levels[mask]).reindex(people).fillna("")

    patients["fracture_levels"] = level_list(pd.Series(True, index=levels.index))
    patients["acute_levels"] = level_list(levels["acute"])
    candidate_levels = level_list(levels["acute_free"])
    patients["candidate_levels"] = candidate_levels.where(
        patients["tier"] == Tier.CANDIDATE.value, "")
    patients["indeterminate_levels"] = level_list(levels["indeterminate"])
    patients["chronic_levels"] = level_list(status == LevelStatus.CHRONIC)
    patients["index_date"] = format_date(index.reindex(people).astype("datetime64[ns]"))

    # Flags.
    def anyone(frame: pd.DataFrame) -> np.ndarray:
        return people.isin(frame["person_id"])

    current = prepared[~prepared["historical"]]
    fracture_mentions = of_concept(prepared, "FRACTURE")
    patients["fracture"] = patients["has_fracture"]
    patients["acute_fracture"] = by_person["acute"]
    patients["oedema"] = anyone(of_concept(current, "OEDEMA"))
    patients["retropulsion"] = anyone(of_concept(current, "RETROPULSION"))
    patients["epidural_disease"] = anyone(of_concept(current, "EPIDURAL_DISEASE"))
    patients["infection"] = anyone(infections)
    patients["coagulopathy"] = anyone(coagulopathic)
    patients["anticoagulant"] = anyone(anticoagulants)
    patients["malignancy"] = (
        anyone(of_concept(current, "MALIGNANCY"))
        | anyone(fracture_mentions[fracture_mentions["aetiology"].str.lower() == "malignant"]))

    # 4. Score.
    features = _score_features(prepared, levels, window, patients, by_person)
    score = score_patients(features, config.weights)
    patients["score"] = score.where(patients["has_fracture"], 0.0)

    # 5. Reasons and evidence.
    lab_values = latest.assign(text=[describe_lab(*values) for values in zip(
        latest["lab"], latest["value"], latest["corrected"])])
    patients["latest_inr"] = _lab_value(latest, "INR", people)
    patients["latest_platelets"] = _lab_value(latest, "platelets", people)
    patients["reasons"] = _reasons(prepared, levels, retired, patients, systemic_infections,
                                   coagulopathic, lab_values, anticoagulants)
    picks = pd.concat([
        levels[["person_id", "rows"]].explode("rows").rename(columns={"rows": "row"}),
        local[["person_id", "row"]],
        systemic_infections[["person_id", "row"]],
        coagulopathic[["person_id", "row"]],
        latest[["person_id", "row"]],
        anticoagulants[["person_id", "row"]],
    ], ignore_index=True)
    patients["evidence"] = evidence_text(prepared, picks).reindex(people).fillna("")

    patients["n_notes"] = n_notes.reindex(people).fillna(0).astype("int64")
    patients = patients.reset_index()
    return patients[PATIENT_COLUMNS]


def _levels_and_index(prepared: pd.DataFrame, denials: pd.DataFrame
                      ) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.DataFrame]:
    """Fracture rows, fracture levels with their status, the index dates and the
    levels a later note denies (levels.py).

    They are decided from FRACTURE and OEDEMA mentions alone (``denials``:
    the fracture mentions that deny a level, ``prepare_denials``).
    """
    fractures = fracture_rows(prepared)
    evidence, retired = retire_denied(level_evidence(prepared, fractures), denials)
    levels = decide_level_status(evidence)
    return fractures, levels, index_dates(evidence, levels), retired


def fracture_index_dates(mentions: pd.DataFrame) -> pd.Series:
    """person_id -> index date (``NaT``: none) of every patient with a fracture level.

    What :func:`screen_patients` finds from the same mentions. Only FRACTURE
    and OEDEMA mentions decide it, so the mentions of the first pass of
    ``screen`` are enough (see :func:`pipeline.run.second_pass`).
    """
    _, levels, index, _ = _levels_and_index(prepare_mentions(mentions), prepare_denials(mentions))
    return index.reindex(pd.Index(levels["person_id"].unique())).astype("datetime64[ns]")


def _people(notes: pd.DataFrame | None, mentions: pd.DataFrame | None,
            note_counts: pd.Series | None = None) -> tuple[pd.Index, pd.Series]:
    """Sorted person ids of notes (or ``note_counts``) and mentions, and the note count per person."""
    ids: list[pd.Series] = []
    n_notes = pd.Series(dtype="int64")
    if note_counts is not None:
        n_notes = note_counts
        ids.append(pd.Series(note_counts.index.astype(str), dtype=object))
    elif notes is not None and "person_id" in notes:
        person = as_text(notes["person_id"])
        ids.append(person)
        if "note_id" in notes:
            n_notes = as_text(notes["note_id"]).groupby(person).nunique()
        else:
            n_notes = person.value_counts()
    if mentions is not None and "person_id" in mentions:
        ids.append(pd.Series(as_text(mentions["person_id"]).unique(), dtype=object))
    if not ids:
        return pd.Index([], dtype=object, name="person_id"), n_notes
    people = pd.Index(pd.concat(ids, ignore_index=True).unique(), dtype=object)
    return people.sort_values(), n_notes


def _joined_levels(levels: pd.DataFrame) -> pd.Series:
    """person_id -> ``;``-joined levels; ``levels`` is already in craniocaudal order."""
    return join_by(levels["person_id"], levels["level"], ";")


def _with_local(levels: pd.DataFrame, local: pd.DataFrame) -> pd.DataFrame:
    """Add ``local_kinds`` ("retropulsion, epidural disease") and ``local`` per level.

    The result is sorted by person and craniocaudal level order, one row per
    (person, level), which every level list relies on.
    """
    # Local findings are few (a pandas groupby-join is fine here).
    kinds = (local[[*KEYS, "kind"]].drop_duplicates().sort_values([*KEYS, "kind"])
             .groupby(KEYS)["kind"].agg(", ".join).rename("local_kinds"))
    levels = levels.join(kinds, on=KEYS)
    levels["local"] = levels["local_kinds"].notna()
    levels["local_kinds"] = levels["local_kinds"].fillna("")
    levels["rank_order"] = level_rank(levels["level"])
    return levels.sort_values(["person_id", "rank_order"], kind="stable").reset_index(drop=True)


def _score_features(prepared: pd.DataFrame, levels: pd.DataFrame, window: np.ndarray,
                    patients: pd.DataFrame, by_person: pd.DataFrame) -> pd.DataFrame:
    people = patients.index
    acute = levels[levels["acute"]]
    pain = of_concept(prepared, "PAIN")
    pain = pain[~pain["historical"] & window[pain["row"].to_numpy()]]
    severity = (pain["value"].clip(0, 10) / 10).groupby(pain["person_id"]).max()
    fracture_mentions = of_concept(prepared, "FRACTURE")
    osteoporotic = fracture_mentions["aetiology"].str.lower() == "osteoporotic"
    return pd.DataFrame({
        "acute_level": by_person["acute"],
        "acute_on_mri": people.isin(acute.loc[acute["modality"].str.upper() == "MRI",
                                              "person_id"]),
        "oedema": people.isin(acute.loc[acute["oedema"], "person_id"]),
        "new_fracture": people.isin(acute.loc[acute["new"], "person_id"]),
        "indeterminate_level": by_person["indeterminate"] & ~by_person["acute"],
        "pain": people.isin(pain["person_id"]),
        "pain_severity": severity.reindex(people).fillna(0.0).to_numpy(),
        "malignant": patients["malignancy"],
        "osteoporosis": (people.isin(of_concept(prepared, "OSTEOPOROSIS")["person_id"])
                         | people.isin(fracture_mentions.loc[osteoporotic, "person_id"])),
    }, index=people)


def _infection_summary(infections: pd.DataFrame, shown: int = 3) -> pd.Series:
    """person_id -> "systemic infection: urosepsis, bacteraemia, fever, +2 more (2025-08-14)".

    Distinct terms in time order, at most ``shown`` of them, and the date of
    the latest mention.
    """
    if infections.empty:
        return pd.Series(dtype=object)
    items = pd.DataFrame({
        "person_id": infections["person_id"].to_numpy(),
        "seq": infections["seq"].to_numpy(),
        "label": infections["lexical_variant"].str.lower().replace("", "infection").to_numpy(),
        "date": format_date(infections["note_date"]).replace("", "undated").to_numpy(),
    }).sort_values("seq", kind="stable")
    distinct = items.drop_duplicates(["person_id", "label"])
    first = distinct.groupby("person_id", sort=False).head(shown)
    more = (distinct.groupby("person_id").size() - first.groupby("person_id").size())
    more_text = more.map(lambda count: f", +{count} more" if count else "")
    latest = items.groupby("person_id")["date"].last()
    labels = join_by(first["person_id"], first["label"], ", ")
    return ("systemic infection: " + labels + more_text.reindex(labels.index)
            + " (" + latest.reindex(labels.index) + ")")


def _lab_value(latest: pd.DataFrame, lab: str, people: pd.Index) -> np.ndarray:
    values = latest[latest["lab"] == lab].set_index("person_id")["value"]
    return values.reindex(people).astype(float).to_numpy()


def _reasons(prepared: pd.DataFrame, levels: pd.DataFrame, retired: pd.DataFrame,
             patients: pd.DataFrame,
             systemic_infections: pd.DataFrame, coagulopathic: pd.DataFrame,
             lab_values: pd.DataFrame, anticoagulants: pd.DataFrame) -> pd.Series:
    """person_id -> short text, e.g.

    ``L2 acute (marrow oedema on MRI 2025-05-12); T12 not a fracture level (no
    fracture on CT 2025-05-20); no local contraindication at L2; no systemic
    contraindication; INR 1.0``
    """
    people = patients.index
    with_local = np.where(levels["local"], " with " + levels["local_kinds"], "")
    level_text = join_by(levels["person_id"], level_reason(levels) + with_local, "; ")
    retired_text = join_by(retired["person_id"], retired_reason(retired), "; ")

    free = levels[levels["acute_free"] | levels["indeterminate_free"]]
    local_text = "no local contraindication at " + join_by(free["person_id"], free["level"], ", ")
    no_fracture = pd.Series(np.where(patients["has_fracture"], "", "no affirmed fracture"),
                            index=people)

    def listed(frame: pd.DataFrame, text: pd.Series, prefix: str = "") -> pd.Series:
        if frame.empty:
            return pd.Series(dtype=object)
        items = pd.DataFrame({"person_id": frame["person_id"].to_numpy(),
                              "seq": frame["seq"].to_numpy(), "text": text.to_numpy()})
        items = items.sort_values("seq", kind="stable").drop_duplicates(["person_id", "text"])
        return prefix + join_by(items["person_id"], items["text"], ", ")

    infection_text = _infection_summary(systemic_infections)
    coagulopathy_text = listed(coagulopathic, coagulopathic["reason"])
    systemic_clear = pd.Series(np.where(patients["has_active"] & ~patients["systemic"],
                                        "no systemic contraindication", ""), index=people)
    # Latest values are shown unless a coagulopathy reason already states them.
    shown = lab_values[~lab_values["row"].isin(coagulopathic["row"])]
    lab_text = listed(shown, shown["text"])
    status = anticoagulants["med_status"]
    anticoagulant_text = listed(
        anticoagulants,
        anticoagulants["lexical_variant"].str.lower()
        + np.where(status != "", " (" + status + ")", ""),
        "anticoagulant: ")
    return join_reasons([no_fracture, level_text, retired_text, local_text, infection_text,
                         coagulopathy_text, systemic_clear, lab_text, anticoagulant_text], people)

