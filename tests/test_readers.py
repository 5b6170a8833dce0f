"""Readers: every input format gives the same canonical notes frame (docs/design.md §1)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
import os
import sys
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from pipeline.io.readers import (
    NOTE_COLUMNS,
    ColumnMap,
    InputError,
    empty_notes_frame,
    iter_notes,
    open_source,
)

# Multi-line text, CRLF, quotes, commas, tabs, non-ASCII, an empty note,
# a missing date, a datetime, the same patient twice.
NOTES = [
    {
        "note_id": 101,
        "person_id": 1,
        "note_date": "2021-03-04",
        "note_title": "MRI LUMBAR SPINE",
        "note_text": 'FINDINGS:\nAcute L1 compression fracture with "marrow oedema", 30% loss.\r\n'
        "IMPRESSION: acute L1 fracture.\n",
    },
    {
        "note_id": 102,
        "person_id": 1,
        "note_date": "2021-03-05 14:30:00",
        "note_title": "Progress note",
        "note_text": "Plan: vertebroplasty;\ttab, comma and 'quotes'.",
    },
    {
        "note_id": 103,
        "person_id": 2,
        "note_date": None,
        "note_title": "",
        "note_text": "Ünïcödé — chronic T12 wedge fracture, no oedema.",
    },
    {
        "note_id": 104,
        "person_id": 3,
        "note_date": "2020-12-31",
        "note_title": "CT",
        "note_text": "",
    },
]
HEADER = ["note_id", "person_id", "note_date", "note_title", "note_text"]


def expected_frame(notes=NOTES, first_row=0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row": pd.Series(range(first_row, first_row + len(notes)), dtype="int64"),
            "note_id": pd.Series([str(n["note_id"]) for n in notes], dtype=object),
            "person_id": pd.Series([str(n["person_id"]) for n in notes], dtype=object),
            "note_date": pd.Series(
                [pd.Timestamp(n["note_date"]) if n["note_date"] else pd.NaT for n in notes], dtype="datetime64[ns]"
            ),
            "note_title": pd.Series([n["note_title"] for n in notes], dtype=object),
            "note_text": pd.Series([n["note_text"] for n in notes], dtype=object),
        }
    )


def read_all(source) -> pd.DataFrame:
    frames = list(source.batches())
    if not frames:
        return empty_notes_frame()
    return pd.concat(frames, ignore_index=True)


# -- writing the same notes in every format ----------------------------------


def csv_bytes(notes=NOTES, delimiter=",", header=HEADER) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    for note in notes:
        writer.writerow(["" if note.get(name) is None else note.get(name) for name in header])
    return out.getvalue().encode("utf-8")


def write_csv_file(tmp_path, notes=NOTES, name="notes.csv", **kwargs) -> Path:
    path = tmp_path / name
    path.write_bytes(csv_bytes(notes, **kwargs))
    return path


def write_jsonl(tmp_path, notes=NOTES, name="notes.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(note, ensure_ascii=False) + "\n" for note in notes), encoding="utf-8")
    return path


def write_parquet(tmp_path, notes=NOTES, name="notes.parquet", row_group_size=None) -> Path:
    path = tmp_path / name
    table = pa.table(
        {
            "note_id": pa.array([n["note_id"] for n in notes], pa.int64()),
            # A nullable id column often arrives as float: 1.0 must read as "1".
            "person_id": pa.array([float(n["person_id"]) for n in notes], pa.float64()),
            "note_date": pa.array(
                [None if n["note_date"] is None else pd.Timestamp(n["note_date"]) for n in notes],
                pa.timestamp("us"),
            ),
            "note_title": [n["note_title"] for n in notes],
            "note_text": [n["note_text"] for n in notes],
        }
    )
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def write_sqlite(tmp_path, notes=NOTES, table="note", columns=HEADER, name="notes.db") -> str:
    path = tmp_path / name
    engine = sa.create_engine(f"sqlite:///{path}")
    metadata = sa.MetaData()
    types = [sa.BigInteger, sa.BigInteger, sa.String, sa.String, sa.Text]
    note_table = sa.Table(table, metadata, *(sa.Column(c, t) for c, t in zip(columns, types)))
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            note_table.insert(),
            [{column: note[key] for column, key in zip(columns, HEADER)} for note in notes],
        )
    engine.dispose()
    return f"sqlite:///{path}"


def write_txt_folder(tmp_path, notes=NOTES) -> tuple[Path, Path]:
    folder = tmp_path / "notes"
    folder.mkdir()
    for note in notes:
        (folder / f"{note['note_id']}.txt").write_bytes(note["note_text"].encode("utf-8"))
    (folder / "README.md").write_text("not a note")
    mapping = write_csv_file(tmp_path, notes, name="mapping.csv", header=HEADER[:4])
    return folder, mapping


def stdin_with(monkeypatch, data: bytes):
    stream = CountingBytesIO(data)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(stream, encoding="utf-8"))
    return stream


class CountingBytesIO(io.BytesIO):
    """Standard input that records how many bytes were taken from it."""

    bytes_read = 0

    def read(self, size=-1):
        data = super().read(size)
        self.bytes_read += len(data)
        return data

    def read1(self, size=-1):
        data = super().read1(size)
        self.bytes_read += len(data)
        return data


def open_in_format(fmt, tmp_path, monkeypatch, **options):
    if fmt == "csv":
        return open_source(write_csv_file(tmp_path), **options)
    if fmt == "tsv":
        return open_source(write_csv_file(tmp_path, name="notes.tsv", delimiter="\t"), **options)
    if fmt == "csv.gz":
        path = tmp_path / "notes.csv.gz"
        path.write_bytes(gzip.compress(csv_bytes()))
        return open_source(path, **options)
    if fmt == "jsonl":
        return open_source(write_jsonl(tmp_path), **options)
    if fmt == "json-array":
        path = tmp_path / "notes.json"
        path.write_text(json.dumps(NOTES, indent=1), encoding="utf-8")
        return open_source(path, **options)
    if fmt == "parquet":
        return open_source(write_parquet(tmp_path, row_group_size=3), **options)
    if fmt == "txt":
        folder, mapping = write_txt_folder(tmp_path)
        return open_source(folder, mapping=mapping, **options)
    if fmt == "sqlite":
        return open_source(write_sqlite(tmp_path), **options)
    if fmt == "stdin":
        stdin_with(monkeypatch, csv_bytes())
        return open_source("-", **options)
    raise AssertionError(fmt)


FORMATS = ["csv", "tsv", "csv.gz", "jsonl", "json-array", "parquet", "txt", "sqlite", "stdin"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_gives_the_same_canonical_frame(fmt, tmp_path, monkeypatch):
    source = open_in_format(fmt, tmp_path, monkeypatch)
    frame = read_all(source)
    assert list(frame.columns) == list(NOTE_COLUMNS)
    pd.testing.assert_frame_equal(frame, expected_frame())
    assert source.stats.rows == 4
    assert source.stats.empty_text == 1
    assert source.stats.missing_dates == 1
    assert source.stats.bad_dates == 0
    assert source.stats.duplicate_ids == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_batches_are_bounded_and_rows_continue(fmt, tmp_path, monkeypatch):
    batches = list(open_in_format(fmt, tmp_path, monkeypatch, batch_size=3).batches())
    assert [len(batch) for batch in batches] == [3, 1]
    assert list(batches[1]["row"]) == [3]


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_ten_thousand_notes_in_batches_of_one_hundred(suffix, tmp_path):
    notes = [
        {"note_id": i, "person_id": i % 97, "note_date": "2022-01-01", "note_title": "", "note_text": f"note {i}"}
        for i in range(10_000)
    ]
    writer = {"csv": write_csv_file, "jsonl": write_jsonl, "parquet": write_parquet}[suffix]
    source = open_source(writer(tmp_path, notes, name=f"many.{suffix}"), batch_size=100)
    sizes, rows = [], []
    for batch in source.batches():
        sizes.append(len(batch))
        rows.extend(batch["row"])
    assert sizes == [100] * 100
    assert rows == list(range(10_000))
    assert source.stats.batches == 100 and source.stats.rows == 10_000


def test_standard_input_is_streamed_not_slurped(monkeypatch):
    notes = [
        {"note_id": i, "person_id": i, "note_date": "", "note_title": "", "note_text": "x" * 1000}
        for i in range(5_000)
    ]
    data = csv_bytes(notes)
    stream = stdin_with(monkeypatch, data)
    batches = open_source("-", batch_size=100).batches()
    first = next(batches)
    assert len(first) == 100
    assert stream.bytes_read < len(data) / 2  # 5 MB input, about 1 MB buffered
    assert sum(len(batch) for batch in batches) == 4_900


# -- CSV particulars ---------------------------------------------------------


def test_a_200000_character_line_is_read_whole(tmp_path):
    long_text = "vertebral " * 20_000
    notes = [dict(NOTES[0], note_text=long_text), NOTES[1]]
    for path in (write_csv_file(tmp_path, notes), write_jsonl(tmp_path, notes)):
        frame = read_all(open_source(path))
        assert frame["note_text"].tolist() == [long_text, NOTES[1]["note_text"]]
        assert len(frame.loc[0, "note_text"]) == 200_000


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "txt"])
def test_undecodable_bytes_are_replaced_and_counted(fmt, tmp_path):
    bad = b"fracture \xff\xfe at L1 \xc3"  # \xc3 starts a UTF-8 sequence that never ends
    if fmt == "csv":
        path = tmp_path / "notes.csv"
        path.write_bytes(b"note_id,person_id,note_text\n1,1,\"" + bad + b"\"\n2,2,clean \xc3\xa9\n")
    elif fmt == "jsonl":
        path = tmp_path / "notes.jsonl"
        path.write_bytes(
            b'{"note_id": 1, "person_id": 1, "note_text": "' + bad + b'"}\n'
            b'{"note_id": 2, "person_id": 2, "note_text": "clean \xc3\xa9"}\n'
        )
    else:
        path = tmp_path / "notes"
        path.mkdir()
        (path / "1.txt").write_bytes(bad)
        (path / "2.txt").write_bytes(b"clean \xc3\xa9")
    source = open_source(path)
    frame = read_all(source)
    assert frame["note_text"].tolist() == ["fracture \ufffd\ufffd at L1 \ufffd", "clean é"]
    assert source.stats.replaced_bytes_notes == 1


def test_latin1_input_with_an_explicit_encoding(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_bytes("note_id,person_id,note_text\n1,1,œdème\n".encode("cp1252"))
    source = open_source(path, encoding="cp1252")
    assert read_all(source)["note_text"].tolist() == ["œdème"]
    assert source.stats.replaced_bytes_notes == 0


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_nul_bytes_are_removed_and_counted(fmt, tmp_path):
    if fmt == "csv":
        path = tmp_path / "notes.csv"
        path.write_bytes(b"note_id,person_id,note_text\n1,1,\"acute\x00 fracture\x00\"\n2,2,ok\n")
    else:
        path = tmp_path / "notes.jsonl"
        path.write_bytes(
            b'{"note_id": 1, "person_id": 1, "note_text": "acute\\u0000 fracture\\u0000"}\n'
            b'{"note_id": 2, "person_id": 2, "note_text": "ok"}\n'
        )
    source = open_source(path)
    assert read_all(source)["note_text"].tolist() == ["acute fracture", "ok"]
    assert source.stats.nul_bytes_notes == 1


def test_missing_column_message_names_the_columns_and_no_text(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("note_id,report,date\n1,Secret clinical text here,2021-01-01\n")
    with pytest.raises(InputError) as error:
        open_source(path)
    message = str(error.value)
    assert "\n" not in message
    assert "missing column(s) person_id, note_text" in message
    assert "found: note_id, report, date" in message
    assert "Secret" not in message
    assert isinstance(error.value, ValueError)


def test_a_file_without_header_row_never_shows_its_text(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("1,42,MRI shows an acute L1 fracture\n2,43,Normal\n")
    with pytest.raises(InputError, match="no header row") as error:
        open_source(path)
    # the file's path is in the message, and pytest's temporary folders are numbered ("pytest-342")
    message = str(error.value).replace(str(path), "<path>")
    assert "MRI" not in message and "42" not in message and "<path>" in message


@pytest.mark.parametrize(
    "name, content",
    [
        ("empty.csv", b""),
        ("blank.csv", b"\n\n"),
        ("header.csv", b"note_id,person_id,note_date,note_title,note_text\n"),
        ("header.tsv", b"note_id\tperson_id\tnote_text\n"),
        ("empty.jsonl", b""),
        ("blank.jsonl", b"\n  \n"),
        ("empty.json", b"[]"),
    ],
)
def test_empty_input_gives_no_notes(name, content, tmp_path):
    path = tmp_path / name
    path.write_bytes(content)
    source = open_source(path)
    assert list(source.batches()) == []
    assert source.stats.rows == 0


def test_empty_parquet_and_empty_folder_give_no_notes(tmp_path):
    path = write_parquet(tmp_path, notes=[])
    assert list(open_source(path).batches()) == []
    (tmp_path / "empty").mkdir()
    assert list(open_source(tmp_path / "empty").batches()) == []


def test_duplicate_ids_are_kept_and_counted(tmp_path):
    notes = [dict(NOTES[0]), dict(NOTES[1], note_id=101), dict(NOTES[2]), dict(NOTES[3], note_id=101)]
    source = open_source(write_csv_file(tmp_path, notes), batch_size=2)
    frame = read_all(source)
    assert frame["note_id"].tolist() == ["101", "101", "103", "101"]
    assert source.stats.duplicate_ids == 2


def test_unparseable_dates_are_nat_and_counted(tmp_path):
    dates = ["2021-03-04", "yesterday", "2021-02-30", "", "2021-03-04T23:30:00-05:00", "9999-12-31", "04/03/2021"]
    notes = [dict(NOTES[1], note_id=i, note_date=d) for i, d in enumerate(dates)]
    source = open_source(write_csv_file(tmp_path, notes))
    frame = read_all(source)
    assert frame["note_date"].dtype == "datetime64[ns]"
    assert frame["note_date"].tolist()[:5] == [
        pd.Timestamp("2021-03-04"), pd.NaT, pd.NaT, pd.NaT, pd.Timestamp("2021-03-04 23:30"),
    ]
    assert frame["note_date"].iloc[5:].isna().all()
    assert source.stats.bad_dates == 4 and source.stats.missing_dates == 1


def test_float_looking_and_numeric_values_become_strings(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("note_id,person_id,note_text\n12.0,7.00,123\n 13 ,,0.5\n")
    source = open_source(path)
    frame = read_all(source)
    assert frame["note_id"].tolist() == ["12", "13"]
    assert frame["person_id"].tolist() == ["7", ""]
    assert frame["note_text"].tolist() == ["123", "0.5"]
    jsonl = tmp_path / "numbers.jsonl"
    jsonl.write_text('{"note_id": 12.0, "person_id": 7, "note_text": 123}\n')
    frame = read_all(open_source(jsonl))
    assert frame[["note_id", "person_id", "note_text"]].values.tolist() == [["12", "7", "123"]]


def test_other_column_names_and_case_insensitive_matching(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("NOTE_ID,Person_Id,report_date,body\n1,2,2021-05-06,text\n")
    columns = ColumnMap(date="report_date", text="body")
    frame = read_all(open_source(path, columns=columns))
    assert frame.loc[0, ["note_id", "person_id", "note_text"]].tolist() == ["1", "2", "text"]
    assert frame.loc[0, "note_date"] == pd.Timestamp("2021-05-06")
    with pytest.raises(InputError, match="missing column.*note_title_x"):
        open_source(path, columns=ColumnMap(text="body", title="note_title_x"))


def test_semicolon_csv_and_ragged_rows(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("note_id;person_id;note_text\n1;1;a\n2;2\n3;3;c;extra\n")
    source = open_source(path)
    frame = read_all(source)
    assert frame["note_text"].tolist() == ["a", "", "c"]
    assert source.stats.malformed_lines == 2
    assert source.stats.malformed_line_numbers == [3, 4]


def test_malformed_json_lines_are_skipped_counted_and_reported(tmp_path, caplog):
    path = tmp_path / "notes.jsonl"
    path.write_text(
        '{"note_id": 1, "person_id": 1, "note_text": "fine"}\n'
        '{"note_id": 2, "person_id": 2, "note_text": "secret text trunc\n'
        "[1, 2]\n"
        "\n"
        '{"note_id": 3, "person_id": 3, "note_text": "fine too"}\n'
    )
    source = open_source(path)
    with caplog.at_level(logging.WARNING, logger="pipeline.io.readers"):
        frame = read_all(source)
    assert frame["note_id"].tolist() == ["1", "3"]
    assert frame["row"].tolist() == [0, 1]
    assert source.stats.malformed_lines == 2
    assert source.stats.malformed_line_numbers == [2, 3]
    assert "line 2" in caplog.text and "secret" not in caplog.text


def test_a_file_of_only_malformed_lines_is_an_error(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text("note_id,person_id,note_text\n1,1,this is a CSV\n")
    with pytest.raises(InputError, match="is it JSON Lines"):
        read_all(open_source(path))


def test_json_lines_missing_a_required_key(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text('{"note_id": 1, "text": "Secret"}\n')
    with pytest.raises(InputError, match=r"missing column\(s\) person_id, note_text; found: note_id, text"):
        read_all(open_source(path))


# -- folder of .txt files ------------------------------------------------------


def test_txt_folder_without_mapping_uses_the_note_id_as_person(tmp_path):
    folder, _ = write_txt_folder(tmp_path)
    source = open_source(folder)
    frame = read_all(source)
    assert frame["note_id"].tolist() == ["101", "102", "103", "104"]
    assert frame["person_id"].tolist() == frame["note_id"].tolist()
    assert frame["note_date"].isna().all() and (frame["note_title"] == "").all()


def test_txt_folder_notes_missing_from_the_mapping_are_counted(tmp_path):
    folder, _ = write_txt_folder(tmp_path)
    mapping = write_csv_file(tmp_path, NOTES[:2], name="partial.csv", header=["note_id", "person_id"])
    source = open_source(folder, mapping=mapping)
    frame = read_all(source)
    assert frame["person_id"].tolist() == ["1", "1", "103", "104"]
    assert source.stats.unmapped_notes == 2


# -- SQL -----------------------------------------------------------------------


def test_sqlite_column_names_in_upper_case_and_note_datetime(tmp_path):
    columns = ["NOTE_ID", "PERSON_ID", "NOTE_DATETIME", "NOTE_TITLE", "NOTE_TEXT"]
    url = write_sqlite(tmp_path, table="NOTE", columns=columns)
    frame = read_all(open_source(url))
    pd.testing.assert_frame_equal(frame, expected_frame())


def test_sql_query_and_missing_table(tmp_path):
    url = write_sqlite(tmp_path)
    query = "SELECT note_id, person_id, note_text FROM note WHERE person_id = 1"
    frame = read_all(open_source(url, query=query))
    assert frame["note_id"].tolist() == ["101", "102"]
    assert frame["note_date"].isna().all()
    with pytest.raises(InputError, match="no table 'notes'; tables found: note"):
        open_source(url, table="notes")
    with pytest.raises(InputError, match="no such file"):
        open_source(f"sqlite:///{tmp_path / 'absent.db'}")
    assert not (tmp_path / "absent.db").exists()


def test_describe_and_fingerprint_never_show_a_password():
    source = open_source("postgresql://alice:s3cret@db.example/omop", query="SELECT 1")
    assert "s3cret" not in source.describe() and "***" in source.describe()
    other_password = open_source("postgresql://alice:other@db.example/omop", query="SELECT 1")
    assert source.fingerprint() == other_password.fingerprint()
    assert len(source.fingerprint()) == 64


# -- options, fingerprints, chaining -----------------------------------------------


def test_since_until_keep_undated_notes_and_count_them(tmp_path):
    source = open_source(write_csv_file(tmp_path), since="2021-01-01", until="2021-03-04")
    frame = read_all(source)
    # 101 (2021-03-04, the whole until-day counts) and 103 (no date); not 102 (03-05) nor 104 (2020).
    assert frame["note_id"].tolist() == ["101", "103"]
    assert frame["row"].tolist() == [0, 1]
    assert source.stats.filtered_out == 2 and source.stats.undated_kept == 1
    with pytest.raises(InputError, match="since: not a date"):
        open_source(write_csv_file(tmp_path), since="last week")


def test_fingerprint_is_the_sha256_of_the_file_bytes(tmp_path):
    path = write_csv_file(tmp_path)
    source = open_source(path)
    assert source.fingerprint() == hashlib.sha256(path.read_bytes()).hexdigest()
    copy = tmp_path / "copy.csv"
    copy.write_bytes(path.read_bytes())
    assert open_source(copy).fingerprint() == source.fingerprint()
    folder, mapping = write_txt_folder(tmp_path)
    before = open_source(folder).fingerprint()
    (folder / "101.txt").write_text("changed")
    assert open_source(folder).fingerprint() != before


def test_standard_input_fingerprint_after_reading_and_single_pass(monkeypatch):
    data = csv_bytes()
    stdin_with(monkeypatch, data)
    source = open_source("-")
    with pytest.raises(RuntimeError):
        source.fingerprint()
    read_all(source)
    assert source.fingerprint() == hashlib.sha256(data).hexdigest()
    with pytest.raises(RuntimeError, match="only once"):
        read_all(source)


def test_iter_notes_numbers_rows_across_inputs(tmp_path):
    first = open_source(write_csv_file(tmp_path), batch_size=3)
    second = open_source(write_jsonl(tmp_path), batch_size=3)
    frame = pd.concat(list(iter_notes([first, second])), ignore_index=True)
    assert frame["row"].tolist() == list(range(8))
    pd.testing.assert_frame_equal(frame.iloc[4:].reset_index(drop=True), expected_frame(first_row=4))


def test_reading_twice_gives_the_same_frame_and_stats(tmp_path):
    source = open_source(write_csv_file(tmp_path))
    once, twice = read_all(source), read_all(source)
    pd.testing.assert_frame_equal(once, twice)
    assert source.stats.rows == 4


@pytest.mark.parametrize(
    "spec, options, message",
    [
        ("notes.xlsx", {}, "cannot tell the format"),
        ("absent.csv", {}, "no such file"),
        ("notes.csv", {"format": "yaml"}, "unknown format"),
        ("notes.csv", {"table": "note"}, "only to a SQL URL"),
        ("notes.csv", {"batch_size": 0}, "batch_size"),
        ("-", {"format": "parquet"}, "standard input"),
    ],
)
def test_bad_arguments(spec, options, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.csv").write_bytes(csv_bytes())
    (tmp_path / "notes.xlsx").write_bytes(b"")
    with pytest.raises(InputError, match=message):
        open_source(spec, **options)


# -- PostgreSQL (a real server: eval "$(.ci/postgres.sh)") --------------------------


@pytest.fixture(scope="session")
def postgres_url():
    """A URL whose search_path is a fresh schema holding an OMOP-shaped ``note`` table."""
    url = os.environ.get("VERTEBRO_TEST_POSTGRES_URL")
    if not url:
        pytest.skip('no PostgreSQL server: set VERTEBRO_TEST_POSTGRES_URL (eval "$(.ci/postgres.sh)")')
    schema = f"vertebro_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
        connection.execute(
            sa.text(
                f"""CREATE TABLE {schema}.note (
                    note_id bigint PRIMARY KEY,
                    person_id bigint NOT NULL,
                    note_date date,
                    note_datetime timestamp,
                    note_type_concept_id integer NOT NULL,
                    note_class_concept_id integer NOT NULL,
                    note_title varchar(250),
                    note_text text NOT NULL,
                    encoding_concept_id integer NOT NULL,
                    language_concept_id integer NOT NULL,
                    provider_id bigint,
                    visit_occurrence_id bigint,
                    visit_detail_id bigint,
                    note_source_value varchar(50),
                    note_event_id bigint,
                    note_event_field_concept_id integer
                )"""
            )
        )
        rows = [
            {
                "note_id": n["note_id"],
                "person_id": n["person_id"],
                "note_date": None if n["note_date"] is None else pd.Timestamp(n["note_date"]).date(),
                "note_datetime": None if n["note_date"] is None else pd.Timestamp(n["note_date"]).to_pydatetime(),
                "note_title": n["note_title"],
                "note_text": n["note_text"],
            }
            for n in reversed(NOTES)  # inserted backwards: the reader orders by note_id
        ]
        connection.execute(
            sa.text(
                f"""INSERT INTO {schema}.note (note_id, person_id, note_date, note_datetime,
                    note_type_concept_id, note_class_concept_id, note_title, note_text,
                    encoding_concept_id, language_concept_id)
                    VALUES (:note_id, :person_id, :note_date, :note_datetime, 44814645, 0,
                            :note_title, :note_text, 32678, 4180186)"""
            ),
            rows,
        )
        connection.execute(
            sa.text(
                f"""CREATE TABLE {schema}.many AS
                    SELECT g AS note_id, g % 50 AS person_id, DATE '2022-01-01' AS note_date,
                           'line one' || chr(10) || 'line ' || g AS note_text
                    FROM generate_series(1, 1000) AS g"""
            )
        )
    scoped = sa.engine.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    yield scoped.render_as_string(hide_password=False)
    with engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL lock_timeout = '10s'"))
        connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@pytest.mark.postgres
def test_postgres_omop_note_table_with_no_options(postgres_url):
    source = open_source(postgres_url)
    assert "***" in source.describe()
    expected = expected_frame()
    expected["note_date"] = expected["note_date"].dt.normalize()  # OMOP note_date is a date
    pd.testing.assert_frame_equal(read_all(source), expected)


@pytest.mark.postgres
def test_postgres_query(postgres_url):
    query = (
        "SELECT note_id, person_id, note_datetime AS note_date, note_title, note_text "
        "FROM note WHERE person_id = 1 ORDER BY note_id"
    )
    frame = read_all(open_source(postgres_url, query=query))
    pd.testing.assert_frame_equal(frame, expected_frame(NOTES[:2]))


@pytest.mark.postgres
def test_postgres_rows_stream_through_a_server_side_cursor(postgres_url):
    """While batches are consumed, the server holds a cursor that is FETCHed from."""
    source = open_source(postgres_url, table="many", batch_size=100)
    batches = source.batches()
    try:
        first = next(batches)
        observer = sa.create_engine(postgres_url)
        with observer.connect() as connection:
            activity = connection.execute(
                sa.text(
                    "SELECT query FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalars().all()
        observer.dispose()
        # psycopg's named cursor: the rows stay on the server until fetched.
        assert any(query.upper().startswith("FETCH FORWARD") for query in activity), activity
        rest = list(batches)
    finally:
        batches.close()  # a failed assertion must not leave the cursor's lock behind
    assert len(first) == 100 and [len(batch) for batch in rest] == [100] * 9
    assert rest[-1]["note_id"].iloc[-1] == "1000"
    assert rest[-1]["note_text"].iloc[-1] == "line one\nline 1000"


def test_a_folder_without_txt_files_says_what_it_holds(tmp_path, caplog):
    (tmp_path / "notes.csv").write_text("note_id,person_id,note_text\n1,p,x\n")
    caplog.set_level("WARNING")
    assert list(open_source(tmp_path).batches()) == []
    assert "no .txt file (it holds notes.csv: give a file's path" in caplog.text


def _raw_chunks(lengths: list[int], cuts: list[int]) -> list[dict]:
    """Raw reader chunks of notes whose texts have ``lengths``, cut at ``cuts``."""
    from pipeline.io.readers import _FIELDS
    rows = [{"id": str(i), "person": "p", "date": None, "title": "", "text": "x" * n}
            for i, n in enumerate(lengths)]
    bounds = [0, *cuts, len(rows)]
    return [{name: [row[name] for row in rows[a:b]] for name in _FIELDS} for a, b in zip(bounds, bounds[1:])]


def test_batches_end_at_the_size_or_once_they_hold_enough_text():
    from pipeline.io.readers import _rebatch
    lengths = [4, 4, 4, 1, 1, 1, 1, 1, 25, 2, 2]
    batches = [batch["id"] for batch in _rebatch(iter(_raw_chunks(lengths, [])), size=4, max_chars=10)]
    # 4+4+4 reaches 10 at the third note; four short notes; the 25-character note ends its batch
    assert batches == [["0", "1", "2"], ["3", "4", "5", "6"], ["7", "8"], ["9", "10"]]
    batches = [batch["id"] for batch in _rebatch(iter(_raw_chunks([30, 1, 1], [])), size=4, max_chars=10)]
    assert batches == [["0"], ["1", "2"]]


@pytest.mark.parametrize("seed", range(20))
def test_batches_do_not_depend_on_how_the_reader_chunks_its_input(seed):
    """Resuming a run relies on cutting the same batches: the reader's chunk sizes (CSV, JSON
    Lines, Parquet row groups) must not move a batch's end."""
    import random
    from pipeline.io.readers import _rebatch
    rng = random.Random(seed)
    lengths = [rng.choice([0, 1, 3, 7, 40]) for _ in range(rng.randint(1, 60))]
    whole = [batch["id"] for batch in _rebatch(iter(_raw_chunks(lengths, [])), size=5, max_chars=12)]
    cuts = sorted(rng.sample(range(1, len(lengths)), min(len(lengths) - 1, rng.randint(0, 8))))
    chunked = [batch["id"] for batch in _rebatch(iter(_raw_chunks(lengths, cuts)), size=5, max_chars=12)]
    assert chunked == whole
    assert [i for batch in whole for i in batch] == [str(i) for i in range(len(lengths))]
    for batch in whole:  # no batch over the size; over the characters only by its last note
        texts = [lengths[int(i)] for i in batch]
        assert len(batch) <= 5 and sum(texts[:-1]) < 12
