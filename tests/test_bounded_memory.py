"""Screening from the batch parts in bounded memory: groups of patients, counted notes.

A run over millions of notes must not hold every note or every mention at
once. These tests shrink the limits so that the dev corpus takes the
large-cohort paths, and check that the files are the same as on the
everything-at-once path.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from pipeline import run as run_module
from pipeline.cli import main
from pipeline.report import html

from .conftest import REPO

DEV = REPO / "corpora" / "dev" / "notes.jsonl"
STAMPS = ["nlp_date", "nlp_datetime"]


def screen(out, *options):
    result = CliRunner().invoke(main, ["screen", str(DEV), "-o", str(out), "-q", "--batch-size", "30",
                                       *options], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def read(folder, name):
    frame = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
    return frame.drop(columns=[c for c in STAMPS if c in frame.columns])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("bounded") / "reference"
    screen(out)
    return out


def test_patients_screened_in_groups_equal_all_at_once(reference, tmp_path, monkeypatch):
    monkeypatch.setattr(run_module, "SCREEN_GROUP_MENTIONS", 150)  # ~14 groups on the dev corpus
    calls = []
    original = run_module.screen_patients

    def counted(mentions, notes, config, **kwargs):
        calls.append(len(mentions))
        return original(mentions, notes, config, **kwargs)

    monkeypatch.setattr(run_module, "screen_patients", counted)
    out = tmp_path / "grouped"
    screen(out)
    assert len(calls) > 5 and max(calls) < sum(calls)
    for name in ("patients.csv", "notes.csv", "mentions.csv"):
        pd.testing.assert_frame_equal(read(out, name), read(reference, name), obj=name)


def test_note_counts_come_from_every_note(reference):
    patients = read(reference, "patients.csv").set_index("person_id")
    notes = read(reference, "notes.csv")
    expected = notes.groupby("person_id")["note_id"].nunique()
    assert patients["n_notes"].astype(int).to_dict() == expected.to_dict()
    # patients whose notes were never processed still get their row and count
    assert set(patients.index) == set(notes["person_id"])
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["counts"]["notes"] == len(notes) == manifest["input"]["rows"]
    assert manifest["counts"]["status"] == notes["status"].value_counts().sort_index().to_dict()


def test_a_duplicated_note_id_counts_once_across_batches(tmp_path):
    rows = [{"note_id": "n1", "person_id": "A", "note_text": "Acute L1 compression fracture."},
            {"note_id": "n2", "person_id": "A", "note_text": "Routine review."},
            {"note_id": "n1", "person_id": "A", "note_text": "Routine review, again."}]
    path = tmp_path / "notes.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    result = CliRunner().invoke(main, ["screen", str(path), "-o", str(tmp_path / "out"), "-q",
                                       "--batch-size", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    patients = read(tmp_path / "out", "patients.csv")
    assert patients["n_notes"].tolist() == ["2"]
    assert len(read(tmp_path / "out", "notes.csv")) == 3


def test_the_report_reads_only_the_listed_patients(reference, tmp_path, monkeypatch):
    monkeypatch.setattr(html, "MAX_TABLE_PATIENTS", 10)
    seen = {}
    original = run_module.write_outputs

    def spy(outdir, result, **kwargs):
        seen["people"] = set(result.mentions["person_id"])
        return original(outdir, result, **kwargs)

    monkeypatch.setattr(run_module, "write_outputs", spy)
    out = tmp_path / "listed"
    screen(out)
    patients = read(out, "patients.csv")
    listed = set(patients["person_id"].iloc[html.table_order(patients, limit=10)])
    assert seen["people"] and seen["people"] <= listed
    assert len(listed) == 10 < len(patients)
    # the page still counts every note, and the files still hold every mention
    page = (out / "report.html").read_text()
    assert f"{len(read(out, 'notes.csv'))}" in page
    pd.testing.assert_frame_equal(read(out, "mentions.csv"), read(reference, "mentions.csv"))


@pytest.mark.parametrize("rows, in_order", [([[0, 1], [2, 5], [], [6]], True),
                                            ([[3, 4], [0, 1]], False),
                                            ([[0, 9], [5, 10]], False)])
def test_parts_order_is_read_from_the_parquet_statistics(tmp_path, rows, in_order):
    from pipeline.io.writers import write_parquet
    for index, part in enumerate(rows):
        write_parquet(pd.DataFrame({"row": pd.Series(part, dtype="int64"), "x": "a"}),
                      tmp_path / f"notes-{index:06d}.parquet")
    assert run_module._parts_in_order(tmp_path, "notes") is in_order
    assert run_module._parts_in_order_by_reading(tmp_path, "notes") is in_order
