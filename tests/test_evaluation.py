"""Evaluation: the NegEx/ConText test-set format, the annotated-corpus evaluation, Open-i.

Every input is made here, in ``tmp_path``: the tests never read the shared
external data.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.evaluation.corpus import evaluate_corpus, match_mentions, normalise_mentions
from pipeline.evaluation.negex import evaluate_context, locate, read_testset

from .conftest import REPO

HEADER = ["line number", "Condition", "sentence", "negation_status", "temporality", "experiencer"]


def write_testset(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


# One row per behaviour: (line, condition, sentence, negation, temporality, experiencer)
NEGEX_ROWS = [
    ("2", "chest pain", "Patient denies any CHEST PAIN.", "Negated", "Recent", "Patient"),
    ("4", "acute distress", "General: in no ACUTE DISTRESS.", "Negated", "Recent", "Patient"),
    ("6", "pneumonia", "Rule out PNEUMONIA.", "Affirmed", "Recent", "Patient"),
    ("8", "hypertension", "History of HYPERTENSION.", "Affirmed", "Historical", "Patient"),
    ("10", "fever", "Call your doctor if you develop FEVER.", "Affirmed", "Not particular", "Patient"),
    ("12", "diabetes", "Her mother has DIABETES.", "Affirmed", "Recent", "Family member"),
    ("14", "Neck supple, no lymphadenopathy", "NECK SUPPLE, NO LYMPHADENOPATHY.", "Affirmed", "Recent", "Patient"),
    ("16", "lower back  pain", "MR SPINE LUMBAR WITHOUT CONTRAST. CLINICAL HISTORY: LOWER BACK PAIN.",
     "Affirmed", "Recent", "Patient"),
    ("18", "vomiting", "His nausea and VOMITING resolved.", "Negated", "Recent", "Patient"),
    ("20", "allergies", "ALLERGIES: He has no known ALLERGIES.", "Negated", "Recent", "Patient"),
    ("22", "fracture", "FRACTURE cannot be excluded.", "Affirmed", "Recent", "Patient"),
]


@pytest.fixture(scope="module")
def negex_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("negex")
    testset = write_testset(folder / "testset.tsv", NEGEX_ROWS)
    summary = evaluate_context(testset, folder / "out")
    predictions = pd.read_csv(folder / "out" / "predictions.csv", dtype=str, keep_default_na=False)
    metrics = json.loads((folder / "out" / "metrics.json").read_text())
    return summary, predictions.set_index("line"), metrics


@pytest.mark.parametrize("line, condition, sentence, negation, temporality, experiencer", NEGEX_ROWS,
                         ids=[row[1] for row in NEGEX_ROWS])
def test_negex_rows(negex_run, line, condition, sentence, negation, temporality, experiencer):
    _, predictions, _ = negex_run
    row = predictions.loc[line]
    expected_temporality = "Hypothetical" if temporality == "Not particular" else temporality
    expected_experiencer = "Other" if experiencer == "Family member" else experiencer
    assert (row["negation"], row["temporality"], row["experiencer"]) == (
        negation, expected_temporality, expected_experiencer), row["cues"]


def test_negex_outputs(negex_run):
    summary, predictions, metrics = negex_run
    assert list(predictions.reset_index().columns[:4]) == ["line", "negation", "temporality", "experiencer"]
    assert len(predictions) == len(NEGEX_ROWS)
    negation = metrics["negation"]
    assert (negation["precision"], negation["recall"], negation["f1"], negation["accuracy"]) == (1.0, 1.0, 1.0, 1.0)
    assert negation["classes"]["Negated"]["support"] == 4
    assert metrics["temporality"]["classes"]["Hypothetical"]["support"] == 1  # "Not particular"
    assert metrics["experiencer"]["classes"]["Other"]["tp"] == 1
    assert metrics["rows"] == len(NEGEX_ROWS) and metrics["target_not_found"] == 0
    assert "negation: precision 1.0, recall 1.0, F1 1.0" in summary


@pytest.mark.parametrize("condition, sentence, found, how", [
    ("chest pain", "No CHEST PAIN.", "CHEST PAIN", "exact"),
    ("smokes   cigarettes", "The patient SMOKES CIGARETTES.", "SMOKES CIGARETTES", "exact"),
    ("PE", "History of PE's in the past; not consistent with PE.", "PE", "exact"),
    ("allergies", "ALLERGIES: no known ALLERGIES.", "ALLERGIES", "exact"),
    ("E xternal  Hemorrhoids", "3)E XTERNAL HEMORRHOIDS", "E XTERNAL HEMORRHOIDS", "exact"),
    ("PE's", "history of PE'S.", "PE'S", "exact"),
    ("left-sided weakness", "Complains of LEFT SIDED WEAKNESS today.", "LEFT SIDED WEAKNESS", "words"),
    ("mild pulmonic regurgitation seen", "There is MILD PULMONIC REGURGITATION.", "MILD PULMONIC REGURGITATION",
     "fuzzy"),
    ("something else entirely", "CHEST: 1.", "CHEST: 1.", "sentence"),
])
def test_locate(condition, sentence, found, how):
    start, end, method = locate(condition, sentence)
    assert (sentence[start:end], method) == (found, how)


def test_locate_prefers_the_capitalised_occurrence():
    sentence = "ALLERGIES: He has no known ALLERGIES."
    start, _, _ = locate("allergies", sentence)
    assert start == sentence.rindex("ALLERGIES")


def test_read_testset_rejects_unknown_values(tmp_path):
    path = write_testset(tmp_path / "bad.tsv", [("1", "pain", "PAIN.", "Maybe", "Recent", "Patient")])
    with pytest.raises(ValueError, match="unknown annotation value 'Maybe'"):
        read_testset(path)


def test_read_testset_maps_gold_values(tmp_path):
    path = write_testset(tmp_path / "t.tsv", [("1", "pain", "PAIN.", "Possible", "Not particular", "Other")])
    (row,) = read_testset(path)
    assert (row.negation, row.temporality, row.experiencer) == ("Affirmed", "Hypothetical", "Other")


def test_evaluate_context_command(tmp_path):
    testset = write_testset(tmp_path / "t.tsv", NEGEX_ROWS[:2])
    result = CliRunner().invoke(main, ["evaluate-context", str(testset), "-o", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 0, result.output
    assert "2 conditions" in result.output
    assert (tmp_path / "out" / "predictions.csv").exists()


def test_evaluate_context_empty_file(tmp_path):
    path = tmp_path / "empty.tsv"
    path.write_text("\t".join(HEADER) + "\n")
    with pytest.raises(ValueError, match="no test rows"):
        evaluate_context(path, tmp_path / "out")


# The context rules were tuned on the NegEx set; the product's own phrasing must hold.
@pytest.mark.parametrize("text, concept, attrs", [
    ("No acute fracture.", "FRACTURE", dict(negated=True)),
    ("Non-displaced L1 fracture.", "FRACTURE", dict(negated=False)),
    ("Retropulsion is not seen.", "RETROPULSION", dict(negated=True)),
    ("L1 fracture cannot be excluded.", "FRACTURE", dict(uncertain=True, negated=False)),
    ("CT to exclude L1 fracture.", "FRACTURE", dict(uncertain=True, negated=False)),
    ("?osteoporotic compression fracture of L1.", "FRACTURE", dict(uncertain=True)),
    ("Marrow oedema at L1 has resolved.", "OEDEMA", dict(negated=True)),
    ("Fever resolved.", "INFECTION", dict(corrected="resolved", negated=False)),
    ("History of osteomyelitis, treated 2019.", "INFECTION", dict(historical=True, corrected="treated")),
    ("MRI lumbar spine without contrast: acute L1 fracture.", "FRACTURE", dict(negated=False, acuity="acute")),
    ("New compression deformity of T12, not present on the 2021 radiograph.", "FRACTURE", dict(negated=False)),
    ("Not suitable for vertebroplasty given retropulsion at L1.", "RETROPULSION", dict(negated=False)),
    ("Not suitable for vertebroplasty given retropulsion at L1.", "PRIOR_AUGMENTATION", dict(hypothetical=True)),
    ("No epidural haematoma despite anticoagulation.", "ANTICOAGULANT", dict(negated=False)),
    ("Nil anticoagulants.", "ANTICOAGULANT", dict(negated=True)),
    ("Anticoagulants: nil.", "ANTICOAGULANT", dict(negated=True)),
    ("Two-week history of severe back pain.", "PAIN", dict(historical=False)),
    ("Mild T9 compression deformity, unchanged from prior.", "FRACTURE", dict(acuity="chronic", historical=False)),
])
def test_tuned_context_rules_keep_product_phrasing(extractor, text, concept, attrs):
    mentions = [m for m in extractor.mentions(text, "MRI THORACOLUMBAR SPINE") if m["concept"] == concept]
    assert mentions, f"no {concept} in {text!r}"
    for name, expected in attrs.items():
        assert mentions[0][name] == expected, f"{name} of {concept} in {text!r}: {mentions[0][name]!r}"


# --------------------------------------------------------------------------- corpus

NOTES = [
    ("N1", "P1", "2025-03-01", "MRI LUMBAR SPINE",
     "FINDINGS:\nAcute L1 compression fracture with marrow oedema. No retropulsion.\n"),
    ("N2", "P2", "2025-03-02", "XR LUMBAR SPINE",
     "IMPRESSION:\nNo acute fracture. The patient has a sore back.\n"),
]
# (note, text of the span, concept, attributes); offsets are found in the note text
GOLD = [
    ("N1", "compression fracture", "FRACTURE", {"acuity": "acute", "levels": ["L1"]}),
    ("N1", "marrow oedema", "OEDEMA", {"levels": ["L1"]}),
    ("N1", "retropulsion", "RETROPULSION", {"negated": True, "levels": ["L1"]}),
    ("N2", "fracture", "FRACTURE", {"negated": True, "acuity": "acute"}),
    ("N2", "sore back", "PAIN", {}),  # not a rule match: a missed mention
]
GOLD_PATIENTS = [
    {"person_id": "P1", "tier": "candidate", "fracture": "true", "acute_fracture": "true", "oedema": "true",
     "retropulsion": "false", "epidural_disease": "false", "infection": "false", "coagulopathy": "false",
     "anticoagulant": "false", "malignancy": "false", "fracture_levels": "L1", "acute_levels": "L1",
     "candidate_levels": "L1"},
    {"person_id": "P2", "tier": "no_fracture", "fracture": "false", "acute_fracture": "false", "oedema": "false",
     "retropulsion": "false", "epidural_disease": "false", "infection": "false", "coagulopathy": "false",
     "anticoagulant": "false", "malignancy": "false", "fracture_levels": "", "acute_levels": "",
     "candidate_levels": ""},
]


def make_corpus(folder):
    folder.mkdir(parents=True, exist_ok=True)
    texts = {}
    with open(folder / "notes.jsonl", "w", encoding="utf-8") as handle:
        for note_id, person_id, date, title, text in NOTES:
            texts[note_id] = (person_id, text)
            handle.write(json.dumps({"note_id": note_id, "person_id": person_id, "note_date": date,
                                     "note_title": title, "note_text": text}) + "\n")
    with open(folder / "gold_mentions.jsonl", "w", encoding="utf-8") as handle:
        for note_id, span, concept, attributes in GOLD:
            person_id, text = texts[note_id]
            start = text.index(span)
            mention = {"note_id": note_id, "person_id": person_id, "concept": concept, "negated": False,
                       "uncertain": False, "historical": False, "hypothetical": False, "family": False,
                       "levels": [], "start": start, "end": start + len(span), "text": span}
            mention.update(attributes)
            handle.write(json.dumps(mention) + "\n")
    pd.DataFrame(GOLD_PATIENTS).to_csv(folder / "gold_patients.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    folder = make_corpus(tmp_path_factory.mktemp("corpus") / "gold")
    out = folder.parent / "out"
    summary = evaluate_corpus(folder, out)
    return summary, out


def test_corpus_mention_scores(corpus_run):
    _, out = corpus_run
    scores = pd.read_csv(out / "mentions.csv").set_index("concept")
    fracture = scores.loc["FRACTURE"]
    assert (fracture["gold"], fracture["overlap_tp"], fracture["overlap_fn"]) == (2, 2, 0)
    assert fracture["overlap_recall"] == 1.0
    pain = scores.loc["PAIN"]
    assert (pain["gold"], pain["overlap_tp"], pain["overlap_fn"], pain["overlap_recall"]) == (1, 0, 1, 0.0)
    assert scores.loc["ALL", "gold"] == len(GOLD)
    errors = pd.read_csv(out / "mention_errors.csv")
    assert ((errors["kind"] == "missed") & (errors["text"] == "sore back")).any()


def test_corpus_attributes(corpus_run):
    _, out = corpus_run
    attributes = pd.read_csv(out / "attributes.csv").set_index("attribute")
    assert attributes.loc["negated", "accuracy"] == 1.0
    assert attributes.loc["levels", "pairs"] >= 3
    assert set(attributes.index) >= {"negated", "uncertain", "historical", "hypothetical", "family",
                                     "acuity", "levels"}


def test_corpus_notes_and_patients(corpus_run):
    summary, out = corpus_run
    flags = pd.read_csv(out / "note_flags.csv").set_index("flag")
    assert flags.loc["fracture", "gold"] == 1 and flags.loc["fracture", "tp"] == 1
    tiers = pd.read_csv(out / "patient_tiers.csv", dtype=str, keep_default_na=False).set_index("person_id")
    assert tiers.loc["P2", "predicted"] == "no_fracture"
    assert set(pd.read_csv(out / "patient_flags.csv")["flag"]) == {
        "fracture", "acute_fracture", "oedema", "retropulsion", "epidural_disease", "infection",
        "coagulopathy", "anticoagulant", "malignancy"}
    confusion = pd.read_csv(out / "tier_confusion.csv")
    assert confusion.iloc[:, 1:].to_numpy().sum() == len(GOLD_PATIENTS)
    assert (out / "summary.md").read_text().strip() == summary.strip()
    assert "Tier accuracy" in summary and "| FRACTURE |" in summary


def test_corpus_without_patients(tmp_path):
    folder = make_corpus(tmp_path / "gold")
    (folder / "gold_patients.csv").unlink()
    summary = evaluate_corpus(folder, tmp_path / "out")
    assert "Tier accuracy" not in summary
    assert not (tmp_path / "out" / "patient_tiers.csv").exists()


def test_corpus_missing_files(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="notes.jsonl"):
        evaluate_corpus(tmp_path / "empty", tmp_path / "out")


def test_corpus_rejects_unknown_notes(tmp_path):
    folder = make_corpus(tmp_path / "gold")
    with open(folder / "gold_mentions.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"note_id": "N9", "concept": "PAIN", "start": 0, "end": 4}) + "\n")
    with pytest.raises(ValueError, match="not in notes.jsonl"):
        evaluate_corpus(folder, tmp_path / "out")


def test_evaluate_command(tmp_path):
    folder = make_corpus(tmp_path / "gold")
    result = CliRunner().invoke(main, ["evaluate", str(folder), "-o", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 0, result.output
    assert "## Mentions" in result.output


def mentions_frame(rows):
    return normalise_mentions(pd.DataFrame([{"note_id": n, "concept": c, "start": s, "end": e}
                                            for n, c, s, e in rows]))


def test_matching_is_one_to_one():
    gold = mentions_frame([("n", "FRACTURE", 0, 20), ("n", "FRACTURE", 30, 40), ("n", "OEDEMA", 0, 5)])
    predicted = mentions_frame([("n", "FRACTURE", 10, 20), ("n", "FRACTURE", 12, 35), ("n", "OEDEMA", 50, 55),
                                ("m", "FRACTURE", 0, 20)])
    assert match_mentions(gold, predicted, strict=True) == []
    pairs = sorted(match_mentions(gold, predicted, strict=False))
    assert pairs == [(0, 0), (1, 1)]  # the closest span first; other notes and concepts never match


def test_strict_matching_needs_the_same_span():
    gold = mentions_frame([("n", "PAIN", 5, 14)])
    predicted = mentions_frame([("n", "PAIN", 5, 14), ("n", "PAIN", 5, 14)])
    assert match_mentions(gold, predicted, strict=True) == [(0, 0)]


# --------------------------------------------------------------------------- Open-i

@pytest.fixture(scope="module")
def openi():
    spec = importlib.util.spec_from_file_location("openi_eval", REPO / "evaluation" / "openi.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.mark.parametrize("mesh, codes", [
    ("Deformity/thoracic vertebrae/mild;Cardiomegaly", ["Deformity/thoracic vertebrae/mild"]),
    ("Fractures, Bone/lumbar vertebrae", ["Fractures, Bone/lumbar vertebrae"]),
    ("Fractures, Bone/ribs/left;Deformity/spine", []),
    ("Kyphosis/thoracic vertebrae;Scoliosis/lumbar vertebrae", []),
    ("normal", []),
])
def test_openi_gold_codes(openi, mesh, codes):
    assert openi.vertebral_codes(mesh) == codes


def test_openi_report_text(openi):
    row = pd.Series({"indication": "Chest pain", "comparison": "", "findings": "Clear lungs.",
                     "impression": "Normal."})
    assert openi.report_text(row) == "INDICATION: Chest pain\n\nFINDINGS: Clear lungs.\n\nIMPRESSION: Normal."


def test_openi_missing_input_exits_0(openi, tmp_path, capsys):
    assert openi.main(["--input", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "r.md")]) == 0
    assert "not found" in capsys.readouterr().out
    assert not (tmp_path / "r.md").exists()


def test_openi_end_to_end(openi, tmp_path, capsys):
    reports = pd.DataFrame([
        {"uid": "1", "MeSH": "Deformity/thoracic vertebrae/mild", "Problems": "", "image": "",
         "indication": "Chest pain.", "comparison": "None.",
         "findings": "Mild XXXX deformity of a midthoracic vertebral body. Lungs clear.",
         "impression": "No acute disease."},
        {"uid": "2", "MeSH": "Fractures, Bone/ribs/left", "Problems": "", "image": "",
         "indication": "Fall.", "comparison": "", "findings": "Healing fracture of the left 7th rib.",
         "impression": "No acute cardiopulmonary disease."},
        {"uid": "3", "MeSH": "normal", "Problems": "", "image": "", "indication": "Cough.",
         "comparison": "", "findings": "No fracture. Degenerative changes of the thoracic spine.",
         "impression": "Normal chest."},
    ])
    source = tmp_path / "reports.csv"
    reports.to_csv(source, index=False)
    output = tmp_path / "openi.md"
    assert openi.main(["--input", str(source), "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "precision 1.000  recall 1.000  F1 1.000" in printed
    report = output.read_text()
    assert "| 1.000 | 1.000 | 1.000 | 1 | 0 | 0 | 1 |" in report
    for text in reports[["indication", "findings", "impression"]].to_numpy().ravel():
        assert text not in report  # uids and codes only, never report text
