"""The Dask engine gives the local engine's results, survives a killed worker, fails fast.

Runs on a LocalCluster of 2 worker processes (one thread each). The tests
that need ``dask.distributed`` are skipped only when it is not installed
(``make test`` installs the dev extra, which includes it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from pandas.testing import assert_frame_equal

from pipeline.cli import main
from pipeline.io.readers import empty_notes_frame, open_source
from pipeline.nlp.extract import BatchProcessor, process_batch

from .conftest import REPO

DEV = REPO / "corpora" / "dev" / "notes.jsonl"
CLUSTER_DOC = REPO / "docs" / "cluster.md"
HAS_DASK = importlib.util.find_spec("distributed") is not None
needs_dask = pytest.mark.skipif(not HAS_DASK, reason="dask.distributed is not installed (pip install 'vertebro[dask]')")
pytestmark = pytest.mark.dask


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def screen(source, out, *options):
    result = run("screen", source, "-o", out, "-q", *options)
    assert result.exit_code == 0, result.output
    return out


def outputs(out: Path) -> dict[str, pd.DataFrame]:
    """notes.csv, mentions (Parquet and CSV) and patients.csv, sorted, without the run stamp."""
    def text(name):
        return pd.read_csv(out / name, dtype=str, keep_default_na=False)

    frames = {
        "notes": text("notes.csv"),
        "mentions": pd.read_parquet(out / "mentions.parquet"),
        "mentions.csv": text("mentions.csv"),
        "patients": text("patients.csv"),
    }
    for name in ("mentions", "mentions.csv"):
        frames[name] = frames[name].drop(columns=["nlp_date", "nlp_datetime"])
    return {name: frame.sort_values(list(frame.columns), kind="stable").reset_index(drop=True)
            for name, frame in frames.items()}


def assert_same_outputs(got: Path, expected: Path) -> None:
    got, expected = outputs(got), outputs(expected)
    for name in expected:
        assert_frame_equal(got[name], expected[name], check_exact=True, obj=name)


# -- a generated export of 20,000 short notes ---------------------------------

LEVELS = ["T6", "T7", "T8", "T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"]
TITLES = ["MRI LUMBAR SPINE", "CT THORACIC SPINE", "XR LUMBAR SPINE", "Progress note", "ED note",
          "Discharge summary", ""]
FINDINGS = [
    "Acute compression fracture of {l} with marrow oedema on STIR.",
    "No acute fracture. Chronic wedge deformity of {l}, unchanged.",
    "Healed fracture of {l}.",
    "Possible fracture of {l}; MRI recommended.",
    "{l} burst fracture with 4 mm retropulsion into the canal.",
    "No retropulsion. No epidural collection.",
    "Subacute osteoporotic fracture of {l} with oedema.",
    "History of {l} kyphoplasty.",
    "INR {inr}. Platelets {plt}.",
    "On apixaban, held for procedure.",
    "Warfarin continued.",
    "Known metastatic breast cancer. Lytic lesion at {l}.",
    "Discitis osteomyelitis at {l}-{l2} cannot be excluded.",
    "Severe back pain since a fall. Osteoporosis on alendronate.",
    "Mother had a vertebral fracture.",
    "If pain persists, consider vertebroplasty.",
]
PLAIN = [
    "Patient seen in clinic today. Blood pressure 128/76.",
    "Chest clear. Heart sounds normal. Abdomen soft.",
    "Reviewed medications. Continue metformin and lisinopril.",
    "Follow up in six weeks with the general practitioner.",
    "Mild headache, resolved with paracetamol.",
    "Eating and drinking well. Mobilising with a frame.",
    "Wound reviewed, clean and dry.",
]


def generated_notes(count: int = 20_000, people: int = 4_000, seed: int = 7) -> pd.DataFrame:
    """Short notes, about half with a trigger term, 1 % empty, ~5 notes per patient."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        parts = []
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.35:
                k = rng.randrange(len(LEVELS) - 1)
                parts.append(rng.choice(FINDINGS).format(l=LEVELS[k], l2=LEVELS[k + 1],
                                                         inr=rng.choice(["1.1", "1.4", "2.6"]),
                                                         plt=rng.choice(["35", "180"])))
            else:
                parts.append(rng.choice(PLAIN))
        rows.append({"note_id": f"G{i:06d}", "person_id": f"P{rng.randrange(people):05d}",
                     "note_date": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                     "note_title": rng.choice(TITLES),
                     "note_text": " ".join(parts) if rng.random() > 0.01 else ""})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("export") / "export.parquet"
    generated_notes().to_parquet(path, index=False, row_group_size=5_000)
    return path


@pytest.fixture(scope="module")
def dev_local(tmp_path_factory) -> Path:
    return screen(DEV, tmp_path_factory.mktemp("dev-local"))


@pytest.fixture(scope="module")
def generated_local(generated, tmp_path_factory) -> Path:
    return screen(generated, tmp_path_factory.mktemp("generated-local"), "--workers", "2")


@pytest.fixture(scope="module")
def cluster():
    """An external LocalCluster of 2 worker processes (for --scheduler and the kill test)."""
    from distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        yield cluster


# -- identical results ------------------------------------------------------


@needs_dask
def test_generated_export_identical_on_a_local_cluster(generated, generated_local, tmp_path):
    out = screen(generated, tmp_path / "dask", "--engine", "dask", "--workers", "2", "--partitions", "7")
    assert_same_outputs(out, generated_local)
    notes = pd.read_csv(out / "notes.csv", dtype=str)
    assert len(notes) == 20_000 and set(notes["status"]) == {"processed", "no_trigger", "empty"}
    assert not (out / ".work").exists()
    manifest = pd.read_json(out / "manifest.json", typ="series")
    assert manifest["engine"] == "dask"
    assert manifest["dask"] == {"scheduler": "LocalCluster", "workers": 2, "threads": 2, "partitions": 7,
                              "read": "partitions"}


@needs_dask
def test_dev_corpus_identical_through_a_scheduler(cluster, dev_local, tmp_path):
    out = screen(DEV, tmp_path / "dask", "--engine", "dask", "--scheduler", cluster.scheduler_address)
    assert_same_outputs(out, dev_local)


@needs_dask
@pytest.mark.parametrize("partitions", [1, 3, 50])
def test_screening_by_patient_groups_is_the_whole_screening(cluster, dev_local, partitions):
    from pipeline.config import load_config
    from pipeline.engines.dask import DaskSession
    from pipeline.screening import screen_patients
    mentions = pd.read_parquet(dev_local / "mentions.parquet")
    notes = pd.read_csv(dev_local / "notes.csv", dtype={"note_id": str, "person_id": str}, keep_default_na=False)
    notes["note_date"] = pd.to_datetime(notes["note_date"], errors="coerce")
    config = load_config(None)
    with DaskSession(scheduler=cluster.scheduler_address, partitions=partitions) as session:
        grouped = session.screen_patients(mentions, notes, config)
    assert_frame_equal(grouped, screen_patients(mentions, notes, config), check_exact=True)


# -- failures -----------------------------------------------------------------


def small_blocks(monkeypatch):
    """JSON Lines partitions of 8 kB: the dev corpus (200 kB) becomes 25 partitions."""
    from pipeline.io import partitions
    monkeypatch.setattr(partitions, "MIN_BLOCK_BYTES", 4_000)
    monkeypatch.setattr(partitions, "JSONL_BLOCK_BYTES", 8_000)


@needs_dask
@pytest.mark.parametrize("read_on", ["client", "workers"])
def test_a_killed_worker_is_replaced_and_the_result_is_identical(cluster, dev_local, tmp_path, read_on,
                                                                  monkeypatch):
    from distributed import Client

    from pipeline.run import run_job
    small_blocks(monkeypatch)
    with Client(cluster, set_as_default=False) as client:
        pids = client.run(os.getpid)
        killed = []

        def kill_a_busy_worker(_count):
            busy = [address for address, keys in client.processing().items() if keys]
            if not killed and busy:  # a worker with batches assigned: they must be re-run elsewhere
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(pids[busy[0]])

        out = tmp_path / "dask"
        run_job([open_source(DEV, batch_size=5)], out, engine="dask", scheduler=cluster.scheduler_address,
                progress=kill_a_busy_worker, read_on=read_on)
        assert killed, "no worker was killed"
        client.wait_for_workers(2, timeout=60)  # the nanny restarted it
        assert killed[0] not in client.run(os.getpid).values()
    assert_same_outputs(out, dev_local)


@needs_dask
@pytest.mark.parametrize("read_on", ["client", "workers"])
def test_an_interrupted_dask_run_resumes_to_the_same_result(cluster, dev_local, tmp_path, read_on, monkeypatch):
    from pipeline.run import run_job
    small_blocks(monkeypatch)
    out = tmp_path / "dask"
    written = []

    def interrupt_after_some_batches(count):
        written.append(count)
        if len(written) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_job([open_source(DEV, batch_size=20)], out, engine="dask", scheduler=cluster.scheduler_address,
                progress=interrupt_after_some_batches, read_on=read_on)
    parts = sorted((out / ".work").glob("notes-*.parquet"))
    assert len(parts) == 3
    done = sum(len(pd.read_parquet(part)) for part in parts)
    result = run_job([open_source(DEV, batch_size=20)], out, engine="dask", scheduler=cluster.scheduler_address,
                     resume=True, read_on=read_on)
    assert result.manifest["resumed_notes"] == done == (60 if read_on == "client" else done)
    assert result.manifest["dask"]["read"] == ("partitions" if read_on == "workers" else "client")
    assert result.manifest["input"]["sources"][0]["stats"]["rows"] == 229
    assert_same_outputs(out, dev_local)


@needs_dask
def test_an_unreachable_scheduler_fails_fast_with_exit_code_2(tmp_path):
    started = time.monotonic()
    result = run("screen", DEV, "-o", tmp_path / "out", "--engine", "dask", "--scheduler", "tcp://127.0.0.1:1")
    assert time.monotonic() - started < 15
    assert result.exit_code == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in result.output
    assert "Traceback" not in result.output


@needs_dask
def test_a_malformed_scheduler_address_is_refused(tmp_path):
    result = run("screen", DEV, "-o", tmp_path / "out", "--engine", "dask", "--scheduler", "nonsense")
    assert result.exit_code == 2
    assert "not a Dask scheduler address" in result.output


def test_without_dask_the_engine_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    result = run("screen", DEV, "-o", tmp_path / "out", "--engine", "dask")
    assert result.exit_code == 2
    assert "pip install 'vertebro[dask]'" in result.output
    assert "Traceback" not in result.output


# -- the worker side, without a cluster ------------------------------------------


def _rule_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "site_rules"
    (folder / "target").mkdir(parents=True)
    (folder / "target" / "extra.json").write_text(
        '{"target_rules": [{"literal": "Kummell disease", "category": "FRACTURE",'
        ' "attributes": {"anatomy": "vertebral"}}]}')
    return folder


def test_extra_rule_folders_travel_with_the_tasks(tmp_path):
    from pipeline.engines.dask import process_with_spec, processor_spec
    folder = _rule_folder(tmp_path)
    client_side = BatchProcessor(patterns=[str(folder)])
    spec = processor_spec(client_side)
    moved = folder.rename(tmp_path / "gone")  # a worker elsewhere cannot see the client's folder
    batch = open_source(DEV, batch_size=40).batches().__next__()
    batch.loc[0, "note_text"] = "Kummell disease at T12."
    notes, mentions = process_with_spec(spec, batch)
    expected_notes, expected_mentions = process_batch(batch, client_side)
    assert_frame_equal(notes, expected_notes)
    assert_frame_equal(mentions, expected_mentions)
    assert "Kummell disease" in set(mentions["lexical_variant"])
    assert moved.is_dir()


def test_a_worker_with_other_rules_refuses_to_run(tmp_path):
    from dataclasses import replace

    from pipeline.engines.dask import WorkerMismatch, process_with_spec, processor_spec
    spec = processor_spec(BatchProcessor())
    batch = open_source(DEV, batch_size=2).batches().__next__()
    other_rules = replace(spec, rule_hashes=spec.rule_hashes[1:], key="other-rules")
    with pytest.raises(WorkerMismatch, match="rule files"):
        process_with_spec(other_rules, batch)
    other_version = replace(spec, version="0.0.0", key="other-version")
    with pytest.raises(WorkerMismatch, match="vertebro"):
        process_with_spec(other_version, batch)


# -- the Spark recipe of docs/cluster.md -----------------------------------------


def spark_recipe() -> str:
    """The Python block of docs/cluster.md that starts with ``# vertebro_spark.py``."""
    blocks = re.findall(r"```python\n(.*?)```", CLUSTER_DOC.read_text(), flags=re.DOTALL)
    return next(block for block in blocks if block.startswith("# vertebro_spark.py"))


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("pyspark") is None, reason="PySpark is not installed")
def test_the_spark_recipe_gives_the_same_results(tmp_path, monkeypatch):
    from pyspark.sql import SparkSession

    from pipeline.config import load_config
    from pipeline.run import RunResult, write_outputs
    from pipeline.screening import screen_patients
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)  # Spark's Python workers: this environment
    recipe = {"__name__": "vertebro_spark"}
    exec(compile(spark_recipe(), str(CLUSTER_DOC), "exec"), recipe)
    canonical = pd.concat(list(open_source(DEV, batch_size=1000).batches()), ignore_index=True)
    spark = (SparkSession.builder.master("local[2]").appName("vertebro-test")
             .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC")
             .config("spark.sql.shuffle.partitions", "4").getOrCreate())
    try:
        notes, mentions, patients = recipe["screen_on_spark"](
            spark.createDataFrame(canonical).repartition(3), parts=str(tmp_path / "extract"), groups=5)
    finally:
        spark.stop()
    local_notes, local_mentions = process_batch(canonical, BatchProcessor())
    local_patients = screen_patients(local_mentions, local_notes, load_config(None))
    stamp = ["nlp_date", "nlp_datetime"]
    assert_frame_equal(notes, local_notes, check_dtype=False)
    assert_frame_equal(mentions.drop(columns=stamp), local_mentions.drop(columns=stamp), check_dtype=False)
    assert_frame_equal(patients, local_patients, check_dtype=False)
    write_outputs(tmp_path / "run", RunResult(notes=notes, mentions=mentions, patients=patients,
                                              manifest={"engine": "spark"}))
    assert (tmp_path / "run" / "patients.csv").stat().st_size


# -- the workers read the input as partitions -------------------------------------


def messy_notes(count: int = 120) -> pd.DataFrame:
    """Dev-corpus texts with what the readers count: duplicate ids (across partitions), NUL bytes,
    empty texts, bad and missing dates, numeric-looking ids."""
    texts = pd.read_json(DEV, lines=True, dtype=False)["note_text"].tolist()
    rows = []
    for i in range(count):
        rows.append({"note_id": str(i % 97), "person_id": f"{i % 23}.0",
                     "note_date": ["2024-01-05", "2024-06-30T23:10:00+02:00", "not a date", "", "2025-02-01"][i % 5],
                     "note_title": "MRI" if i % 3 else "",
                     "note_text": "" if i % 17 == 0 else texts[i % len(texts)] + ("\x00" if i % 11 == 0 else "")})
    return pd.DataFrame(rows)


def messy_jsonl(path: Path) -> Path:
    lines = [json.dumps(record) for record in messy_notes().to_dict("records")]
    lines.insert(7, "not json")
    lines.insert(90, "[1, 2]")
    data = ("\n".join(lines) + "\n").encode()
    data = data.replace(b"MRI", b"MR\xff", 3)  # undecodable bytes in three titles
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path | str]:
    folder = tmp_path_factory.mktemp("partitioned")
    frame = messy_notes()
    frame.to_parquet(folder / "notes.parquet", index=False, row_group_size=13)
    sql = frame.assign(note_id=[int(i) for i in frame["note_id"]])
    with sqlite3.connect(folder / "notes.db") as connection:
        sql.to_sql("note", connection, index=False)
    frame.to_csv(folder / "notes.csv", index=False)
    return {"parquet": folder / "notes.parquet", "jsonl": messy_jsonl(folder / "notes.jsonl"),
            "sql": f"sqlite:///{folder / 'notes.db'}", "csv": folder / "notes.csv"}


def canonical(source) -> pd.DataFrame:
    return pd.concat(list(source.batches()), ignore_index=True)


WINDOWS = [(), ("--since", "2024-02-01", "--until", "2024-12-31")]


@pytest.mark.parametrize("kind", ["parquet", "jsonl", "sql"])
@pytest.mark.parametrize("window", WINDOWS, ids=["all", "since-until"])
def test_partitions_give_the_local_readers_rows_and_statistics(inputs, kind, window, monkeypatch):
    """Without a cluster: every partition read, rows shifted by the earlier partitions' notes."""
    from pipeline.io import partitions
    from pipeline.io.partitions import PlanStats, plan_partitions, read_partition
    monkeypatch.setattr(partitions, "MIN_BLOCK_BYTES", 4_000)
    options = dict(zip(("since", "until"), window[1::2]))
    expected_source = open_source(inputs[kind], batch_size=10, **options)
    expected = canonical(expected_source)
    source = open_source(inputs[kind], batch_size=10, **options)
    plan, reason = plan_partitions([source], target=6)
    assert plan is not None and len(plan) >= 4, reason
    frames, totals, row = [], PlanStats([source]), 0
    for partition in plan:
        read = read_partition(partition)
        frame = pd.concat([empty_notes_frame(), *read], ignore_index=True).astype(expected.dtypes.to_dict())
        frames.append(frame.assign(row=frame["row"] + row))
        row += read.stats.rows
        totals.add(partition, read.stats, read.lines, frame["note_id"].tolist())
    totals.finish()
    assert_frame_equal(pd.concat(frames, ignore_index=True), expected, check_exact=True)
    got, wanted = source.stats.as_dict(), expected_source.stats.as_dict()
    got.pop("batches"), wanted.pop("batches")
    assert got == wanted
    assert wanted["duplicate_ids"] and wanted["bad_dates"] and wanted["empty_text"] and wanted["nul_bytes_notes"]
    if kind == "jsonl":
        assert wanted["malformed_line_numbers"] == [8, 91] and wanted["replaced_bytes_notes"]


@needs_dask
@pytest.mark.parametrize("kind,window", [("parquet", WINDOWS[1]), ("jsonl", WINDOWS[0]), ("sql", WINDOWS[1])])
def test_inputs_read_by_the_workers_give_the_local_outputs(cluster, inputs, kind, window, tmp_path, monkeypatch):
    from pipeline.io import partitions
    monkeypatch.setattr(partitions, "MIN_BLOCK_BYTES", 4_000)
    local = screen(inputs[kind], tmp_path / "local", "--batch-size", "10", *window)
    out = screen(inputs[kind], tmp_path / "dask", "--batch-size", "10", "--engine", "dask",
                 "--scheduler", cluster.scheduler_address, *window)
    assert_same_outputs(out, local)
    for name in ("notes.csv", "mentions.csv", "patients.csv"):  # the same order too
        got, wanted = (pd.read_csv(folder / name, dtype=str, keep_default_na=False) for folder in (out, local))
        stamp = [column for column in ("nlp_date", "nlp_datetime") if column in got]
        assert_frame_equal(got.drop(columns=stamp), wanted.drop(columns=stamp), obj=name)
    manifest, local_manifest = (json.loads((folder / "manifest.json").read_text()) for folder in (out, local))
    assert manifest["dask"]["read"] == "partitions"
    stats, local_stats = manifest["input"]["sources"][0]["stats"], local_manifest["input"]["sources"][0]["stats"]
    stats.pop("batches"), local_stats.pop("batches")
    assert stats == local_stats
    assert not (out / ".work").exists()


@needs_dask
def test_csv_and_queries_are_read_by_the_client(cluster, inputs, tmp_path):
    for name, source, options in (("csv", inputs["csv"], ()),
                                  ("query", inputs["sql"], ("--query", "SELECT * FROM note"))):
        out = screen(source, tmp_path / name, "--engine", "dask", "--scheduler", cluster.scheduler_address,
                     "--batch-size", "40", *options)
        assert json.loads((out / "manifest.json").read_text())["dask"]["read"] == "client"
