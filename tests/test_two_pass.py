"""The two passes of ``screen``: deferred notes are processed only for patients with a fracture.

The claim under test: patients.csv is the same as when every note is
processed (``--all-mentions``), every note is still accounted for, and the
mentions ``screen`` does extract are exactly those of a one-pass run for the
notes it processed.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from pipeline import run as run_module
from pipeline.cli import main
from pipeline.config import Config
from pipeline.nlp.extract import FIRST_PASS_CONCEPTS, BatchProcessor, process_batch
from pipeline.run import frame_to_notes, merge_deferred
from pipeline.screening.frame import SCREENED_CONCEPTS, WINDOWED_CONCEPTS

from .conftest import REPO

DEV = REPO / "corpora" / "dev" / "notes.jsonl"
STAMPS = ["nlp_date", "nlp_datetime"]


def cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def read(folder, name):
    frame = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
    return frame.drop(columns=[c for c in STAMPS if c in frame.columns])


@pytest.fixture(scope="module")
def dev_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two-pass")
    cli("screen", DEV, "-o", folder / "two", "-q", "--batch-size", "25")
    cli("screen", DEV, "-o", folder / "one", "-q", "--all-mentions")
    return folder / "two", folder / "one"


def test_patients_are_those_of_a_run_over_every_note(dev_runs):
    two, one = dev_runs
    pd.testing.assert_frame_equal(read(two, "patients.csv"), read(one, "patients.csv"))
    manifest = json.loads((two / "manifest.json").read_text())
    assert manifest["two_pass"] and manifest["deferred_notes"] > 0
    assert 0 < manifest["second_pass_notes"] < manifest["deferred_notes"]
    assert not json.loads((one / "manifest.json").read_text())["two_pass"]


def test_every_note_is_accounted_for_and_mentions_match(dev_runs):
    two, one = dev_runs
    notes_two, notes_one = read(two, "notes.csv"), read(one, "notes.csv")
    assert notes_two["note_id"].tolist() == notes_one["note_id"].tolist()
    assert set(notes_two["status"]) <= {"processed", "no_trigger", "empty", "error"}
    changed = notes_two["status"] != notes_one["status"]
    # only processed notes are skipped, and only as no_trigger
    assert changed.any()
    assert set(notes_one.loc[changed, "status"]) == {"processed"}
    assert set(notes_two.loc[changed, "status"]) == {"no_trigger"}
    # skipped notes belong to patients without a fracture, or are dated more than the window
    # from the patient's index date and hold no mention that counts at any date
    patients = read(one, "patients.csv").set_index("person_id")
    skipped_notes = notes_two[changed]
    mentions_two, mentions_one = read(two, "mentions.csv"), read(one, "mentions.csv")
    fracture = patients.loc[skipped_notes["person_id"], "fracture"].eq("true").to_numpy()
    index = pd.to_datetime(patients.loc[skipped_notes["person_id"], "index_date"]).to_numpy()
    distance = (pd.to_datetime(skipped_notes["note_date"]).to_numpy() - index) / pd.Timedelta(days=1)
    window = Config().window_days
    assert (~fracture | (abs(distance) > window)).all()
    assert fracture.any() and (~fracture).any()  # the dev corpus has both kinds
    outside = mentions_one[mentions_one["note_id"].isin(skipped_notes.loc[fracture, "note_id"])]
    assert len(outside) and not outside["concept"].isin(sorted(SCREENED_CONCEPTS - WINDOWED_CONCEPTS)).any()
    assert json.loads((two / "manifest.json").read_text())["outside_window_notes"] == fracture.sum()
    # the processed notes have the very same mentions
    kept = mentions_one[~mentions_one["note_id"].isin(notes_two.loc[changed, "note_id"])]
    pd.testing.assert_frame_equal(mentions_two.reset_index(drop=True), kept.reset_index(drop=True))
    # and what was skipped holds no concept of the first pass
    skipped = mentions_one[mentions_one["note_id"].isin(notes_two.loc[changed, "note_id"])]
    assert len(skipped) and not skipped["concept"].isin(FIRST_PASS_CONCEPTS).any()


def test_extract_processes_every_note(tmp_path):
    rows = [
        {"note_id": "1", "person_id": "A", "note_date": "2025-03-01",
         "note_text": "MRI: acute L1 compression fracture with marrow oedema."},
        {"note_id": "2", "person_id": "A", "note_date": "2025-03-02",
         "note_text": "Febrile overnight, blood cultures positive. Sepsis."},
        {"note_id": "3", "person_id": "B", "note_date": "2025-03-02",
         "note_text": "Febrile overnight, blood cultures positive. Sepsis. On warfarin, INR 2.9."},
        {"note_id": "4", "person_id": "C", "note_date": "2025-03-02",
         "note_text": "Known multiple myeloma. On apixaban."},
    ]
    path = tmp_path / "notes.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    cli("screen", path, "-o", tmp_path / "screen", "-q")
    cli("extract", path, "-o", tmp_path / "extract", "-q")
    screened = read(tmp_path / "screen", "notes.csv").set_index("note_id")
    extracted = read(tmp_path / "extract", "notes.csv").set_index("note_id")
    assert screened["status"].to_dict() == {"1": "processed", "2": "processed", "3": "no_trigger",
                                            "4": "processed"}
    assert set(extracted["status"]) == {"processed"}
    patients = read(tmp_path / "screen", "patients.csv").set_index("person_id")
    assert patients.loc["A", "tier"] == "contraindicated" and patients.loc["A", "infection"] == "true"
    assert patients.loc["B", ["infection", "coagulopathy", "anticoagulant"]].tolist() == ["false"] * 3
    assert patients.loc["C", "malignancy"] == "true"            # a first-pass concept
    assert patients.loc["C", "anticoagulant"] == "false"        # no fracture: not assessed
    mentions = read(tmp_path / "extract", "mentions.csv")
    assert {"INFECTION", "COAGULOPATHY", "ANTICOAGULANT"} <= set(mentions.loc[mentions["note_id"] == "3", "concept"])


def test_in_memory_screen_matches_the_cli(dev_runs):
    two, _ = dev_runs
    import pipeline
    result = pipeline.screen(pd.read_json(DEV, lines=True, dtype={"note_id": str, "person_id": str}))
    cli_notes = read(two, "notes.csv")
    assert result.notes["status"].tolist() == cli_notes["status"].tolist()
    assert len(result.mentions) == len(read(two, "mentions.csv"))
    assert result.patients["tier"].tolist() == read(two, "patients.csv")["tier"].tolist()


def test_merging_a_part_twice_changes_nothing():
    notes = frame_to_notes(pd.DataFrame([
        {"note_id": "1", "person_id": "A", "note_text": "Acute L1 compression fracture."},
        {"note_id": "2", "person_id": "A", "note_text": "Sepsis, on IV antibiotics."},
        {"note_id": "3", "person_id": "B", "note_text": "Sepsis."},
    ]))
    first = BatchProcessor(defer=True)
    pass_notes, pass_mentions = process_batch(notes, first)
    assert pass_notes["status"].tolist() == ["processed", "deferred", "deferred"]
    deferred = pass_notes[pass_notes["status"] == "deferred"].drop(columns=["deferred_text"])
    pass_notes = pass_notes.drop(columns=["deferred_text"])
    full = BatchProcessor()
    new_notes, new_mentions = process_batch(notes[notes["note_id"] == "2"], full)
    once = merge_deferred(pass_notes, pass_mentions, deferred, new_notes, new_mentions)
    twice = merge_deferred(*once, deferred, new_notes, new_mentions)
    for a, b in zip(once, twice):
        pd.testing.assert_frame_equal(a, b)
    assert once[0]["status"].tolist() == ["processed", "processed", "no_trigger"]
    assert once[1]["concept"].iloc[0] == "FRACTURE" and set(once[1]["note_id"]) == {"1", "2"}


@pytest.mark.parametrize("when", ["before recording", "after recording"])
def test_a_second_pass_killed_midway_resumes_to_the_same_run(dev_runs, tmp_path, monkeypatch, when):
    two, _ = dev_runs
    original = run_module._save_checkpoint
    calls = {"n": 0}

    def crash(work, key, done, **extra):
        if "second" in extra:
            calls["n"] += 1
            if calls["n"] == 2:
                if when == "after recording":
                    original(work, key, done, **extra)
                raise RuntimeError("simulated crash")
        original(work, key, done, **extra)

    out = tmp_path / "out"
    monkeypatch.setattr(run_module, "_save_checkpoint", crash)
    with pytest.raises(RuntimeError):
        CliRunner().invoke(main, ["screen", str(DEV), "-o", str(out), "-q", "--batch-size", "25"],
                           catch_exceptions=False)
    monkeypatch.undo()
    assert list((out / ".work").glob("deferred-*.parquet"))
    cli("screen", DEV, "-o", out, "-q", "--batch-size", "25", "--resume")
    for name in ("notes.csv", "mentions.csv", "patients.csv"):
        pd.testing.assert_frame_equal(read(out, name), read(two, name), obj=name)


def test_two_workers_share_the_second_pass_and_write_what_one_writes(dev_runs, tmp_path):
    two, _ = dev_runs
    out = tmp_path / "workers"
    cli("screen", DEV, "-o", out, "-q", "--batch-size", "25", "--workers", "2")
    for name in ("notes.csv", "mentions.csv", "patients.csv"):
        pd.testing.assert_frame_equal(read(out, name), read(two, name), obj=name)
    facts = ("deferred_notes", "second_pass_notes", "outside_window_notes")
    shared, alone = (json.loads((folder / "manifest.json").read_text()) for folder in (out, two))
    assert {fact: shared[fact] for fact in facts} == {fact: alone[fact] for fact in facts}
    assert shared["second_pass_notes"] > 0


def _window_notes() -> pd.DataFrame:
    """Patient A: an acute L1 fracture on 2025-05-01 (the index date), and notes that the first
    pass defers, in and out of the 30-day window; patient B: no fracture."""
    rows = [
        ("1", "A", "2025-05-01", "MRI L-SPINE", "Acute L1 compression fracture with marrow oedema."),
        ("2", "A", "2024-01-10", "PROGRESS NOTE", "Urosepsis, on IV antibiotics."),          # out: skipped
        ("3", "A", "2025-05-20", "PROGRESS NOTE", "Fever and bacteraemia, blood cultures sent."),  # in
        ("4", "A", "2023-01-01", "PROGRESS NOTE", "Atrial fibrillation, on apixaban."),      # read: see below
        ("5", "A", "", "LAB", "INR 3.4"),                                                     # undated
        ("6", "A", "2022-06-01", "CLINIC LETTER", "Known osteoporosis on alendronate."),      # any date
        ("7", "A", "2025-09-30", "PROGRESS NOTE", "Back pain 8/10, INR 1.1."),                # out: skipped
        ("8", "B", "2025-05-01", "PROGRESS NOTE", "Urosepsis, on IV antibiotics."),          # no fracture
    ]
    return pd.DataFrame(rows, columns=["note_id", "person_id", "note_date", "note_title", "note_text"])


def test_deferred_notes_outside_the_window_are_skipped_without_changing_patients(tmp_path):
    import pipeline
    notes = _window_notes()
    two, one = pipeline.screen(notes), pipeline.screen(notes, all_mentions=True)
    pd.testing.assert_frame_equal(two.patients, one.patients)
    status = dict(zip(two.notes["note_id"], two.notes["status"]))
    assert status == {"1": "processed", "2": "no_trigger", "3": "processed", "4": "processed",
                      "5": "processed", "6": "processed", "7": "no_trigger", "8": "no_trigger"}
    assert set(one.notes["status"]) == {"processed"}
    patient = two.patients.set_index("person_id").loc["A"]
    assert patient["index_date"] == "2025-05-01"
    assert patient["infection"] and patient["coagulopathy"]
    # an anticoagulant counts at any date for a patient with only chronic levels, so its
    # notes are read whatever their date; A has an acute level and 2023 is outside A's window
    assert not patient["anticoagulant"]

    path = tmp_path / "notes.csv"
    notes.to_csv(path, index=False)
    cli("screen", path, "-o", tmp_path / "run", "-q", "--batch-size", "3")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert (manifest["deferred_notes"], manifest["second_pass_notes"], manifest["outside_window_notes"]) \
        == (7, 4, 2)
    assert manifest["second_pass_window_days"] == 30
    cli_status = read(tmp_path / "run", "notes.csv").set_index("note_id")["status"].to_dict()
    assert cli_status == status


@pytest.mark.parametrize("days", [-32, -31, -30, 28, 29, 30, 31, 32])
@pytest.mark.parametrize("clock", ["", "T23:30:00", "T00:30:00+05:00"])
def test_the_window_edge_is_that_of_screening(days, clock):
    """A deferred infection note ``days`` from the index date (at any time of that day, with a
    time zone or not): processed exactly when screening would count it (|distance| <= 30 days)."""
    import pipeline
    notes = _window_notes().iloc[[0, 1]].copy()
    notes.loc[1, "note_date"] = str((pd.Timestamp("2025-05-01") + pd.Timedelta(days=days)).date()) + clock
    two, one = pipeline.screen(notes), pipeline.screen(notes, all_mentions=True)
    pd.testing.assert_frame_equal(two.patients, one.patients)
    inside = abs(days) <= 30
    assert two.notes["status"].tolist()[1] == ("processed" if inside else "no_trigger")
    assert two.patients["infection"].tolist() == [inside]


def test_rescoring_with_a_wider_window_is_refused(tmp_path):
    from pipeline.run import RunError, rescore
    path = tmp_path / "notes.csv"
    _window_notes().to_csv(path, index=False)
    cli("screen", path, "-o", tmp_path / "run", "-q")
    narrow, wide = tmp_path / "narrow.toml", tmp_path / "wide.toml"
    narrow.write_text("window_days = 10\n")
    wide.write_text("window_days = 200\n")
    before = (tmp_path / "run" / "patients.csv").read_text()
    with pytest.raises(RunError, match="30-day window"):
        rescore(tmp_path / "run", config_path=str(wide))
    assert (tmp_path / "run" / "patients.csv").read_text() == before  # nothing rewritten
    rescored = rescore(tmp_path / "run", config_path=str(narrow))
    expected = pipeline_screen(path, narrow)
    pd.testing.assert_frame_equal(rescored.patients.astype(str), expected.astype(str))


def pipeline_screen(path, config):
    import pipeline
    return pipeline.screen(pd.read_csv(path, dtype=str), config=str(config), all_mentions=True).patients


def test_a_frame_in_memory_gets_the_dates_the_readers_give(tmp_path):
    """Dates and datetimes mixed in one column, with and without a zone: ``pipeline.screen``
    parses them as the CSV reader does (the same window, the same index date)."""
    dates = ["2025-05-01", "2025-05-02T10:00:00", "2025-05-03T01:00:00+05:00", "", "not a date",
             "2025-05-04 08:15"]
    frame = pd.DataFrame({"note_id": [str(i) for i in range(len(dates))], "person_id": "A",
                          "note_date": dates, "note_text": "Acute L1 compression fracture."})
    canonical = frame_to_notes(frame)
    assert canonical["note_date"].dt.strftime("%Y-%m-%d %H:%M").fillna("").tolist() == [
        "2025-05-01 00:00", "2025-05-02 10:00", "2025-05-03 01:00", "", "", "2025-05-04 08:15"]
    path = tmp_path / "notes.csv"
    frame.to_csv(path, index=False)
    cli("screen", path, "-o", tmp_path / "run", "-q")
    import pipeline
    in_memory = pipeline.screen(frame).notes
    written = read(tmp_path / "run", "notes.csv")
    assert pd.to_datetime(in_memory["note_date"]).dt.strftime("%Y-%m-%d %H:%M").fillna("").tolist() == \
        pd.to_datetime(written["note_date"].replace("", None), format="ISO8601").dt.strftime(
            "%Y-%m-%d %H:%M").fillna("").tolist()


def test_a_level_a_later_note_denies_does_not_centre_the_window():
    """T12 (age indeterminate, 03-20) is denied by the CT of 04-05, so the index date is the
    acute L1's 03-01 and the infection of 04-10 (40 days later) is outside the window: the
    first pass chooses the deferred notes by the same index date screening ends with."""
    import pipeline
    rows = [
        ("1", "A", "2025-03-01", "MRI LUMBAR SPINE", "Acute L1 compression fracture with marrow oedema."),
        ("2", "A", "2025-03-20", "XR THORACOLUMBAR SPINE", "T12 compression fracture, age indeterminate."),
        ("3", "A", "2025-04-05", "CT THORACOLUMBAR SPINE", "T12: normal height and alignment, no fracture."),
        ("4", "A", "2025-04-10", "PROGRESS NOTE", "Urosepsis, on IV antibiotics."),
    ]
    notes = pd.DataFrame(rows, columns=["note_id", "person_id", "note_date", "note_title", "note_text"])
    two, one = pipeline.screen(notes), pipeline.screen(notes, all_mentions=True)
    pd.testing.assert_frame_equal(two.patients, one.patients)
    patient = two.patients.set_index("person_id").loc["A"]
    assert (patient["fracture_levels"], patient["index_date"]) == ("L1", "2025-03-01")
    assert (patient["tier"], patient["infection"]) == ("candidate", False)
    assert two.notes["status"].tolist() == ["processed", "processed", "processed", "no_trigger"]
    kept = pipeline.screen(notes.iloc[[0, 1, 3]]).patients.set_index("person_id").loc["A"]
    assert (kept["index_date"], kept["tier"], kept["infection"]) == ("2025-03-20", "contraindicated", True)
