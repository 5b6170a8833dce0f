"""Build an annotated corpus from its marked-up source files.

Source files (``SRC/**/*.txt``) hold one patient each::

    #! person_id=P001 tier=candidate fracture=true acute_fracture=true ...
    === note_id=P001-1 date=2025-03-02 title=MRI LUMBAR SPINE
    There is an acute [[compression fracture|FRACTURE acuity=acute levels=L1]] of L1.

A mention is ``[[text|CONCEPT key=value flag ...]]``; flags are ``neg``,
``unc``, ``hist``, ``hyp``, ``fam``; ``levels`` is comma-separated. Values
with spaces are not allowed (use ``_`` in titles; it becomes a space).

Outputs, next to ``SRC``: ``notes.jsonl`` (plain notes, OMOP NOTE columns),
``gold_mentions.jsonl`` (one line per mention, half-open offsets) and
``gold_patients.csv`` (one row per patient). Run::

    python corpora/build_corpus.py corpora/dev
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

MENTION = re.compile(r"\[\[(?P<text>[^\[\]|\n]+)\|(?P<spec>[^\[\]\n]+)\]\]")
FLAGS = {"neg": "negated", "unc": "uncertain", "hist": "historical",
         "hyp": "hypothetical", "fam": "family"}
CONCEPTS = {"FRACTURE", "OEDEMA", "RETROPULSION", "EPIDURAL_DISEASE", "INFECTION",
            "COAGULOPATHY", "ANTICOAGULANT", "MALIGNANCY", "PAIN", "OSTEOPOROSIS",
            "PRIOR_AUGMENTATION"}
ATTRIBUTE_VALUES = {
    "acuity": {"acute", "subacute", "chronic", "healed", "indeterminate"},
    "aet": {"osteoporotic", "malignant", "traumatic"},
    "scope": {"local", "systemic"},
    "lab": {"INR", "PT", "platelets"},
    "corrected": {"reversed", "held", "resolved", "treated"},
    "med_status": {"held", "continued"},
}
RENAMED = {"aet": "aetiology"}
PATIENT_COLUMNS = ["person_id", "tier", "fracture", "acute_fracture", "oedema",
                   "retropulsion", "epidural_disease", "infection", "coagulopathy",
                   "anticoagulant", "malignancy", "fracture_levels", "acute_levels",
                   "candidate_levels"]


def parse_fields(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


def parse_mention(spec: str, where: str) -> dict:
    concept, *parts = spec.split()
    if concept not in CONCEPTS:
        raise ValueError(f"{where}: unknown concept {concept!r}")
    mention = {"concept": concept, **{flag: False for flag in FLAGS.values()}}
    for part in parts:
        if part in FLAGS:
            mention[FLAGS[part]] = True
        elif "=" in part:
            key, value = part.split("=", 1)
            if key == "levels":
                mention["levels"] = [level for level in value.split(",") if level]
            elif key == "value":
                try:
                    mention["value"] = float(value)
                except ValueError:
                    raise ValueError(f"{where}: value={value!r} is not a number") from None
            elif key in ATTRIBUTE_VALUES:
                if value not in ATTRIBUTE_VALUES[key]:
                    raise ValueError(f"{where}: {key}={value!r} not one of {sorted(ATTRIBUTE_VALUES[key])}")
                mention[RENAMED.get(key, key)] = value
            else:
                raise ValueError(f"{where}: unknown attribute {key!r}")
        else:
            raise ValueError(f"{where}: cannot read {part!r}")
    mention.setdefault("levels", [])
    return mention


def strip_markup(raw: str, where: str) -> tuple[str, list[dict]]:
    text, mentions, cursor = [], [], 0
    length = 0
    for match in MENTION.finditer(raw):
        before = raw[cursor:match.start()]
        text.append(before)
        length += len(before)
        span_text = match.group("text")
        mention = parse_mention(match.group("spec"), where)
        mention.update(start=length, end=length + len(span_text), text=span_text)
        mentions.append(mention)
        text.append(span_text)
        length += len(span_text)
        cursor = match.end()
    text.append(raw[cursor:])
    plain = "".join(text)
    if "[[" in plain or "]]" in plain:
        raise ValueError(f"{where}: unbalanced [[ ]] markup")
    return plain, mentions


def read_patient(path: Path):
    patient, notes, header, body = None, [], None, []

    def close():
        if header is not None:
            notes.append((header, "\n".join(body).strip("\n") + "\n"))

    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#!"):
            patient = parse_fields(line[2:])
        elif line.startswith("=== "):
            close()
            header, body = parse_fields(line[4:]), []
        elif header is not None:
            body.append(line)
    close()
    if patient is None:
        raise ValueError(f"{path}: no '#!' patient line")
    return patient, notes


def build(folder: Path) -> None:
    notes_out, mentions_out, patients_out = [], [], []
    seen_notes: set[str] = set()
    for path in sorted((folder / "src").rglob("*.txt")):
        patient, notes = read_patient(path)
        unknown = set(patient) - set(PATIENT_COLUMNS)
        if unknown:
            raise ValueError(f"{path.name}: unknown patient keys {sorted(unknown)}")
        person_id = patient["person_id"]
        patients_out.append({column: patient.get(column, "") for column in PATIENT_COLUMNS})
        for header, raw in notes:
            note_id = header["note_id"]
            if note_id in seen_notes:
                raise ValueError(f"{path.name}: duplicate note_id {note_id}")
            seen_notes.add(note_id)
            text, mentions = strip_markup(raw, f"{path.name}:{note_id}")
            notes_out.append({
                "note_id": note_id, "person_id": person_id,
                "note_date": header.get("date", ""),
                "note_title": header.get("title", "").replace("_", " "),
                "note_text": text,
            })
            for mention in mentions:
                mentions_out.append({"note_id": note_id, "person_id": person_id, **mention})
    with open(folder / "notes.jsonl", "w", encoding="utf-8") as handle:
        for note in notes_out:
            handle.write(json.dumps(note, ensure_ascii=False) + "\n")
    with open(folder / "gold_mentions.jsonl", "w", encoding="utf-8") as handle:
        for mention in mentions_out:
            handle.write(json.dumps(mention, ensure_ascii=False) + "\n")
    with open(folder / "gold_patients.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=PATIENT_COLUMNS)
        writer.writeheader()
        writer.writerows(patients_out)
    print(f"{folder}: {len(patients_out)} patients, {len(notes_out)} notes, "
          f"{len(mentions_out)} mentions")


if __name__ == "__main__":
    for argument in sys.argv[1:] or ["corpora/dev"]:
        build(Path(argument))
