"""Evaluate the whole pipeline against an annotated corpus (``vertebro evaluate``).

A corpus folder (``corpora/dev/``, built by ``corpora/build_corpus.py``) holds

* ``notes.jsonl`` — one note per line, OMOP NOTE columns;
* ``gold_mentions.jsonl`` — one annotated mention per line: ``note_id``,
  ``concept``, half-open ``start``/``end``, the five flags, ``levels`` (a
  list) and, when annotated, ``acuity``, ``aetiology``, ``scope``, ``lab``,
  ``value``, ``corrected``, ``med_status`` (absent means empty);
* ``gold_patients.csv`` (optional) — one row per patient: ``tier``, the
  flags of SPEC §5 (``true``/``false``) and the level lists.

The notes are screened exactly as ``pipeline.run.screen`` does, then:

* **mentions**, per concept: *strict* matches (same note, concept, start and
  end) and *overlap* matches (same note and concept, overlapping spans),
  each gold and predicted mention matched at most once;
* **attributes**, on the overlap-matched pairs: the five flags, ``levels``
  (as a set) for the concepts that carry levels, ``acuity`` and
  ``aetiology`` for fractures, ``scope`` for infections, ``corrected`` and
  ``med_status`` where they apply, and ``lab``/``value`` for lab values;
* **note flags** (docs/design.md §2), gold flags computed from the gold
  mentions by the same function as the predicted ones;
* **patients** (with ``gold_patients.csv``): tier accuracy and confusion
  matrix, P/R/F1 of each flag of SPEC §5, exact match of the level lists.

Every table is written as CSV into the output folder, with ``summary.md``
(the Markdown summary, also returned).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from ..io.writers import make_private_dir, write_csv, write_text
from ..nlp.extract import NOTE_FLAGS, note_flags
from ..nlp.levels import sort_levels

#: The concepts a mention is evaluated for (LEVEL is an attribute, not a mention).
CONCEPTS = ["FRACTURE", "OEDEMA", "RETROPULSION", "EPIDURAL_DISEASE", "INFECTION", "COAGULOPATHY",
            "ANTICOAGULANT", "MALIGNANCY", "PAIN", "OSTEOPOROSIS", "PRIOR_AUGMENTATION"]
FLAGS = ["negated", "uncertain", "historical", "hypothetical", "family"]
LEVELLED = {"FRACTURE", "OEDEMA", "RETROPULSION", "EPIDURAL_DISEASE", "INFECTION", "MALIGNANCY",
            "PRIOR_AUGMENTATION"}
#: attribute -> the concepts it is compared on (None: every concept).
ATTRIBUTES: dict[str, set[str] | None] = {
    **{flag: None for flag in FLAGS},
    "levels": LEVELLED,
    "acuity": {"FRACTURE"},
    "aetiology": {"FRACTURE"},
    "scope": {"INFECTION"},
    "corrected": {"COAGULOPATHY", "INFECTION"},  # SPEC §3; anticoagulants have med_status
    "med_status": {"ANTICOAGULANT"},
    "lab": {"COAGULOPATHY"},
    "value": {"COAGULOPATHY"},
}
TEXT_ATTRIBUTES = ["acuity", "aetiology", "scope", "corrected", "med_status", "lab"]
PATIENT_FLAGS = ["fracture", "acute_fracture", "oedema", "retropulsion", "epidural_disease",
                 "infection", "coagulopathy", "anticoagulant", "malignancy"]
PATIENT_LEVELS = ["fracture_levels", "acute_levels", "candidate_levels"]
TIERS = ["candidate", "needs_imaging", "contraindicated", "not_indicated", "no_fracture"]
_TRUE = {"true", "1", "yes", "y", "t"}


# --------------------------------------------------------------------------- reading

def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path.name}, line {number}: not valid JSON ({error.msg})") from None
    return rows


def read_corpus(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """``(notes, gold_mentions, gold_patients or None)`` of a corpus folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a corpus folder")
    for name in ("notes.jsonl", "gold_mentions.jsonl"):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder}: no {name} (a corpus folder holds notes.jsonl and gold_mentions.jsonl)")
    notes = pd.DataFrame(_read_jsonl(folder / "notes.jsonl"))
    if notes.empty or not {"note_id", "person_id", "note_text"} <= set(notes.columns):
        raise ValueError(f"{folder / 'notes.jsonl'}: needs note_id, person_id and note_text")
    notes["note_id"] = notes["note_id"].astype(str)
    notes["person_id"] = notes["person_id"].astype(str)
    gold = normalise_mentions(pd.DataFrame(_read_jsonl(folder / "gold_mentions.jsonl")))
    unknown = set(gold["note_id"]) - set(notes["note_id"])
    if unknown:
        raise ValueError(f"gold_mentions.jsonl names {len(unknown)} note(s) not in notes.jsonl, "
                         f"e.g. {sorted(unknown)[0]!r}")
    patients = None
    if (folder / "gold_patients.csv").exists():
        patients = pd.read_csv(folder / "gold_patients.csv", dtype=str, keep_default_na=False)
        patients["person_id"] = patients["person_id"].astype(str)
    return notes, gold, patients


def _levels_list(value) -> list[str]:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return []
    if isinstance(value, str):
        return sort_levels(level for level in value.split(";") if level)
    return sort_levels(value)


def _bool(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return bool(value) if value is not None and not (isinstance(value, float) and pd.isna(value)) else False


def normalise_mentions(frame: pd.DataFrame) -> pd.DataFrame:
    """Gold or predicted mentions in one shape: typed flags, levels as sorted lists, "" for absent text."""
    frame = frame.copy()
    if frame.empty:
        frame = pd.DataFrame(columns=["note_id", "concept", "start", "end"])
    frame["note_id"] = frame["note_id"].astype(str)
    frame["start"] = frame["start"].astype(int)
    frame["end"] = frame["end"].astype(int)
    for flag in FLAGS + ["new"]:
        frame[flag] = frame[flag].map(_bool) if flag in frame else False
    frame["levels"] = frame["levels"].map(_levels_list) if "levels" in frame else [[] for _ in range(len(frame))]
    for name in TEXT_ATTRIBUTES:
        frame[name] = frame[name].fillna("").astype(str) if name in frame else ""
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce") if "value" in frame else float("nan")
    if "text" not in frame:
        frame["text"] = frame["lexical_variant"] if "lexical_variant" in frame else ""
    return frame.reset_index(drop=True)


# --------------------------------------------------------------------------- matching

def _overlap(a_start: int, a_end: int, b_start: int, b_end: int) -> int:
    return max(0, min(a_end, b_end) - max(a_start, b_start))


def match_mentions(gold: pd.DataFrame, predicted: pd.DataFrame, *, strict: bool) -> list[tuple[int, int]]:
    """One-to-one ``(gold index, predicted index)`` pairs of the same note and concept.

    Strict pairs have the same span; overlap pairs share at least one
    character, the closest spans (then the same lab) paired first.
    """
    pairs = []
    predicted_groups = {key: group for key, group in predicted.groupby(["note_id", "concept"], sort=False)}
    for key, gold_group in gold.groupby(["note_id", "concept"], sort=False):
        candidates_frame = predicted_groups.get(key)
        if candidates_frame is None:
            continue
        candidates = []
        for g, g_row in gold_group.iterrows():
            for p, p_row in candidates_frame.iterrows():
                same_span = g_row.start == p_row.start and g_row.end == p_row.end
                shared = _overlap(g_row.start, g_row.end, p_row.start, p_row.end)
                if (strict and not same_span) or (not strict and not shared):
                    continue
                distance = abs(g_row.start - p_row.start) + abs(g_row.end - p_row.end)
                candidates.append((not same_span, g_row.lab != p_row.lab, distance, -shared, g, p))
        used_gold, used_predicted = set(), set()
        for *_, g, p in sorted(candidates):
            if g in used_gold or p in used_predicted:
                continue
            used_gold.add(g)
            used_predicted.add(p)
            pairs.append((g, p))
    return pairs


def _prf(tp: int, fp: int, fn: int) -> tuple[float | None, float | None, float | None]:
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    if precision is None or recall is None or precision + recall == 0:
        f1 = 0.0 if (precision == 0 or recall == 0) else None
    else:
        f1 = 2 * precision * recall / (precision + recall)
    return precision, recall, f1


def _round(value):
    return None if value is None else round(value, 4)


def mention_scores(gold: pd.DataFrame, predicted: pd.DataFrame,
                   strict_pairs: list[tuple[int, int]], overlap_pairs: list[tuple[int, int]]) -> pd.DataFrame:
    """Per concept (and ``ALL``, micro-averaged): counts and strict/overlap P/R/F1."""
    rows = []
    strict_gold = pd.Series([g for g, _ in strict_pairs], dtype=int)
    overlap_gold = pd.Series([g for g, _ in overlap_pairs], dtype=int)
    for concept in CONCEPTS + ["ALL"]:
        in_gold = gold.index if concept == "ALL" else gold.index[gold["concept"] == concept]
        in_predicted = predicted.index if concept == "ALL" else predicted.index[predicted["concept"] == concept]
        row = {"concept": concept, "gold": len(in_gold), "predicted": len(in_predicted)}
        for mode, matched in (("strict", strict_gold), ("overlap", overlap_gold)):
            tp = int(matched.isin(in_gold).sum())
            precision, recall, f1 = _prf(tp, len(in_predicted) - tp, len(in_gold) - tp)
            row.update({f"{mode}_tp": tp, f"{mode}_fp": len(in_predicted) - tp, f"{mode}_fn": len(in_gold) - tp,
                        f"{mode}_precision": _round(precision), f"{mode}_recall": _round(recall),
                        f"{mode}_f1": _round(f1)})
        rows.append(row)
    return pd.DataFrame(rows)


def _same(attribute: str, gold_value, predicted_value) -> bool:
    if attribute == "levels":
        return list(gold_value) == list(predicted_value)
    if attribute == "value":
        if pd.isna(gold_value) and pd.isna(predicted_value):
            return True
        return not (pd.isna(gold_value) or pd.isna(predicted_value)) and abs(gold_value - predicted_value) < 1e-6
    return gold_value == predicted_value


def _shown(attribute: str, value) -> str:
    if attribute == "levels":
        return ";".join(value)
    if attribute == "value":
        return "" if pd.isna(value) else f"{value:g}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def attribute_scores(gold: pd.DataFrame, predicted: pd.DataFrame,
                     pairs: list[tuple[int, int]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Accuracy of each attribute on the matched pairs, and one row per disagreement."""
    totals = {attribute: [0, 0] for attribute in ATTRIBUTES}
    errors = []
    for g, p in pairs:
        gold_row, predicted_row = gold.loc[g], predicted.loc[p]
        for attribute, concepts in ATTRIBUTES.items():
            if concepts is not None and gold_row.concept not in concepts:
                continue
            if attribute == "value" and not gold_row.lab:
                continue
            totals[attribute][0] += 1
            if _same(attribute, gold_row[attribute], predicted_row[attribute]):
                totals[attribute][1] += 1
            else:
                errors.append({"note_id": gold_row.note_id, "concept": gold_row.concept,
                               "start": int(gold_row.start), "end": int(gold_row.end), "text": gold_row.text,
                               "attribute": attribute, "gold": _shown(attribute, gold_row[attribute]),
                               "predicted": _shown(attribute, predicted_row[attribute])})
    scores = pd.DataFrame([{"attribute": attribute, "pairs": n, "correct": correct,
                            "accuracy": _round(correct / n) if n else None}
                           for attribute, (n, correct) in totals.items()])
    error_columns = ["note_id", "concept", "start", "end", "text", "attribute", "gold", "predicted"]
    return scores, pd.DataFrame(errors, columns=error_columns)


def unmatched(gold: pd.DataFrame, predicted: pd.DataFrame, pairs: list[tuple[int, int]]) -> pd.DataFrame:
    """Missed gold mentions and spurious predicted ones (overlap matching)."""
    matched_gold = {g for g, _ in pairs}
    matched_predicted = {p for _, p in pairs}
    rows = [{"kind": "missed", "note_id": row.note_id, "concept": row.concept, "start": int(row.start),
             "end": int(row.end), "text": row.text} for index, row in gold.iterrows() if index not in matched_gold]
    rows += [{"kind": "spurious", "note_id": row.note_id, "concept": row.concept, "start": int(row.start),
              "end": int(row.end), "text": row.text}
             for index, row in predicted.iterrows() if index not in matched_predicted]
    return pd.DataFrame(rows, columns=["kind", "note_id", "concept", "start", "end", "text"]).sort_values(
        ["note_id", "start", "kind"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- flags and patients

def binary_scores(gold: pd.Series, predicted: pd.Series) -> dict:
    gold, predicted = gold.astype(bool), predicted.astype(bool)
    tp = int((gold & predicted).sum())
    fp = int((~gold & predicted).sum())
    fn = int((gold & ~predicted).sum())
    precision, recall, f1 = _prf(tp, fp, fn)
    return {"gold": int(gold.sum()), "predicted": int(predicted.sum()), "tp": tp, "fp": fp, "fn": fn,
            "precision": _round(precision), "recall": _round(recall), "f1": _round(f1),
            "accuracy": _round(float((gold == predicted).mean())) if len(gold) else None}


def gold_note_flags(notes: pd.DataFrame, gold: pd.DataFrame) -> pd.DataFrame:
    """Note flags from the gold mentions, by the function that makes the predicted ones."""
    by_note = {note_id: group.to_dict("records") for note_id, group in gold.groupby("note_id")}
    rows = [{"note_id": note_id, **note_flags(by_note.get(note_id, []))} for note_id in notes["note_id"]]
    return pd.DataFrame(rows, columns=["note_id", *NOTE_FLAGS])


def note_flag_scores(gold_flags: pd.DataFrame, predicted_notes: pd.DataFrame) -> pd.DataFrame:
    merged = gold_flags.merge(predicted_notes[["note_id", *NOTE_FLAGS]].astype({"note_id": str}),
                              on="note_id", how="left", suffixes=("_gold", "_predicted"))
    rows = []
    for flag in NOTE_FLAGS:
        predicted = merged[f"{flag}_predicted"].map(_bool)
        rows.append({"flag": flag, **binary_scores(merged[f"{flag}_gold"], predicted)})
    return pd.DataFrame(rows)


def patient_scores(gold_patients: pd.DataFrame, predicted: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Tier comparison, confusion matrix, flag and level-list scores."""
    merged = gold_patients.merge(predicted.astype({"person_id": str}), on="person_id", how="left",
                                 suffixes=("_gold", "_predicted"))
    merged["tier_predicted"] = merged["tier_predicted"].fillna("(missing)").astype(str)
    tiers = pd.DataFrame({"person_id": merged["person_id"], "gold": merged["tier_gold"],
                          "predicted": merged["tier_predicted"]})
    tiers["match"] = tiers["gold"] == tiers["predicted"]
    labels = [tier for tier in TIERS if tier in set(tiers.gold) | set(tiers.predicted)]
    labels += sorted((set(tiers.gold) | set(tiers.predicted)) - set(labels))
    confusion = pd.crosstab(pd.Categorical(tiers.gold, categories=labels),
                            pd.Categorical(tiers.predicted, categories=labels), dropna=False)
    confusion.index.name, confusion.columns.name = "gold", "predicted"
    flags = []
    for flag in PATIENT_FLAGS:
        if f"{flag}_gold" not in merged:
            continue
        flags.append({"flag": flag, **binary_scores(merged[f"{flag}_gold"].map(_bool),
                                                    merged[f"{flag}_predicted"].map(_bool))})
    levels = []
    for column in PATIENT_LEVELS:
        if f"{column}_gold" not in merged:
            continue
        same = [_levels_list(g) == _levels_list(p)
                for g, p in zip(merged[f"{column}_gold"], merged[f"{column}_predicted"].fillna(""))]
        levels.append({"levels": column, "patients": len(same), "exact": int(sum(same)),
                       "accuracy": _round(sum(same) / len(same)) if same else None})
        tiers[f"{column}_gold"] = merged[f"{column}_gold"].to_numpy()
        tiers[f"{column}_predicted"] = merged[f"{column}_predicted"].fillna("").to_numpy()
    return {"tiers": tiers, "confusion": confusion, "flags": pd.DataFrame(flags), "levels": pd.DataFrame(levels)}


# --------------------------------------------------------------------------- report

def _markdown_table(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    frame = frame if columns is None else frame[list(columns)]

    def cell(value) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return "–"
        if isinstance(value, float):
            return f"{value:.3f}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def summary_markdown(*, corpus: str, counts: dict, mentions: pd.DataFrame, attributes: pd.DataFrame,
                     notes: pd.DataFrame, patients: dict[str, pd.DataFrame] | None) -> str:
    parts = [
        f"# Evaluation against `{corpus}`",
        "",
        f"{counts['notes']} notes, {counts['gold_mentions']} gold mentions, "
        f"{counts['predicted_mentions']} predicted mentions"
        + (f", {counts['patients']} gold patients." if patients is not None else "."),
        "",
        "## Mentions",
        "",
        "Strict: same note, concept, start and end. Overlap: same note and concept, overlapping spans.",
        "",
        _markdown_table(mentions, ["concept", "gold", "predicted", "strict_precision", "strict_recall",
                                   "strict_f1", "overlap_precision", "overlap_recall", "overlap_f1"]),
        "",
        "## Attributes (overlap-matched pairs)",
        "",
        _markdown_table(attributes),
        "",
        "## Note flags",
        "",
        _markdown_table(notes, ["flag", "gold", "predicted", "precision", "recall", "f1", "accuracy"]),
        "",
    ]
    if patients is not None:
        tiers = patients["tiers"]
        accuracy = tiers["match"].mean() if len(tiers) else float("nan")
        confusion = patients["confusion"].reset_index()
        confusion.columns = ["gold \\ predicted", *map(str, patients["confusion"].columns)]
        parts += [
            "## Patients",
            "",
            f"Tier accuracy: {accuracy:.3f} ({int(tiers['match'].sum())}/{len(tiers)}).",
            "",
            _markdown_table(confusion),
            "",
            _markdown_table(patients["flags"], ["flag", "gold", "predicted", "precision", "recall", "f1"]),
            "",
        ]
        if not patients["levels"].empty:
            parts += [_markdown_table(patients["levels"]), ""]
        wrong = tiers[~tiers["match"]]
        if len(wrong):
            parts += ["Patients with another tier: " + ", ".join(
                f"{row.person_id} ({row.gold} → {row.predicted})" for row in wrong.itertuples()) + ".", ""]
    return "\n".join(parts)


def evaluate_corpus(gold_folder: str | Path, outdir: str | Path, patterns: Iterable[str] = (),
                    config_path: str | Path | None = None) -> str:
    """Screen a corpus folder's notes and compare with its annotations; return the Markdown summary.

    Writes ``mentions.csv`` (P/R/F1 per concept), ``mention_errors.csv``,
    ``attributes.csv``, ``attribute_errors.csv``, ``note_flags.csv``,
    ``predicted_mentions.csv`` and, with ``gold_patients.csv``,
    ``patient_tiers.csv``, ``tier_confusion.csv``, ``patient_flags.csv``,
    ``patient_levels.csv``; then ``summary.md``.
    """
    from ..run import screen  # the run module imports the engines; keep it out of import time

    notes, gold, gold_patients = read_corpus(gold_folder)
    # every mention of every note: the extraction is evaluated, not only what screening reads
    result = screen(notes, config=str(config_path) if config_path else None,
                    patterns=[str(p) for p in patterns], all_mentions=True)
    raw_predicted = result.mentions
    predicted = normalise_mentions(raw_predicted[raw_predicted["concept"].isin(CONCEPTS)])
    gold = gold[gold["concept"].isin(CONCEPTS)].reset_index(drop=True)

    strict_pairs = match_mentions(gold, predicted, strict=True)
    overlap_pairs = match_mentions(gold, predicted, strict=False)
    mentions = mention_scores(gold, predicted, strict_pairs, overlap_pairs)
    attributes, attribute_errors = attribute_scores(gold, predicted, overlap_pairs)
    note_scores = note_flag_scores(gold_note_flags(notes, gold), result.notes)
    patients = patient_scores(gold_patients, result.patients) if gold_patients is not None else None

    outdir = make_private_dir(outdir)
    write_csv(mentions, outdir / "mentions.csv")
    write_csv(unmatched(gold, predicted, overlap_pairs), outdir / "mention_errors.csv")
    write_csv(attributes, outdir / "attributes.csv")
    write_csv(attribute_errors, outdir / "attribute_errors.csv")
    write_csv(note_scores, outdir / "note_flags.csv")
    shown = predicted[["note_id", "concept", "start", "end", "text", *FLAGS, "acuity", "aetiology", "scope",
                       "corrected", "med_status", "lab", "value"]].assign(
        levels=predicted["levels"].map(";".join))
    write_csv(shown, outdir / "predicted_mentions.csv")
    if patients is not None:
        write_csv(patients["tiers"], outdir / "patient_tiers.csv")
        write_csv(patients["confusion"].reset_index(), outdir / "tier_confusion.csv")
        write_csv(patients["flags"], outdir / "patient_flags.csv")
        write_csv(patients["levels"], outdir / "patient_levels.csv")
    counts = {"notes": len(notes), "gold_mentions": len(gold), "predicted_mentions": len(predicted),
              "patients": len(gold_patients) if gold_patients is not None else 0}
    summary = summary_markdown(corpus=Path(gold_folder).name or str(gold_folder), counts=counts,
                               mentions=mentions, attributes=attributes, notes=note_scores, patients=patients)
    write_text(summary + "\n", outdir / "summary.md")
    return summary
