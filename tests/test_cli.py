"""The command line end to end: formats, accounting, bad input, exit codes."""

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from pipeline.cli import main

from .conftest import DEMO

SPEC_FILES = ["patients.csv", "patients.parquet", "notes.csv", "mentions.parquet", "mentions.csv",
              "report.html", "manifest.json"]
PATIENT_COLUMNS = ["person_id", "tier", "score", "fracture", "acute_fracture", "oedema", "retropulsion",
                   "epidural_disease", "infection", "coagulopathy", "anticoagulant", "malignancy",
                   "fracture_levels", "acute_levels", "candidate_levels", "index_date", "n_notes",
                   "reasons", "evidence"]


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = run("screen", DEMO, "-o", out, "-q")
    assert result.exit_code == 0, result.output
    return out


def test_screen_writes_every_file_of_the_contract(demo_run):
    for name in SPEC_FILES:
        assert (demo_run / name).stat().st_size > 0, name
    assert not (demo_run / ".work").exists()


def test_every_note_and_patient_is_accounted_for(demo_run):
    source = pd.read_csv(DEMO, dtype=str)
    notes = pd.read_csv(demo_run / "notes.csv", dtype=str)
    patients = pd.read_csv(demo_run / "patients.csv", dtype=str)
    assert sorted(notes["note_id"]) == sorted(source["note_id"])
    assert sorted(patients["person_id"]) == sorted(source["person_id"].unique())
    assert list(patients.columns[:len(PATIENT_COLUMNS)]) == PATIENT_COLUMNS
    assert set(notes["status"]) <= {"processed", "no_trigger", "empty", "error"}
    assert set(patients["fracture"]) <= {"true", "false"}


def test_demo_tiers(demo_run):
    tiers = pd.read_csv(demo_run / "patients.csv", dtype=str).set_index("person_id")["tier"]
    assert tiers["501"] == "candidate"
    assert tiers["508"] == "contraindicated"        # retropulsed fragment at the acute level
    assert tiers["511"] == "contraindicated"        # INR 2.8
    assert tiers["505"] == "needs_imaging"          # age-indeterminate on X-ray
    assert tiers["507"] == "not_indicated"          # healed, unchanged
    assert tiers["514"] == "no_fracture"            # hip fracture, not vertebral


def test_manifest_records_versions_hashes_and_counts(demo_run):
    manifest = json.loads((demo_run / "manifest.json").read_text())
    assert {"vertebro", "spacy", "medspacy", "pandas"} <= set(manifest["versions"])
    assert manifest["rules"] and all(len(h) == 64 for h in manifest["rules"].values())
    assert len(manifest["config_hash"]) == 64
    assert manifest["counts"]["notes"] == 40
    assert sum(manifest["counts"]["status"].values()) == 40
    assert len(manifest["input"]["sources"][0]["fingerprint"]) == 64
    stages = {"load_seconds", "extract_seconds", "second_pass_seconds", "screen_seconds", "write_seconds"}
    assert stages <= set(manifest["timings"]) and all(manifest["timings"][key] >= 0 for key in stages)


def test_same_notes_in_every_format_give_identical_patients(tmp_path, demo_run):
    frame = pd.read_csv(DEMO, dtype=str, keep_default_na=False)
    frame.to_json(tmp_path / "notes.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "notes.parquet")
    expected = (demo_run / "patients.csv").read_text()
    for name in ("notes.jsonl", "notes.parquet"):
        out = tmp_path / f"out-{name}"
        assert run("screen", tmp_path / name, "-o", out, "-q").exit_code == 0
        assert (out / "patients.csv").read_text() == expected, name


def test_stdin_input(tmp_path):
    out = tmp_path / "out"
    result = run("screen", "-", "-o", out, "-q", input=DEMO.read_text())
    assert result.exit_code == 0
    assert len(pd.read_csv(out / "notes.csv")) == 40


def test_missing_column_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("note_id,person_id,body\n1,2,some text\n")
    result = run("screen", path, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert "note_text" in result.output and "body" in result.output
    assert "Traceback" not in result.output


def test_bad_rows_are_counted_not_fatal(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_bytes(
        b"note_id,person_id,note_date,note_text\n"
        b"1,p1,2025-01-02,Acute L1 compression fracture with marrow oedema.\n"
        b"2,p1,not a date,Caf\xe9 \xff\xfe L2 compression fracture.\n"
        b"3,p2,2025-01-03,\n"
        b"3,p2,2025-01-04,Duplicate id: chronic T9 wedge deformity.\n"
        b"4,p3,2025-01-05,Blood pressure check, all well.\n")
    out = tmp_path / "out"
    assert run("screen", path, "-o", out, "-q").exit_code == 0
    notes = pd.read_csv(out / "notes.csv", dtype=str, keep_default_na=False)
    assert list(notes["status"]) == ["processed", "processed", "empty", "processed", "no_trigger"]
    assert notes["note_date"][1] == ""
    stats = json.loads((out / "manifest.json").read_text())["input"]["sources"][0]["stats"]
    assert stats["replaced_bytes_notes"] == 1 and stats["bad_dates"] == 1 and stats["duplicate_ids"] == 1
    patients = pd.read_csv(out / "patients.csv", dtype=str)
    assert sorted(patients["person_id"]) == ["p1", "p2", "p3"]


def test_a_note_that_breaks_the_pipeline_is_an_error_row(tmp_path, monkeypatch):
    from pipeline.nlp import pipeline as nlp_pipeline
    original = nlp_pipeline.Extractor.mentions

    def explode(self, text, title="", date=None):
        if "EXPLODE" in text:
            raise RuntimeError("secret note text must not leak")
        return original(self, text, title, date)

    monkeypatch.setattr(nlp_pipeline.Extractor, "mentions", explode)
    path = tmp_path / "notes.csv"
    path.write_text("note_id,person_id,note_text\n1,p1,EXPLODE L1 fracture\n2,p1,Acute L1 compression fracture.\n")
    out = tmp_path / "out"
    assert run("screen", path, "-o", out, "-q").exit_code == 0
    notes = pd.read_csv(out / "notes.csv", dtype=str, keep_default_na=False)
    assert list(notes["status"]) == ["error", "processed"]
    assert notes["error"][0] == "RuntimeError"
    assert "secret" not in (out / "notes.csv").read_text() + (out / "manifest.json").read_text()


def test_extract_then_score_with_another_config(tmp_path):
    out = tmp_path / "run"
    assert run("extract", DEMO, "-o", out, "-q").exit_code == 0
    assert not (out / "patients.csv").exists()
    assert run("score", out, "-q").exit_code == 0
    tiers = pd.read_csv(out / "patients.csv", dtype=str).set_index("person_id")["tier"]
    assert tiers["511"] == "contraindicated"
    lenient = tmp_path / "lenient.toml"
    lenient.write_text("max_inr = 3.0\n")
    assert run("score", out, "--config", lenient, "-q").exit_code == 0
    tiers = pd.read_csv(out / "patients.csv", dtype=str).set_index("person_id")["tier"]
    assert tiers["511"] == "candidate"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["values"]["max_inr"] == 3.0


def test_bad_config_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("max_inrr = 2\n")
    result = run("screen", DEMO, "-o", tmp_path / "out", "--config", bad)
    assert result.exit_code == 2 and "max_inrr" in result.output


def test_explain_prints_a_table():
    result = run("explain", "Acute L1 compression fracture. No retropulsion.")
    assert result.exit_code == 0
    assert "FRACTURE" in result.output and "L1" in result.output and "negated" in result.output


def test_rules_check_passes_on_shipped_rules():
    result = run("rules", "check")
    assert result.exit_code == 0, result.output


def test_help_and_version():
    assert "Example:" in run("screen", "--help").output
    for command in ("extract", "score", "evaluate", "explain", "evaluate-context"):
        assert "Example:" in run(command, "--help").output, command
    assert "vertebro" in run("--version").output


def test_the_command_leaves_the_runs_objects_to_the_os_at_exit(monkeypatch):
    """The console script is ``entry``: ``main``, then ``gc.freeze()`` (the interpreter's last
    collections over spaCy's and pandas' objects took 0.3-0.4 s of every run); ``main`` alone,
    as tests and notebooks call it, does not freeze."""
    import sys
    import tomllib

    from pipeline import cli

    from .conftest import REPO

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts == {"vertebro": "pipeline.cli:entry"}
    frozen = []
    monkeypatch.setattr(cli.gc, "freeze", lambda: frozen.append(True))
    assert run("--version").exit_code == 0 and frozen == []
    for argv, code in ((["vertebro", "--version"], 0), (["vertebro", "screen", "no-such-file.csv"], 2)):
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exit_:
            cli.entry()
        assert exit_.value.code == code and frozen == [True]
        frozen.clear()


def test_library_screen_returns_the_frames():
    import pipeline
    result = pipeline.screen(pd.read_csv(DEMO))
    assert len(result.notes) == 40 and len(result.patients) == 16
    assert set(result.mentions["concept"]) >= {"FRACTURE", "OEDEMA"}
