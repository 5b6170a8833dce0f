"""Fracture levels and their status (acute / chronic / indeterminate), SPEC §4.

The decisions, in the order they run:

1. ``link_levelless`` — which level a mention without a level belongs to.
2. ``fracture_evidence_rank`` — what one fracture mention says about its level.
3. ``level_evidence`` — fracture mentions plus linked marrow oedema, one row
   per (patient, level, mention).
4. ``retire_denied`` — levels a later note denies outright.
5. ``decide_level_status`` — one status per (patient, level) from its evidence.
6. ``index_dates`` — the date the contraindication window is centred on.

Every function works on whole frames (pandas vectorised, no per-row Python).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

import numpy as np
import pandas as pd

from .frame import UNSPECIFIED, collect_by, date_keys, format_date, join_by, of_concept

__all__ = ["LevelStatus", "Evidence", "fracture_rows", "link_levelless",
           "fracture_evidence_rank", "level_evidence", "retire_denied", "decide_level_status",
           "index_dates", "level_reason", "retired_reason"]

KEYS = ["person_id", "level"]


class LevelStatus(StrEnum):
    """Status of one fracture level of one patient."""

    ACUTE = "acute"
    CHRONIC = "chronic"
    INDETERMINATE = "indeterminate"


class Evidence(IntEnum):
    """Strength of one mention's evidence about a level (higher wins within a note)."""

    HISTORY_ONLY = 0    # "history of T9 fracture"
    MENTION_ONLY = 1    # "L2 compression fracture" (nothing about acuity)
    INDETERMINATE = 2   # "L2 compression fracture, age indeterminate" (says the age is not known)
    CHRONIC = 3         # "healed L3 fracture", "chronic-appearing", "unchanged from prior"
    ACUTE = 4           # "acute L1 fracture", "new T12 deformity", oedema at the level


_ACUTE_WORDS = ("acute", "subacute")
_CHRONIC_WORDS = ("chronic", "healed")


def _explode(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (mention, level); a mention without levels keeps level ``""``."""
    exploded = frame.assign(level=frame["levels"].str.split(";")).explode("level")
    exploded["level"] = exploded["level"].fillna("")
    return exploded.drop_duplicates(["row", "level"])


def note_single_level(fractures: pd.DataFrame) -> pd.Series:
    """note_id -> the one level its current fracture mentions name, or `unspecified`.

    Only affirmed, non-historical fracture mentions are read. A note whose
    fracture mentions name several levels is absent (ambiguous).
    """
    current = fractures[~fractures["historical"]]
    is_named = ~current["level"].isin(["", UNSPECIFIED])
    named = current.loc[is_named, ["note_id", "level"]].drop_duplicates()
    counts = named.groupby("note_id")["level"].agg(["nunique", "first"])
    single = counts.loc[counts["nunique"] == 1, "first"]
    unnamed_notes = pd.Index(current["note_id"].unique()).difference(named["note_id"].unique())
    return pd.concat([single, pd.Series(UNSPECIFIED, index=unnamed_notes, dtype=object)])


def link_levelless(rows: pd.DataFrame, single_level: pd.Series, *,
                   keep_unlinked_as_unspecified: bool) -> pd.DataFrame:
    """Give mentions with no level the level their note's fracture names.

    Rule (the note's affirmed, non-historical fracture mentions decide):

    * they name exactly one level -> that level.
      "Acute L1 compression fracture. Marrow oedema in the fractured body."
      -> the oedema is at L1.
    * they name no level -> `unspecified`.
      "Compression fracture with marrow oedema." -> oedema at `unspecified`.
    * they name several levels, or the note has no current fracture mention
      -> not linked: dropped, unless ``keep_unlinked_as_unspecified`` (used
      for fracture mentions themselves, which always count).
      "T12 and L1 fractures. Marrow oedema." -> the oedema counts for
      neither level; "Compression fracture." in that note -> `unspecified`.

    Rows that already have a level are returned unchanged.
    """
    has_level = rows["level"] != ""
    levelless = rows[~has_level].copy()
    levelless["level"] = levelless["note_id"].map(single_level)
    if keep_unlinked_as_unspecified:
        levelless["level"] = levelless["level"].fillna(UNSPECIFIED)
    else:
        levelless = levelless[levelless["level"].notna()]
    return pd.concat([rows[has_level], levelless], ignore_index=True)


def fracture_rows(prepared: pd.DataFrame) -> pd.DataFrame:
    """Affirmed fracture mentions, one row per (mention, level).

    A fracture mention with no level gets the single level its note names
    (see ``link_levelless``), else `unspecified`: "Acute L1 fracture ...
    Impression: compression fracture, acute." gives L1 twice, not L1 and
    `unspecified`.
    """
    fractures = _explode(of_concept(prepared, "FRACTURE"))
    return link_levelless(fractures, note_single_level(fractures),
                          keep_unlinked_as_unspecified=True)


def fracture_evidence_rank(fractures: pd.DataFrame) -> np.ndarray:
    """What one affirmed fracture mention says about its level (``Evidence``).

    Precedence, first that applies:

    1. historical and worded chronic/healed -> CHRONIC
       "old healed T9 fracture" (historical): the text itself says chronic.
    2. historical -> HISTORY_ONLY
       "history of T9 fracture", "prior acute L1 fracture (2019)": chronic
       only when the level has no other evidence at all.
    3. acuity acute/subacute, or ``new`` -> ACUTE
       "acute L1 compression fracture", "new T12 compression deformity",
       "interval development of L2 fracture".
    4. acuity chronic/healed -> CHRONIC
       "chronic-appearing L3 wedge deformity", "healed", "unchanged from prior".
    5. acuity indeterminate -> INDETERMINATE
       "age-indeterminate L4 fracture": a reading of its age, that it cannot be told.
    6. otherwise -> MENTION_ONLY
       "L2 compression fracture".
    """
    acuity = fractures["acuity"].str.lower()
    historical = fractures["historical"].to_numpy()
    chronic_word = acuity.isin(_CHRONIC_WORDS).to_numpy()
    acute = (acuity.isin(_ACUTE_WORDS) | fractures["new"]).to_numpy()
    indeterminate = (acuity == "indeterminate").to_numpy()
    return np.select(
        [historical & chronic_word, historical, acute, chronic_word, indeterminate],
        [Evidence.CHRONIC, Evidence.HISTORY_ONLY, Evidence.ACUTE, Evidence.CHRONIC, Evidence.INDETERMINATE],
        default=Evidence.MENTION_ONLY,
    ).astype("int64")


def _fracture_cue(fractures: pd.DataFrame, rank: np.ndarray) -> np.ndarray:
    acuity = fractures["acuity"].str.lower()
    worded_acute = acuity.isin(_ACUTE_WORDS).to_numpy()
    new = fractures["new"].to_numpy()
    acute_cue = np.where(worded_acute, np.where(new, acuity + ", new", acuity), "new")
    mention_cue = np.where(acuity == "indeterminate", "age indeterminate", "acuity not stated")
    return np.select(
        [rank == Evidence.ACUTE, rank == Evidence.CHRONIC, rank == Evidence.HISTORY_ONLY],
        [acute_cue, acuity.to_numpy(), "history only"],
        default=mention_cue,
    )


_EVIDENCE_COLUMNS = ["person_id", "level", "note_id", "note_date", "seq", "modality",
                     "concept", "new", "rank", "cue", "row"]


def level_evidence(prepared: pd.DataFrame, fractures: pd.DataFrame) -> pd.DataFrame:
    """Evidence rows about each fracture level: fracture mentions and linked oedema.

    Oedema counts as ACUTE evidence when it is affirmed and current (not
    historical) and linked to a level the patient has a fracture at (by its
    own levels, or for a level-less oedema by ``link_levelless``). Oedema
    never creates a fracture level: "marrow oedema at L3" with fractures only
    at L1 adds nothing. Negated oedema ("no marrow oedema") was dropped
    before this point, so it never makes a level chronic.
    """
    rank = fracture_evidence_rank(fractures)
    fracture_evidence = fractures.assign(rank=rank, cue=_fracture_cue(fractures, rank))

    oedema = of_concept(prepared, "OEDEMA")
    oedema = oedema[~oedema["historical"]]
    oedema = link_levelless(_explode(oedema), note_single_level(fractures),
                            keep_unlinked_as_unspecified=False)
    oedema = oedema.merge(fractures[KEYS].drop_duplicates(), on=KEYS, how="inner")
    finding = np.where(oedema["modality"] == "NM", "bone-scan uptake", "marrow oedema")
    oedema = oedema.assign(rank=int(Evidence.ACUTE),
                           cue=np.where(oedema["new"], np.char.add("new ", finding), finding))

    evidence = pd.concat([fracture_evidence[_EVIDENCE_COLUMNS], oedema[_EVIDENCE_COLUMNS]],
                         ignore_index=True)
    evidence["rank"] = evidence["rank"].astype("int64")
    evidence["note_date"] = evidence["note_date"].astype("datetime64[ns]")
    return evidence


def retire_denied(evidence: pd.DataFrame, denials: pd.DataFrame
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop the levels that a later dated note denies outright (SPEC §4: when
    notes disagree about a level, the most recent dated note wins).

    "2025-03-02 XR: T12 compression fracture" then "2025-03-20 MRI: T12: no
    fracture" -> T12 is not a fracture level. A level is retired only when
    the denial's note is dated after every note with evidence at that level
    (undated notes are the oldest, so an undated denial retires nothing), so
    a note that denies and affirms the same level ("no fracture at T12 ...
    T12 compression fracture") keeps it. Denials are ``prepare_denials``:
    "no new fracture at T12" or "no acute fracture at T12" retire nothing.

    Returns the evidence left and the retired levels (person_id, level and
    the latest denying note's note_date and modality, for the reasons).
    """
    retired = pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in [
        ("person_id", object), ("level", object), ("note_date", "datetime64[ns]"),
        ("modality", object)]})
    if evidence.empty or denials.empty:
        return evidence, retired
    denied = _explode(denials)
    latest_denial = _latest_date(denied)
    latest_evidence = _latest_date(evidence)
    later = latest_denial.reindex(latest_evidence.index, fill_value=np.iinfo("int64").min)
    keys = latest_evidence.index[later.to_numpy() > latest_evidence.to_numpy()]
    if keys.empty:
        return evidence, retired
    denying = denied.sort_values(["note_date", "seq"], kind="stable").drop_duplicates(KEYS, keep="last")
    denying = denying[pd.MultiIndex.from_frame(denying[KEYS]).isin(keys)]
    is_retired = pd.MultiIndex.from_frame(evidence[KEYS]).isin(keys)
    return (evidence[~is_retired].reset_index(drop=True),
            denying[retired.columns].reset_index(drop=True))


def _latest_date(frame: pd.DataFrame) -> pd.Series:
    """(person_id, level) -> the latest note date as int64 (undated: the smallest)."""
    keys = pd.MultiIndex.from_frame(frame[KEYS])
    return pd.Series(date_keys(frame["note_date"]), index=keys).groupby(level=[0, 1]).max()


def decide_level_status(evidence: pd.DataFrame) -> pd.DataFrame:
    """One status per (patient, level); the deciding note and why.

    Precedence:

    1. Evidence that reads the age (ACUTE, CHRONIC or INDETERMINATE) exists
       -> the most recent dated note carrying such evidence decides (undated
       notes are the oldest); within that note, and between notes of the same
       day, acute beats chronic beats indeterminate.
       "2025-03 MRI: acute L1 fracture with oedema" then "2025-06 XR: healed
       L1 fracture" -> chronic. The reverse order -> acute.
       "2025-06-10 ED: acute L3 fracture" then "2025-06-11 CT: L3 compression
       deformity, age-indeterminate" -> indeterminate (the notes disagree;
       the latest wins, SPEC §4).
       A later note that only names the fracture ("L1 compression fracture")
       says nothing about acuity and does not override the earlier MRI.
    2. Else a current mention without acuity exists -> indeterminate.
       "L2 compression fracture" -> indeterminate (MRI would tell).
    3. Else (only historical mentions) -> chronic.
       "history of T9 fracture" -> chronic.

    Returns person_id, level, status, rank and, from the deciding note:
    note_id, note_date, modality, cues ("marrow oedema, acute"), oedema
    (linked oedema among the deciding evidence), new (described as new) and
    rows (the deciding mentions, for the evidence column).
    """
    if evidence.empty:
        return pd.DataFrame({column: pd.Series(dtype=dtype) for column, dtype in [
            ("person_id", object), ("level", object), ("status", object), ("rank", "int64"),
            ("note_id", object), ("note_date", "datetime64[ns]"), ("modality", object),
            ("cues", object), ("oedema", bool), ("new", bool), ("rows", object)]})
    # One integer per (patient, level), so sorting never compares strings.
    person_code = pd.factorize(evidence["person_id"])[0].astype("int64")
    level_code, level_names = pd.factorize(evidence["level"])
    group = person_code * (len(level_names) + 1) + level_code
    # Acuity evidence outranks the rest whatever its date; among the rest a
    # plain mention outranks a historical one.
    rank = evidence["rank"].to_numpy()
    strength = np.where(rank >= Evidence.INDETERMINATE, Evidence.ACUTE + 1, rank)
    date_key = date_keys(evidence["note_date"])
    order = np.lexsort((evidence["seq"].to_numpy(), rank, date_key, strength, group))
    last = np.ones(len(order), dtype=bool)
    last[:-1] = group[order][1:] != group[order][:-1]
    deciding = evidence.iloc[order[last]][
        [*KEYS, "note_id", "note_date", "modality", "rank"]].reset_index(drop=True)
    deciding_group = group[order[last]]
    deciding["status"] = np.select(
        [deciding["rank"] == Evidence.ACUTE, deciding["rank"].isin([Evidence.MENTION_ONLY, Evidence.INDETERMINATE])],
        [LevelStatus.ACUTE.value, LevelStatus.INDETERMINATE.value],
        default=LevelStatus.CHRONIC.value)

    # The cues and mention rows of the deciding note at the deciding strength.
    position = pd.Series(np.arange(len(deciding)), index=deciding_group)
    owner = position.reindex(group).to_numpy()
    same = ((evidence["note_id"].to_numpy() == deciding["note_id"].to_numpy()[owner])
            & (rank == deciding["rank"].to_numpy()[owner]))
    chosen = evidence[same].assign(owner=owner[same]).sort_values(["owner", "seq"],
                                                                  kind="stable")
    distinct_cues = chosen.drop_duplicates(["owner", "cue"])
    deciding["cues"] = join_by(distinct_cues["owner"], distinct_cues["cue"], ", ").reindex(
        deciding.index).to_numpy()
    deciding["rows"] = collect_by(chosen["owner"], chosen["row"]).reindex(
        deciding.index).to_numpy()
    flags = chosen.assign(oedema=chosen["concept"] == "OEDEMA").groupby("owner")[
        ["oedema", "new"]].any()
    deciding[["oedema", "new"]] = flags.reindex(deciding.index).to_numpy(dtype=bool)
    return deciding


def index_dates(evidence: pd.DataFrame, levels: pd.DataFrame) -> pd.Series:
    """person_id -> index date, for every patient with a fracture level.

    1. The patient has an acute or indeterminate level -> the date of the
       latest note with an acute or indeterminate fracture mention (ACUTE,
       INDETERMINATE or MENTION_ONLY evidence, linked oedema included) at such a level
       (SPEC §4). Chronic levels and historical mentions do not move it:
       "2025-01 MRI: acute L1 fracture" and "2025-09 XR: healed T6
       fracture" -> 2025-01.
    2. Only chronic levels -> the date of the latest note with any affirmed
       fracture mention. The SPEC leaves this case open; centring the window
       on the last time the fracture was described keeps an INR or an
       infection from an unrelated admission years away out of the flags
       (the tier is not_indicated either way).

    ``NaT`` when every such note is undated. Patients without a fracture
    level are absent.
    """
    if evidence.empty:
        return pd.Series(dtype="datetime64[ns]")
    status = evidence[KEYS].merge(levels[[*KEYS, "status"]], on=KEYS, how="left")["status"]
    active_level = (status != LevelStatus.CHRONIC).to_numpy()
    active_mention = evidence["rank"].isin([Evidence.ACUTE, Evidence.INDETERMINATE, Evidence.MENTION_ONLY]).to_numpy()
    active_person = evidence["person_id"].isin(evidence.loc[active_level, "person_id"]).to_numpy()
    counts = np.where(active_person, active_level & active_mention, True)
    return evidence[counts].groupby("person_id")["note_date"].max()


def level_reason(levels: pd.DataFrame) -> pd.Series:
    """Short text per level: "L2 acute (marrow oedema on MRI 2025-05-12)"."""
    level = levels["level"].replace(UNSPECIFIED, "unspecified level")
    return level + " " + levels["status"] + " (" + levels["cues"] + _where(levels) + ")"


def retired_reason(retired: pd.DataFrame) -> pd.Series:
    """Short text per retired level: "T12 not a fracture level (no fracture on CT 2025-04-05)"."""
    return retired["level"] + " not a fracture level (no fracture" + _where(retired) + ")"


def _where(frame: pd.DataFrame) -> pd.Series:
    """" on MRI 2025-05-12", ", 2025-05-12", " on MRI, undated" or ", undated"."""
    date = format_date(frame["note_date"])
    modality = frame["modality"].astype(str)
    where = np.where(modality != "", " on " + modality + np.where(date != "", " " + date, ""),
                     np.where(date != "", ", " + date, ""))
    return np.char.add(where.astype(str), np.where(date == "", ", undated", ""))
