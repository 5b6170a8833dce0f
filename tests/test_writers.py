"""Writers: atomic replacement, owner-only permissions, the CSV conventions of SPEC §5."""

from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.io.writers import (
    atomic_path,
    make_private_dir,
    write_csv,
    write_json,
    write_parquet,
    write_text,
)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class Boom:
    """A value whose formatting fails, to break a writer halfway through a file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __str__(self) -> str:
        # Prove the failure is mid-file: the temporary file already has content.
        partial = [path for path in self.folder.iterdir() if path.name.endswith(".tmp")]
        assert len(partial) == 1 and partial[0].stat().st_size > 0
        raise RuntimeError("disk full, say")

    __repr__ = __str__


def test_an_exception_while_writing_leaves_no_file_and_no_temporary(tmp_path):
    final = tmp_path / "out" / "notes.csv"
    with pytest.raises(RuntimeError, match="halfway"):
        with atomic_path(final) as temporary:
            temporary.write_text("half a file")
            assert temporary.parent == final.parent and temporary.exists()
            raise RuntimeError("halfway")
    assert not final.exists()
    assert list(final.parent.iterdir()) == []


def test_a_writer_failing_mid_file_keeps_the_previous_version(tmp_path):
    final = tmp_path / "patients.csv"
    final.write_text("person_id\nold\n")
    frame = pd.DataFrame({"person_id": [str(i) for i in range(250_000)] + [Boom(tmp_path)]})
    with pytest.raises(RuntimeError, match="disk full"):
        write_csv(frame, final)
    assert final.read_text() == "person_id\nold\n"
    assert [path.name for path in tmp_path.iterdir()] == ["patients.csv"]


@pytest.mark.parametrize(
    "write, payload",
    [
        (write_csv, pd.DataFrame({"a": [1]})),
        (write_parquet, pd.DataFrame({"a": [1]})),
        (write_json, {"a": 1}),
        (write_text, "text\n"),
    ],
)
def test_files_are_owner_only_and_new_folders_private(write, payload, tmp_path):
    final = tmp_path / "new" / "deeper" / "output"
    old_umask = os.umask(0o022)
    try:
        assert write(payload, final) == final
    finally:
        os.umask(old_umask)
    assert mode_of(final) == 0o600
    assert mode_of(final.parent) == 0o700 and mode_of(final.parent.parent) == 0o700
    assert sorted(path.name for path in final.parent.iterdir()) == ["output"]


def test_an_existing_folder_keeps_its_permissions_and_mode_can_be_shared(tmp_path):
    os.chmod(tmp_path, 0o755)
    path = write_text("shared", tmp_path / "readme.txt", mode=0o644)
    assert mode_of(path) == 0o644 and mode_of(tmp_path) == 0o755
    assert make_private_dir(tmp_path) == tmp_path and mode_of(tmp_path) == 0o755


def test_rewriting_replaces_the_file(tmp_path):
    path = tmp_path / "manifest.json"
    write_json({"run": 1}, path)
    write_json({"run": 2}, path)
    assert json.loads(path.read_text()) == {"run": 2}


def test_csv_conventions(tmp_path):
    frame = pd.DataFrame(
        {
            "person_id": ["1", "2", "3"],
            "fracture": [True, False, True],
            "oedema": pd.array([True, None, False], dtype="boolean"),
            "score": [1.5, np.nan, 3.0],
            "n_notes": [1, 2, 3],
            "index_date": pd.to_datetime(["2021-03-04", None, "2021-03-05 14:30:00"], format="ISO8601"),
            "note_text": ['multi\nline, "quoted"', None, "é"],
            "mixed": [True, date(2020, 1, 2), pd.Timestamp("2020-01-02 03:04:05")],
        }
    )
    path = write_csv(frame, tmp_path / "patients.csv")
    data = path.read_bytes()
    assert b"\r" not in data
    assert data.decode("utf-8") == (
        "person_id,fracture,oedema,score,n_notes,index_date,note_text,mixed\n"
        '1,true,true,1.5,1,2021-03-04,"multi\nline, ""quoted""",true\n'
        "2,false,,,2,,,2020-01-02\n"
        "3,true,false,3.0,3,2021-03-05T14:30:00,é,2020-01-02T03:04:05\n"
    )
    assert frame["fracture"].dtype == bool  # the caller's frame is untouched


def test_csv_round_trips_through_the_reader(tmp_path):
    from pipeline.io.readers import open_source

    notes = pd.DataFrame(
        {
            "note_id": ["1", "2"],
            "person_id": ["7", "8"],
            "note_date": pd.to_datetime(["2021-03-04", "2021-03-05 10:00"], format="ISO8601"),
            "note_title": ["MRI", ""],
            "note_text": ["line one\r\nline two", "x" * 200_000],
        }
    ).astype({"note_id": object, "person_id": object, "note_date": "datetime64[ns]", "note_title": object,
              "note_text": object})  # the reader's types (docs/design.md §1), also under pandas 3
    frame = pd.concat(list(open_source(write_csv(notes, tmp_path / "notes.csv")).batches()))
    pd.testing.assert_frame_equal(frame.drop(columns="row").reset_index(drop=True), notes)


def test_parquet_round_trip(tmp_path):
    frame = pd.DataFrame({"note_id": ["1", "2"], "value": [1.5, np.nan], "flag": [True, False]})
    path = write_parquet(frame, tmp_path / "mentions.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)


@dataclass
class Stats:
    rows: int
    when: date


def test_json_converts_what_a_manifest_holds(tmp_path):
    manifest = {
        "stats": Stats(rows=3, when=date(2024, 5, 6)),
        "count": np.int64(4),
        "ratio": np.float64(0.5),
        "missing": math.nan,
        "never": pd.NaT,
        "at": pd.Timestamp("2024-05-06 07:08:09"),
        "stamp": np.datetime64("2024-05-06T07:08:09"),
        "files": {Path("a"), Path("b")},
        "text": "œdème",
    }
    path = write_json(manifest, tmp_path / "manifest.json")
    raw = path.read_text(encoding="utf-8")
    assert "œdème" in raw and raw.endswith("}\n")
    assert json.loads(raw) == {
        "stats": {"rows": 3, "when": "2024-05-06"},
        "count": 4,
        "ratio": 0.5,
        "missing": None,
        "never": None,
        "at": "2024-05-06T07:08:09",
        "stamp": "2024-05-06T07:08:09",
        "files": ["a", "b"],
        "text": "œdème",
    }
    with pytest.raises(TypeError, match="object"):
        write_json({"x": object()}, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()


def test_text_keeps_line_endings_as_given(tmp_path):
    path = write_text("a\nb\r\nc", tmp_path / "report.html")
    assert path.read_bytes() == b"a\nb\r\nc"


@given(st.lists(st.one_of(st.text(max_size=5), st.none(), st.just(float("nan")), st.booleans(),
                          st.integers(-5, 5)), max_size=12))
def test_whole_column_formatting_equals_value_by_value(values):
    from pipeline.io.writers import _csv_column, _csv_value
    column = pd.Series(values, dtype=object)
    assert _csv_column(column).tolist() == [_csv_value(value) for value in values]
    flags = pd.Series([bool(v) for v in values], dtype=bool)
    assert _csv_column(flags).tolist() == ["true" if bool(v) else "false" for v in values]
