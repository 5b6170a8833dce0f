"""Reliability, hostile input and patient-data safety of whole runs (see docs/robustness.md, SECURITY.md)."""

import json
import os
import random
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.io.readers import InputError

from .conftest import REPO

SPINE = [
    "MRI: Acute L1 compression fracture with marrow oedema.",
    "Chronic T12 wedge deformity, unchanged. No retropulsion.",
    "CT: new T8 and T9 fractures with 30% height loss.",
    "INR 2.8 this morning; warfarin held.",
    "No acute vertebral fracture. Degenerative change L4-5.",
    "Bone scan: increased uptake at L2 consistent with recent fracture.",
]
FILLER = ["Blood pressure check, all well.", "Diabetes review, HbA1c stable.", "Routine follow up."]
IGNORED = ["nlp_date", "nlp_datetime"]


def cli(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def make_notes(path: Path, n: int, seed: int = 7, marker: str = "") -> Path:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        text = rng.choice(SPINE) if i % 10 == 0 else rng.choice(FILLER)
        rows.append({"note_id": str(10_000 + i), "person_id": f"p{i % 37}",
                     "note_date": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}", "note_title": "note",
                     "note_text": f"{text} {marker}".strip()})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def subprocess_cmd(*args):
    return [sys.executable, "-m", "pipeline.cli", *map(str, args)]


def read(out: Path, name: str) -> pd.DataFrame:
    frame = pd.read_csv(out / name, dtype=str, keep_default_na=False)
    return frame.drop(columns=[c for c in IGNORED if c in frame])


# -- 1. resume after SIGKILL -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    folder = tmp_path_factory.mktemp("big")
    path = make_notes(folder / "notes.csv", 3000)
    reference = folder / "reference"
    assert cli("screen", path, "-o", reference, "--batch-size", "50", "-q").exit_code == 0
    return path, reference


def test_sigkill_then_resume_equals_an_uninterrupted_run(big, tmp_path):
    path, reference = big
    out = tmp_path / "out"
    checkpoint = out / ".work" / "checkpoint.json"
    process = subprocess.Popen(subprocess_cmd("screen", path, "-o", out, "--batch-size", 50, "-q"),
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    done = []
    while time.monotonic() < deadline and process.poll() is None:
        try:
            done = json.loads(checkpoint.read_text())["done"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            done = []
        if len(done) >= 3:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert len(done) >= 3 and not (out / "patients.csv").exists()

    resumed = subprocess.run(subprocess_cmd("screen", path, "-o", out, "--batch-size", 50, "--resume", "-q"),
                             cwd=REPO, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["resumed_notes"] >= 150
    notes = read(out, "notes.csv")
    source = pd.read_csv(path, dtype=str)
    assert notes["note_id"].is_unique and sorted(notes["note_id"]) == sorted(source["note_id"])
    for name in ("notes.csv", "mentions.csv", "patients.csv"):
        pd.testing.assert_frame_equal(read(out, name), read(reference, name), obj=name)
    assert not (out / ".work").exists()


def _interrupted(tmp_path, monkeypatch, path, *extra):
    """A run that dies after its first batch, leaving .work behind."""
    from pipeline import run as run_module
    original = run_module._save_checkpoint

    def die(work, key, done):
        original(work, key, done)
        raise RuntimeError("simulated crash")

    out = tmp_path / "out"
    monkeypatch.setattr(run_module, "_save_checkpoint", die)
    with pytest.raises(RuntimeError):
        cli("screen", path, "-o", out, "--batch-size", 20, "-q", *extra)
    monkeypatch.undo()
    assert (out / ".work" / "checkpoint.json").exists()
    return out


def test_resume_with_another_input_is_refused(tmp_path, monkeypatch):
    path = make_notes(tmp_path / "a.csv", 60)
    out = _interrupted(tmp_path, monkeypatch, path)
    other = make_notes(tmp_path / "b.csv", 60, seed=8)
    result = cli("screen", other, "-o", out, "--batch-size", 20, "--resume")
    assert_clean_failure(result, "cannot resume")


def test_resume_with_another_config_is_refused(tmp_path, monkeypatch):
    path = make_notes(tmp_path / "a.csv", 60)
    out = _interrupted(tmp_path, monkeypatch, path)
    config = tmp_path / "strict.toml"
    config.write_text("max_inr = 1.2\n")
    result = cli("screen", path, "-o", out, "--batch-size", 20, "--resume", "--config", config)
    assert result.exit_code == 2 and "cannot resume" in result.output
    # the same settings do resume
    assert cli("screen", path, "-o", out, "--batch-size", 20, "--resume", "-q").exit_code == 0
    assert len(read(out, "notes.csv")) == 60


def test_a_crash_while_writing_leaves_no_half_written_file(tmp_path, monkeypatch):
    from pipeline import run as run_module
    from pipeline.io import writers
    path = make_notes(tmp_path / "a.csv", 40)
    original = writers.write_csv

    def broken(df, target, **kwargs):
        if Path(target).name == "patients.csv":
            with writers.atomic_path(target) as tmp:
                tmp.write_text("person_id,tier\np0,cand")  # half a file ...
                raise OSError("disk full")                  # ... then the disk fills up
        return original(df, target, **kwargs)

    monkeypatch.setattr(run_module, "write_csv", broken)
    out = tmp_path / "out"
    result = cli("screen", path, "-o", out)
    assert result.exit_code == 2 and "disk full" in result.output
    assert not (out / "patients.csv").exists()
    assert not list(out.glob(".*.tmp")) and not (out / "manifest.json").exists()


# -- 2. hostile and broken input -----------------------------------------------------------------------


def assert_clean_failure(result, *words):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if not line.startswith(("INFO", "WARNING"))]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_numeric_text_column_is_read_as_text(tmp_path):
    path = tmp_path / "numeric.csv"
    path.write_text("note_id,person_id,note_text\n1,p1,12\n2,p1,3.5\n3,p2,\n")
    out = tmp_path / "out"
    assert cli("screen", path, "-o", out, "-q").exit_code == 0
    notes = read(out, "notes.csv")
    assert notes["note_id"].tolist() == ["1", "2", "3"]
    assert notes["status"].tolist() == ["no_trigger", "no_trigger", "empty"]


def test_nul_bytes_in_a_run_are_removed_and_every_note_is_kept(tmp_path):
    path = tmp_path / "nul.csv"
    path.write_bytes(b"note_id,person_id,note_text\n1,p1,\"Acute L1\x00 compression fracture.\"\n2,p2,ok\x00\n")
    out = tmp_path / "out"
    assert cli("screen", path, "-o", out, "-q").exit_code == 0
    notes = read(out, "notes.csv")
    assert notes["status"].tolist() == ["processed", "no_trigger"] and notes["fracture"][0] == "true"
    stats = json.loads((out / "manifest.json").read_text())["input"]["sources"][0]["stats"]
    assert stats["nul_bytes_notes"] == 2


def test_unbalanced_quote_is_refused_not_swallowed(tmp_path):
    path = tmp_path / "quote.csv"
    path.write_text('note_id,person_id,note_text\n1,p1,"Acute L1 fracture\n2,p2,Normal study\n3,p3,T12 wedge\n')
    out = tmp_path / "out"
    result = cli("screen", path, "-o", out)
    # the open quote would swallow notes 2 and 3 into note 1: an error, not a silent loss
    assert result.exit_code == 2
    assert "line 2" in result.output and "never closed" in result.output
    assert "Traceback" not in result.output and not (out / "notes.csv").exists()


@pytest.mark.parametrize("content, line", [
    # the quote opens in the last field, in a middle field, with CRLF line ends, with no final newline
    ('note_id,person_id,note_text\n1,p1,Normal\n2,p2,"Acute L1 fracture\n3,p3,T12 wedge\n', 3),
    ('note_id,note_text,person_id\n1,"Acute L1 fracture,p1\n2,Normal study,p2\n', 2),
    ('note_id,person_id,note_text\r\n1,p1,"Acute L1 fracture\r\n2,p2,Normal\r\n', 2),
    ('note_id,person_id,note_text\n1,p1,Normal\n\n2,p2,"Acute L1 fracture', 4),
])
def test_unbalanced_quote_anywhere_names_the_line_it_opens_on(tmp_path, content, line):
    from pipeline.io.readers import open_source
    from pipeline.run import iter_notes
    path = tmp_path / "quote.csv"
    path.write_bytes(content.encode())
    with pytest.raises(InputError, match=f"record starting at line {line} is never closed"):
        list(iter_notes([open_source(path)]))


def test_stray_quote_in_an_unquoted_field_is_not_an_open_quote(tmp_path):
    """A quote inside an unquoted field is text (as the csv module reads it), also in the last
    record and with a quoted field over several lines: not refused as a quote left open."""
    from pipeline.io.readers import open_source
    from pipeline.run import iter_notes
    path = tmp_path / "stray.csv"
    path.write_text('note_id,person_id,note_text\n1,p1,"Acute L1\nfracture"\n2,p2 5\'2",'
                    '"T12 wedge\nno retropulsion"\n')
    notes = pd.concat(list(iter_notes([open_source(path)])))
    assert notes["note_id"].tolist() == ["1", "2"]
    assert notes["person_id"].tolist() == ["p1", "p2 5'2\""]
    assert notes["note_text"].tolist() == ["Acute L1\nfracture", "T12 wedge\nno retropulsion"]


def test_multiline_quoted_last_note_is_fine(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_text('note_id,person_id,note_text\n1,p1,"Acute L1\nfracture"\n2,p2,"Normal\nstudy"\n')
    out = tmp_path / "out"
    assert cli("screen", path, "-o", out, "-q").exit_code == 0
    assert read(out, "notes.csv")["note_id"].tolist() == ["1", "2"]


def test_a_100000_character_line_through_the_extractor(extractor):
    text = ("Acute L1 compression fracture. " + "x" * 100_000 + " No retropulsion at T12.")
    mentions = extractor.mentions(text)
    assert {m["concept"] for m in mentions} >= {"FRACTURE", "RETROPULSION"}
    assert all(text[m["start"]:m["end"]] == m["lexical_variant"] for m in mentions)


def test_a_10_mb_note_finishes(tmp_path):
    path = tmp_path / "huge.csv"
    text = "Acute L1 compression fracture with marrow oedema. Blood pressure fine. " * 140_000
    pd.DataFrame([{"note_id": "1", "person_id": "p1", "note_text": text},
                  {"note_id": "2", "person_id": "p1", "note_text": "Chronic T12 wedge fracture."}]).to_csv(path, index=False)
    result = subprocess.run(subprocess_cmd("screen", path, "-o", tmp_path / "out", "-q"), cwd=REPO,
                            capture_output=True, text=True, timeout=400)
    assert result.returncode == 0
    notes = read(tmp_path / "out", "notes.csv")
    assert notes["status"].tolist() == ["processed", "processed"]
    assert int(notes["n_mentions"][0]) >= 280_000  # a fracture and its oedema per sentence pair


@pytest.mark.parametrize("content", [b"", b"note_id,person_id,note_date,note_title,note_text\n"])
def test_empty_and_header_only_files_give_an_empty_run(content, tmp_path):
    path = tmp_path / "notes.csv"
    path.write_bytes(content)
    out = tmp_path / "out"
    assert cli("screen", path, "-o", out, "-q").exit_code == 0
    assert (out / "notes.csv").exists() and (out / "patients.csv").exists()
    assert json.loads((out / "manifest.json").read_text())["counts"]["notes"] == 0


def test_random_bytes_named_csv(tmp_path):
    path = tmp_path / "random.csv"
    path.write_bytes(random.Random(0).randbytes(5000))
    assert_clean_failure(cli("screen", path, "-o", tmp_path / "out"), "random.csv", "missing column")


@pytest.mark.parametrize("kind", ["png", "truncated"])
def test_broken_parquet(kind, tmp_path):
    path = tmp_path / "notes.parquet"
    if kind == "png":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + random.Random(1).randbytes(2000))
    else:
        pd.DataFrame({"note_id": ["1", "2"], "person_id": "p", "note_text": "L1 fracture"}).to_parquet(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    result = cli("screen", path, "-o", tmp_path / "out")
    assert_clean_failure(result, "notes.parquet", "not a readable Parquet file")
    assert not (tmp_path / "out" / "patients.csv").exists()


def test_failing_sql_query(tmp_path):
    db = tmp_path / "n.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE note (note_id, person_id, note_text)")
        connection.execute("INSERT INTO note VALUES (1, 1, 'Acute L1 fracture')")
    result = cli("screen", f"sqlite:///{db}", "--query", "SELECT nonsense FROM nowhere", "-o", tmp_path / "out")
    assert_clean_failure(result, "SQL query", "no such table")


# -- 4. patient data safety ------------------------------------------------------------------------------

MARKER = "ZQXMARKER4711"
EVIDENCE_FILES = {"report.html", "mentions.csv", "mentions.parquet", "patients.csv", "patients.parquet"}


def test_verbose_logs_and_metadata_never_carry_note_text(tmp_path):
    path = make_notes(tmp_path / "notes.csv", 40, marker=MARKER)
    out = tmp_path / "out"
    result = subprocess.run(subprocess_cmd("screen", path, "-o", out, "--verbose", "--excel"), cwd=REPO,
                            capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr
    assert "DEBUG" in result.stderr or "INFO" in result.stderr
    assert MARKER not in result.stdout and MARKER not in result.stderr
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"notes.csv", "manifest.json", "patients.csv"}
    for file in files:
        if file.name not in EVIDENCE_FILES | {"report.xlsx"}:
            assert MARKER.encode() not in file.read_bytes(), file.name
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file.name
    assert stat.S_IMODE(out.stat().st_mode) == 0o700


def test_a_run_needs_no_network(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    path = make_notes(tmp_path / "notes.csv", 40)
    out = tmp_path / "out"
    result = cli("screen", path, "-o", out, "-q", "--excel")
    assert result.exit_code == 0, result.output
    assert len(read(out, "notes.csv")) == 40
