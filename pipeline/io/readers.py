"""Read clinical notes from files, folders, standard input or SQL, in batches.

``open_source(spec)`` returns a :class:`NoteSource`; its ``batches()`` yields
the canonical notes frame of docs/design.md §1, ``batch_size`` notes at most
per frame, so memory stays bounded whatever the size of the input::

    source = open_source("notes.csv", batch_size=1000)
    for batch in source.batches():
        ...   # row, note_id, person_id, note_date, note_title, note_text
    source.stats.as_dict()   # rows, empty_text, bad_dates, duplicate_ids, ...

Supported inputs (format from the extension, ``format=`` to override):

=====================  ====================================================
``notes.csv``          CSV with a header, quoted multi-line text (``.tsv``
                       for tabs; ``.gz``, ``.bz2``, ``.xz`` decompressed)
``-``                  CSV on standard input (``format="jsonl"`` also works)
``notes.jsonl``        JSON Lines, one object per line (also ``.ndjson``;
                       ``.json`` holding one array of objects is streamed)
``notes.parquet``      Parquet, read row group by row group (``.pq``)
``notes/``             a folder of ``.txt`` files: file name = note id,
                       person id = note id unless ``mapping=`` names a CSV
                       ``note_id,person_id[,note_date,note_title]``
``sqlite:///x.db``     any SQLAlchemy URL: ``table=`` (default ``note``, the
                       OMOP CDM NOTE table) or ``query=``; rows are streamed
                       with a server-side cursor
=====================  ====================================================

Decisions worth knowing (each counted in :class:`ReadStats`):

* Ids are strings; an integer ``12`` and a float-looking ``12.0`` (a nullable
  integer column exported as float) both become ``"12"``.
* Column names match exactly, else case-insensitively (PostgreSQL folds
  names to lower case); ``note_datetime`` stands in for a missing
  ``note_date``.
* Dates are ISO 8601 dates or datetimes; a time-zone offset is dropped and the
  wall-clock time kept (the local date is the clinical date). Anything else
  becomes ``NaT`` and is counted in ``bad_dates`` (``missing_dates`` when
  empty).
* Undecodable bytes become U+FFFD and NUL characters are removed; the notes
  concerned are counted, never logged.
* A JSON Lines line that is not a JSON object is skipped, counted in
  ``malformed_lines`` with its line number (first 20 in
  ``malformed_line_numbers``; for a JSON array, the element number) and
  logged as a warning: without a parsable
  record there is no note id or patient to attach it to, and inventing one
  would add a fake patient to the cohort. A CSV record with the wrong number
  of fields is kept (padded or truncated) and also counted there.
* Duplicate note ids are kept (both rows) and counted; the check stores a
  64-bit hash per distinct id (8 bytes each), so it stays small.
* ``since`` / ``until`` keep notes dated within the window (``until`` given as
  a date includes that whole day) and notes with no date, counted in
  ``undated_kept``. ``row`` numbers the notes yielded, so the same input and
  options always give the same rows.
* A SQL ``table`` is read ``ORDER BY`` its note id column, so that ``row`` is
  reproducible across runs (the OMOP ``note_id`` is the primary key, so the
  database streams it from the index).
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import gzip
import hashlib
import io
import itertools
import json
import logging
import lzma
import numbers
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from .. import BATCH_CHARS, DEFAULT_BATCH_SIZE

logger = logging.getLogger(__name__)

NOTE_COLUMNS = ("row", "note_id", "person_id", "note_date", "note_title", "note_text")
"""Columns of the canonical notes frame, in order (docs/design.md §1)."""

FORMATS = ("csv", "tsv", "jsonl", "json", "parquet", "txt", "sql")

_FORMAT_ALIASES = {
    "csv": "csv",
    "tsv": "tsv",
    "tab": "tsv",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "json": "json",
    "parquet": "parquet",
    "pq": "parquet",
    "txt": "txt",
    "text": "txt",
    "folder": "txt",
    "sql": "sql",
}
_COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}

_CHUNK_BYTES = 1 << 20
_MAX_LISTED_LINES = 20
_DATE_FALLBACKS = ("note_datetime",)

# Lone surrogates: undecodable bytes (decoded with "surrogateescape") and
# invalid JSON escapes. They cannot be written as UTF-8, so they become U+FFFD.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_INTEGRAL_FLOAT = re.compile(r"^([+-]?\d+)\.0*$")
_TIME_ZONE_SUFFIX = re.compile(
    r"^(.*\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$",
    re.IGNORECASE,
)
_COLUMN_NAME = re.compile(r"^[A-Za-z_][\w.\-#]{0,39}$")


class InputError(ValueError):
    """The input cannot be read as notes; the message is one line, never note text."""


@dataclass(frozen=True)
class ColumnMap:
    """Names of the note columns in the input (defaults: the OMOP CDM NOTE table).

    ``date`` and ``title`` are optional: when left at their default and absent
    the note has no date (``NaT``) or title (``""``); ``date=None`` or
    ``title=None`` ignores them. A non-default name that is absent is an error.
    """

    id: str = "note_id"
    person: str = "person_id"
    date: str | None = "note_date"
    title: str | None = "note_title"
    text: str = "note_text"


@dataclass
class ReadStats:
    """What reading one source found; every count is of notes yielded, except
    ``filtered_out`` and the malformed lines, which were not yielded."""

    rows: int = 0
    batches: int = 0
    empty_text: int = 0
    missing_ids: int = 0
    duplicate_ids: int = 0
    missing_dates: int = 0
    bad_dates: int = 0
    replaced_bytes_notes: int = 0
    nul_bytes_notes: int = 0
    malformed_lines: int = 0
    malformed_line_numbers: list[int] = field(default_factory=list)
    filtered_out: int = 0
    undated_kept: int = 0
    unmapped_notes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _malformed(self, line_number: int) -> None:
        self.malformed_lines += 1
        if len(self.malformed_line_numbers) < _MAX_LISTED_LINES:
            self.malformed_line_numbers.append(line_number)


@dataclass(frozen=True)
class _Resolved:
    """The actual input column names for each note field."""

    id: str
    person: str
    date: str | None
    title: str | None
    text: str | None

    def names(self) -> list[str]:
        """The distinct input columns to read, in a stable order."""
        wanted = (self.id, self.person, self.date, self.title, self.text)
        return list(dict.fromkeys(name for name in wanted if name is not None))


# A raw chunk: the field values exactly as read, one list per field.
_FIELDS = ("id", "person", "date", "title", "text")
_Raw = dict[str, list]


def open_source(
    spec: str | Path,
    *,
    format: str | None = None,
    columns: ColumnMap = ColumnMap(),
    batch_size: int = DEFAULT_BATCH_SIZE,
    table: str | None = None,
    query: str | None = None,
    mapping: str | Path | None = None,
    since: str | date | None = None,
    until: str | date | None = None,
    encoding: str = "utf-8",
) -> NoteSource:
    """Open a file, folder, ``-`` (standard input) or SQLAlchemy URL as notes.

    Nothing is read yet apart from what validates the input early (a CSV
    header, a Parquet schema, a SQL table's columns): a missing required
    column raises :class:`InputError` here rather than mid-run.

    Example::

        open_source("export.csv", columns=ColumnMap(id="report_id", text="report"))
        open_source("postgresql://me@db/omop")            # table "note"
        open_source("sqlite:///notes.db", query="SELECT * FROM note WHERE ...")
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, not {batch_size}")
    spec = str(spec)
    fmt = _detect_format(spec, format)
    if fmt != "sql" and (table is not None or query is not None):
        raise InputError("table= and query= apply only to a SQL URL")
    if fmt != "txt" and mapping is not None:
        raise InputError("mapping= applies only to a folder of .txt files")
    options = dict(
        columns=columns,
        batch_size=batch_size,
        since=_window_start(since),
        until=_window_end(until),
    )
    source: NoteSource
    if fmt == "sql":
        source = _SqlSource(spec, table=table, query=query, **options)
    elif fmt == "txt":
        source = _TextFolderSource(_existing(spec), mapping=mapping, encoding=encoding, **options)
    elif fmt == "parquet":
        if spec == "-":
            raise InputError("Parquet cannot be read from standard input")
        source = _ParquetSource(_existing(spec), **options)
    else:
        path = None if spec == "-" else _existing(spec)
        if fmt in ("csv", "tsv"):
            source = _DelimitedSource(path, fmt=fmt, encoding=encoding, **options)
        else:
            source = _JsonSource(path, fmt=fmt, encoding=encoding, **options)
    source._validate()
    logger.info("reading %s", source.describe())
    return source


def iter_notes(sources: Iterable[NoteSource]) -> Iterator[pd.DataFrame]:
    """Chain the batches of several sources, numbering ``row`` across them all.

    Duplicate note ids are counted within each source, not across sources.
    """
    next_row = 0
    for source in sources:
        yield from source.batches(start_row=next_row)
        next_row += source.stats.rows


def empty_notes_frame() -> pd.DataFrame:
    """A canonical notes frame with no rows (the right columns and dtypes)."""
    return _notes_frame([], [], [], pd.Series([], dtype="datetime64[ns]"), [], 0)


class NoteSource:
    """One input of notes; iterate ``batches()`` (again, except standard input).

    ``stats`` is reset when a new pass over ``batches()`` starts and is
    complete when it ends.
    """

    format: str = ""
    _needs_text = True  # False for a mapping file, which only has ids, dates, titles

    def __init__(
        self,
        *,
        columns: ColumnMap,
        batch_size: int,
        since: pd.Timestamp | None,
        until: pd.Timestamp | None,
    ) -> None:
        self.columns = columns
        self.batch_size = batch_size
        self.since = since
        self.until = until
        self.stats = ReadStats()
        self._resolved: _Resolved | None = None

    # -- what each input kind provides ------------------------------------

    def describe(self) -> str:
        """A short human description, with no credentials and no note text."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """sha256 (hex) identifying the input content (never note text in clear)."""
        raise NotImplementedError

    def _validate(self) -> None:
        """Check the columns before any note is read, when that is cheap."""

    def _check_readable(self) -> None:
        """Raise if another pass is impossible (standard input)."""

    def _iter_raw(self) -> Iterator[_Raw]:
        raise NotImplementedError

    # -- shared -------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<NoteSource {self.describe()}>"

    def batches(self, *, start_row: int = 0) -> Iterator[pd.DataFrame]:
        """Yield canonical notes frames of at most ``batch_size`` rows.

        ``start_row`` is the ``row`` of the first note (``iter_notes`` uses it
        to continue numbering across inputs). An input with no notes yields
        no frame.
        """
        self._check_readable()
        self.stats = ReadStats()
        yield from self.canonical_batches(self._iter_raw(), start_row=start_row)
        self._log_summary()

    def canonical_batches(self, chunks: Iterable[_Raw], *, start_row: int = 0,
                          seen_ids: _SeenIds | None = None) -> Iterator[pd.DataFrame]:
        """Canonical frames (``batch_size`` rows at most) of raw chunks, counted in ``stats``.

        The one canonicalisation of every reader: the local readers call it on
        their whole input, :mod:`pipeline.io.partitions` on one partition.
        """
        seen_ids = _SeenIds() if seen_ids is None else seen_ids
        next_row = start_row
        for raw in _rebatch(iter(chunks), self.batch_size):
            frame = self._canonical(raw, next_row, seen_ids)
            if frame.empty:
                continue
            next_row += len(frame)
            self.stats.rows += len(frame)
            self.stats.batches += 1
            yield frame

    def _canonical(self, raw: _Raw, first_row: int, seen_ids: _SeenIds) -> pd.DataFrame:
        stats = self.stats
        dates, missing, bad = _parse_dates(raw["date"])
        keep = self._in_window(dates)
        if keep is not None:
            positions = np.flatnonzero(keep)
            raw = {name: [values[i] for i in positions] for name, values in raw.items()}
            dates = dates[keep].reset_index(drop=True)
            missing, bad = missing[keep], bad[keep]
        stats.missing_dates += int(missing.sum())
        stats.bad_dates += int(bad.sum())

        note_ids = [_id_text(value) for value in raw["id"]]
        person_ids = [_id_text(value) for value in raw["person"]]
        titles = [_title_text(value) for value in raw["title"]]
        texts = [_note_text(value) for value in raw["text"]]
        for i in range(len(note_ids)):
            had_nul = had_replacement = False
            for values in (note_ids, person_ids, titles, texts):
                value = values[i]
                if not value:
                    continue
                if "\x00" in value:
                    value = values[i] = value.replace("\x00", "")
                    had_nul = True
                if not value.isascii() and _LONE_SURROGATE.search(value):
                    values[i] = _LONE_SURROGATE.sub("\ufffd", value)
                    had_replacement = True
            stats.nul_bytes_notes += had_nul
            stats.replaced_bytes_notes += had_replacement
        stats.empty_text += sum(1 for text in texts if not text or text.isspace())
        stats.missing_ids += note_ids.count("")
        stats.duplicate_ids += seen_ids.count_repeats(note_ids)
        return _notes_frame(note_ids, person_ids, titles, dates, texts, first_row)

    def _in_window(self, dates: pd.Series) -> np.ndarray | None:
        """Which notes to keep under ``since``/``until``; None keeps them all."""
        if self.since is None and self.until is None:
            return None
        undated = dates.isna().to_numpy()
        inside = np.ones(len(dates), dtype=bool)
        if self.since is not None:
            inside &= (dates >= self.since).to_numpy()
        if self.until is not None:
            inside &= (dates < self.until).to_numpy()
        keep = undated | inside
        self.stats.filtered_out += int((~keep).sum())
        self.stats.undated_kept += int(undated.sum())
        return keep

    def _resolve(self, found: Sequence[str]) -> _Resolved:
        self._resolved = _resolve_columns(found, self.columns, self.describe(), needs_text=self._needs_text)
        return self._resolved

    def _log_summary(self) -> None:
        stats = self.stats
        logger.info("read %d notes in %d batches from %s", stats.rows, stats.batches, self.describe())
        if stats.filtered_out or stats.undated_kept:
            logger.info(
                "%s: %d notes outside the date window left out, %d undated notes kept",
                self.describe(), stats.filtered_out, stats.undated_kept,
            )
        problems = {
            name: value
            for name, value in stats.as_dict().items()
            if name not in ("rows", "batches", "malformed_line_numbers", "filtered_out", "undated_kept")
            and value
        }
        if problems:
            logger.warning("%s: %s", self.describe(), ", ".join(f"{k}={v}" for k, v in problems.items()))


# -- files -----------------------------------------------------------------


class _StreamSource(NoteSource):
    """A file (maybe compressed) or standard input, read as a byte stream."""

    def __init__(self, path: Path | None, *, fmt: str, encoding: str, **options: Any) -> None:
        super().__init__(**options)
        self.path = path
        self.format = fmt
        self.encoding = _text_encoding(encoding)
        self._stdin_reader: _HashingReader | None = None

    def describe(self) -> str:
        kind = {"csv": "CSV", "tsv": "TSV", "jsonl": "JSON Lines", "json": "JSON"}[self.format]
        if self.path is None:
            return f"{kind} from standard input"
        return f"{kind} file {self.path}"

    def fingerprint(self) -> str:
        if self.path is not None:
            return _file_sha256(self.path)
        if self._stdin_reader is None or not self._stdin_reader.exhausted:
            raise RuntimeError("the fingerprint of standard input is known only once it has been read")
        return self._stdin_reader.hexdigest()

    def _check_readable(self) -> None:
        if self.path is None and self._stdin_reader is not None:
            raise RuntimeError("standard input can be read only once")

    def _open_binary(self) -> BinaryIO:
        if self.path is None:
            self._check_readable()
            self._stdin_reader = _HashingReader(sys.stdin.buffer)
            return io.BufferedReader(self._stdin_reader, buffer_size=_CHUNK_BYTES)
        opener = _COMPRESSED.get(self.path.suffix.lower())
        if opener is not None:
            return opener(self.path, "rb")
        return open(self.path, "rb")

    def _open_text(self) -> io.TextIOWrapper:
        # surrogateescape keeps undecodable bytes recognisable (as lone
        # surrogates) so that the notes containing them can be counted.
        return io.TextIOWrapper(
            self._open_binary(), encoding=self.encoding, errors="surrogateescape", newline=""
        )


class _DelimitedSource(_StreamSource):
    """CSV / TSV with a header row; quoted fields may span lines."""

    def _validate(self) -> None:
        if self.path is None:
            return  # standard input can be read only once: checked while reading
        with self._open_text() as text:
            header = self._read_header(text)
        if header is not None:
            self._resolve(header[0])

    def _read_header(self, text: io.TextIOWrapper) -> tuple[list[str], Any] | None:
        """The header names and a csv reader positioned after it (None: empty input)."""
        _raise_csv_field_limit()
        first_line = text.readline()
        while first_line and not first_line.strip():
            first_line = text.readline()
        if not first_line:
            return None
        delimiter = "\t" if self.format == "tsv" else ","
        if delimiter not in first_line:
            # A "CSV" from a European spreadsheet often uses semicolons.
            for other in (";", "\t", "|"):
                if other in first_line:
                    logger.info("%s: the header has no %r; using %r", self.describe(), delimiter, other)
                    delimiter = other
                    break
        # a last line of our own: inside a quote that is never closed, it ends up in the last field
        reader = csv.reader(itertools.chain([first_line], text, [_END_OF_INPUT + "\n"]), delimiter=delimiter)
        header = [name.strip() for name in next(reader)]
        return header, reader

    def _iter_raw(self) -> Iterator[_Raw]:
        with self._open_text() as text:
            header = self._read_header(text)
            if header is None:
                return
            names, reader = header
            resolved = self._resolve(names)
            index = {name: names.index(name) for name in resolved.names()}
            positions = [
                index.get(name) if name is not None else None
                for name in (resolved.id, resolved.person, resolved.date, resolved.title, resolved.text)
            ]
            width = len(names)
            raw = _new_raw()
            columns = [raw[name] for name in _FIELDS]
            last_line = reader.line_num
            for record in reader:
                first_line, last_line = last_line + 1, reader.line_num
                if not record:
                    continue  # a blank line between records
                if record[-1].rstrip("\n").endswith(_END_OF_INPUT):
                    if record == [_END_OF_INPUT]:
                        continue  # our own last line: every quote was closed
                    # An unbalanced quote swallowed every line after it into one field:
                    # refuse rather than lose those notes silently.
                    raise InputError(
                        f"{self.describe()}: a quote opened in the record starting at line {first_line} "
                        f"is never closed (it runs to the end of the file, line {reader.line_num - 1}); "
                        f"fix the quoting of that record")
                if len(record) != width:
                    self.stats._malformed(reader.line_num)
                    record = (record + [""] * width)[:width]
                for values, position in zip(columns, positions):
                    values.append(record[position] if position is not None else None)
                if len(columns[0]) >= self.batch_size:
                    yield raw
                    raw = _new_raw()
                    columns = [raw[name] for name in _FIELDS]
            if columns[0]:
                yield raw


#: The line the CSV reader is given after the input's own: a record that holds it in its last
#: field opened a quote that the input never closes (unit separators: not in clinical text).
_END_OF_INPUT = "\x1fvertebro: end of input\x1f"


class _JsonSource(_StreamSource):
    """JSON Lines (one object per line), or a JSON array of objects."""

    def _iter_raw(self) -> Iterator[_Raw]:
        with self._open_binary() as binary:
            buffered = binary if hasattr(binary, "peek") else io.BufferedReader(binary)
            start = buffered.peek(64).lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
            if self.format == "json" and start == b"[":
                records = _json_array_records(buffered, self.encoding, self.describe())
            else:
                records = self._line_records(buffered)
            yield from self._records_to_raw(records)

    def _line_records(self, binary: BinaryIO, *, strip_bom: bool = True) -> Iterator[tuple[int, Any]]:
        encoding = "utf-8" if self.encoding == "utf-8-sig" else self.encoding
        for line_number, line in enumerate(binary, start=1):
            if line_number == 1 and strip_bom:
                line = line.removeprefix(b"\xef\xbb\xbf")
            text = line.decode(encoding, "surrogateescape").strip()
            if not text:
                continue
            try:
                record = json.loads(text)
            except (ValueError, RecursionError):
                record = _MALFORMED
            yield line_number, record

    def _records_to_raw(self, records: Iterator[tuple[int, Any]], *,
                        resolved: _Resolved | None = None, require_valid: bool = True) -> Iterator[_Raw]:
        stats = self.stats
        pending: list[dict] = []
        valid = 0
        for line_number, record in records:
            if record is _MALFORMED or not isinstance(record, dict):
                if stats.malformed_lines < _MAX_LISTED_LINES:
                    # The position only, never the content of the line.
                    logger.warning("%s: line %d is not a JSON object; skipped", self.describe(), line_number)
                stats._malformed(line_number)
                continue
            valid += 1
            pending.append(record)
            if len(pending) >= self.batch_size:
                resolved = resolved or self._resolve(_union_of_keys(pending))
                yield _records_raw(pending, resolved)
                pending = []
        if pending:
            resolved = resolved or self._resolve(_union_of_keys(pending))
            yield _records_raw(pending, resolved)
        if require_valid and not valid and stats.malformed_lines:
            raise InputError(
                f"{self.describe()}: none of the {stats.malformed_lines} non-blank lines is a JSON object"
                " (is it JSON Lines?)"
            )


class _ParquetSource(NoteSource):
    format = "parquet"

    def __init__(self, path: Path, **options: Any) -> None:
        super().__init__(**options)
        self.path = path

    def describe(self) -> str:
        return f"Parquet file {self.path}"

    def fingerprint(self) -> str:
        return _file_sha256(self.path)

    def _parquet_file(self):
        import pyarrow.parquet as pq

        try:
            # A buffered stream reads column chunks piecewise instead of whole.
            return pq.ParquetFile(self.path, buffer_size=_CHUNK_BYTES, pre_buffer=False)
        except Exception as error:  # pyarrow raises ArrowInvalid, OSError, ...
            raise InputError(f"{self.describe()}: not a readable Parquet file ({type(error).__name__})") from None

    def _validate(self) -> None:
        with self._parquet_file() as parquet:
            self._resolve(parquet.schema_arrow.names)

    def _iter_raw(self, row_groups: Sequence[int] | None = None) -> Iterator[_Raw]:
        import pyarrow as pa

        with self._parquet_file() as parquet:
            resolved = self._resolve(parquet.schema_arrow.names)
            names = resolved.names()
            wanted = (resolved.id, resolved.person, resolved.date, resolved.title, resolved.text)
            if row_groups is not None and not row_groups:
                return
            for batch in parquet.iter_batches(batch_size=self.batch_size, columns=names,
                                              row_groups=None if row_groups is None else list(row_groups)):
                raw: _Raw = {}
                for name, column_name in zip(_FIELDS, wanted):
                    if column_name is None:
                        raw[name] = [None] * batch.num_rows
                        continue
                    column = batch.column(column_name)
                    if pa.types.is_timestamp(column.type):
                        # to_pandas keeps nanoseconds and out-of-range years as-is.
                        raw[name] = list(column.to_pandas())
                    elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                        raw[name] = column.to_numpy(zero_copy_only=False).tolist()  # faster than to_pylist
                    else:
                        raw[name] = column.to_pylist()
                yield raw


class _TextFolderSource(NoteSource):
    """A folder of ``.txt`` files, one note each (or a single ``.txt`` file)."""

    format = "txt"

    def __init__(self, path: Path, *, mapping: str | Path | None, encoding: str, **options: Any) -> None:
        super().__init__(**options)
        self.path = path
        self.mapping = _existing(str(mapping)) if mapping is not None else None
        self.encoding = _text_encoding(encoding)

    def describe(self) -> str:
        if self.path.is_file():
            return f"text file {self.path}"
        return f"folder of .txt files {self.path}"

    def _files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        # Sorted by name so that row numbers are reproducible.
        return sorted(
            (entry for entry in self.path.iterdir()
             if entry.suffix.lower() == ".txt" and not entry.name.startswith(".") and entry.is_file()),
            key=lambda entry: entry.name,
        )

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for path in self._files():
            digest.update(path.name.encode("utf-8", "surrogateescape") + b"\0")
            digest.update(bytes.fromhex(_file_sha256(path)))
        if self.mapping is not None:
            digest.update(b"mapping\0" + bytes.fromhex(_file_sha256(self.mapping)))
        return digest.hexdigest()

    def _validate(self) -> None:
        if self.mapping is not None:
            self._load_mapping()

    def _load_mapping(self) -> dict[str, tuple[Any, Any, Any]]:
        """note id -> (person id, date, title) from the mapping CSV."""
        columns = ColumnMap(
            id=self.columns.id, person=self.columns.person, date=self.columns.date,
            title=self.columns.title,
        )
        mapping_source = _DelimitedSource(
            self.mapping, fmt="tsv" if self.mapping.suffix.lower() == ".tsv" else "csv",
            encoding="utf-8", columns=columns, batch_size=10_000, since=None, until=None,
        )
        mapping_source._needs_text = False
        by_note: dict[str, tuple[Any, Any, Any]] = {}
        for raw in mapping_source._iter_raw():
            for note_id, person, note_date, title in zip(raw["id"], raw["person"], raw["date"], raw["title"]):
                by_note[_id_text(note_id)] = (person, note_date, title)
        return by_note

    def _iter_raw(self) -> Iterator[_Raw]:
        by_note = self._load_mapping() if self.mapping is not None else None
        files = self._files()
        if not files:
            others = sorted(entry.name for entry in self.path.iterdir()
                            if entry.is_file() and not entry.name.startswith("."))[:3] if self.path.is_dir() else []
            hint = f" (it holds {', '.join(others)}: give a file's path to read it)" if others else ""
            logger.warning("%s: no .txt file%s", self.describe(), hint)
        raw = _new_raw()
        for path in files:
            note_id = _id_text(path.stem)
            text = path.read_bytes().decode(self.encoding, "surrogateescape")
            person, note_date, title = note_id, None, None
            if by_note is not None:
                found = by_note.get(note_id)
                if found is None:
                    self.stats.unmapped_notes += 1
                else:
                    person, note_date, title = found
            for name, value in zip(_FIELDS, (note_id, person, note_date, title, text)):
                raw[name].append(value)
            if len(raw["id"]) >= self.batch_size:
                yield raw
                raw = _new_raw()
        if raw["id"]:
            yield raw
        if self.stats.unmapped_notes:
            logger.warning(
                "%s: %d notes are not in the mapping; their person id is the note id",
                self.describe(), self.stats.unmapped_notes,
            )


# -- SQL -------------------------------------------------------------------


class _SqlSource(NoteSource):
    """A table (default ``note``) or query behind any SQLAlchemy URL."""

    format = "sql"

    def __init__(self, url: str, *, table: str | None, query: str | None, **options: Any) -> None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        super().__init__(**options)
        if table is not None and query is not None:
            raise InputError("give either table= or query=, not both")
        try:
            self.url = make_url(url)
        except ArgumentError:
            raise InputError(f"not a valid database URL (scheme {url.split('://', 1)[0]!r})") from None
        self.table = table if query is None else None
        self.query = query
        if self.query is None and self.table is None:
            self.table = "note"
        self._statement = None

    @property
    def masked_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def describe(self) -> str:
        if self.query is not None:
            return f"SQL query at {self.masked_url}"
        return f"table {self.table} at {self.masked_url}"

    def fingerprint(self) -> str:
        what = f"query\0{self.query}" if self.query is not None else f"table\0{self.table}"
        return hashlib.sha256(f"{self.masked_url}\0{what}".encode()).hexdigest()

    def _engine(self):
        from sqlalchemy import create_engine

        database = self.url.database
        if self.url.get_backend_name() == "sqlite" and database and database != ":memory:" \
                and not database.startswith("file:") and not Path(database).is_file():
            raise InputError(f"no such file: {database}")  # sqlite would create an empty one
        return create_engine(self.url)

    def _validate(self) -> None:
        if self.query is not None:
            return  # the columns of a query are known once it runs
        engine = self._engine()
        try:
            with _database_errors(self), engine.connect() as connection:
                self._statement = self._table_statement(connection)
        finally:
            engine.dispose()

    def _table_statement(self, connection, id_range: tuple[Any, Any] | None = None):
        """``SELECT`` the note columns ``ORDER BY`` the id column; ``id_range`` (low, high)
        keeps ``low <= column < high`` of the column named ``self.partition_column`` (either
        end None: unbounded)."""
        from sqlalchemy import column, inspect, select
        from sqlalchemy import table as table_clause

        schema, _, name = self.table.rpartition(".")
        schema = schema or None
        inspector = inspect(connection)
        tables = inspector.get_table_names(schema=schema) + inspector.get_view_names(schema=schema)
        actual = name if name in tables else next(
            (found for found in tables if found.casefold() == name.casefold()), None
        )
        if actual is None:
            listed = ", ".join(tables[:30]) or "none"
            raise InputError(f"{self.describe()}: no table {self.table!r}; tables found: {listed}")
        found_columns = [column_info["name"] for column_info in inspector.get_columns(actual, schema=schema)]
        resolved = self._resolve(found_columns)
        names = resolved.names()
        extra = []
        if id_range is not None:
            extra = [self.partition_column] if self.partition_column not in names else []
        source_table = table_clause(actual, *(column(name) for name in names + extra), schema=schema)
        statement = select(*(source_table.c[name] for name in names)).order_by(source_table.c[resolved.id])
        if id_range is not None:
            low, high = id_range
            key = source_table.c[self.partition_column]
            if low is not None:
                statement = statement.where(key >= low)
            if high is not None:
                statement = statement.where(key < high)
        return statement

    partition_column: str | None = None  # set by pipeline.io.partitions for id_range reads

    def _iter_raw(self, id_range: tuple[Any, Any] | None = None) -> Iterator[_Raw]:
        from sqlalchemy import text

        engine = self._engine()
        try:
            with _database_errors(self), engine.connect() as connection:
                statement = self._statement
                if id_range is not None:
                    statement = self._table_statement(connection, id_range)
                elif statement is None:
                    statement = text(self.query) if self.query is not None else self._table_statement(connection)
                result = connection.execution_options(
                    stream_results=True, yield_per=self.batch_size
                ).execute(statement)
                keys = list(result.keys())
                resolved = self._resolve(keys) if self.query is not None else self._resolved
                positions = [
                    keys.index(name) if name is not None else None
                    for name in (resolved.id, resolved.person, resolved.date, resolved.title, resolved.text)
                ]
                for rows in result.partitions():
                    columns = list(zip(*rows))
                    yield {
                        name: list(columns[position]) if position is not None else [None] * len(rows)
                        for name, position in zip(_FIELDS, positions)
                    }
        finally:
            engine.dispose()


@contextmanager
def _database_errors(source: _SqlSource) -> Iterator[None]:
    """Turn a database error into a one-line InputError (the URL shown masked)."""
    from sqlalchemy.exc import DBAPIError, NoSuchModuleError

    try:
        yield
    except NoSuchModuleError as error:
        raise InputError(f"{source.describe()}: no database driver ({error})") from None
    except DBAPIError as error:
        lines = str(error.orig).strip().splitlines()
        detail = lines[0][:200] if lines else ""
        raise InputError(f"{source.describe()}: {type(error.orig).__name__}: {detail}") from None


# -- helpers ---------------------------------------------------------------


_MALFORMED = object()


def _detect_format(spec: str, format: str | None) -> str:
    if format is not None:
        fmt = _FORMAT_ALIASES.get(format.lower().lstrip("."))
        if fmt is None:
            raise InputError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
        if fmt == "sql" and "://" not in spec:
            raise InputError("a SQL input is a SQLAlchemy URL such as sqlite:///notes.db")
        if fmt != "sql" and "://" in spec:
            raise InputError(f"a URL is read as SQL, not as {fmt}")
        return fmt
    if "://" in spec:
        return "sql"
    if spec == "-":
        return "csv"
    path = Path(spec)
    if path.is_dir():
        return "txt"
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes.pop()
    fmt = _FORMAT_ALIASES.get(suffixes[-1].lstrip(".")) if suffixes else None
    if fmt is None or fmt == "sql":
        raise InputError(
            f"cannot tell the format of {spec!r} from its extension; "
            "use .csv .tsv .jsonl .ndjson .json .parquet .pq, a folder of .txt files, "
            "a SQLAlchemy URL, or give the format"
        )
    return fmt


def _text_encoding(encoding: str) -> str:
    """utf-8 is read as utf-8-sig, which drops a leading byte-order mark."""
    return "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


def _existing(spec: str) -> Path:
    path = Path(spec)
    if not path.exists():
        raise InputError(f"no such file or folder: {spec}")
    return path


def _window_start(value: str | date | None) -> pd.Timestamp | None:
    return None if value is None else _timestamp(value, "since")


def _window_end(value: str | date | None) -> pd.Timestamp | None:
    """The exclusive end of the window: a date includes that whole day."""
    if value is None:
        return None
    end = _timestamp(value, "until")
    if end == end.normalize() and not isinstance(value, datetime):
        end += timedelta(days=1)
    return end


def _timestamp(value: str | date, name: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        stamp = pd.NaT
    if pd.isna(stamp):
        raise InputError(f"{name}: not a date: {value!r}")
    return stamp.tz_localize(None) if stamp.tzinfo is not None else stamp


def _resolve_columns(
    found: Sequence[str], columns: ColumnMap, where: str, *, needs_text: bool = True
) -> _Resolved:
    """Map each note field to an input column: exact name, else case-insensitive."""
    by_folded: dict[str, str] = {}
    for name in found:
        by_folded.setdefault(str(name).strip().casefold(), name)

    def lookup(wanted: str) -> str | None:
        if wanted in found:
            return wanted
        return by_folded.get(wanted.strip().casefold())

    defaults = ColumnMap()
    required = {"id": columns.id, "person": columns.person}
    if needs_text:
        required["text"] = columns.text
    resolved = {key: lookup(name) for key, name in required.items()}
    missing = [required[key] for key, actual in resolved.items() if actual is None]

    optional: dict[str, str | None] = {}
    for key, fallbacks in (("date", _DATE_FALLBACKS), ("title", ())):
        wanted = getattr(columns, key)
        actual = lookup(wanted) if wanted is not None else None
        if actual is None and wanted is not None:
            if wanted != getattr(defaults, key):
                missing.append(wanted)
            else:
                actual = next((lookup(name) for name in fallbacks if lookup(name)), None)
        optional[key] = actual
    if missing:
        raise InputError(
            f"{where}: missing column(s) {', '.join(missing)}; found: {_describe_names(found)}"
        )
    return _Resolved(
        id=resolved["id"], person=resolved["person"], date=optional["date"],
        title=optional["title"], text=resolved.get("text"),
    )


def _describe_names(found: Sequence[str]) -> str:
    """The column names found, hiding anything that may be note text.

    A file with no header row has data where the names should be; a value
    that does not look like a column name is only counted, never shown.
    """
    shown = [str(name) for name in found if _COLUMN_NAME.match(str(name).strip())]
    hidden = len(found) - len(shown)
    parts = shown[:30]
    if len(shown) > 30:
        parts.append(f"... {len(shown) - 30} more")
    if hidden:
        parts.append(f"{hidden} value(s) that do not look like column names (no header row?)")
    return ", ".join(parts) if parts else "nothing"


def _union_of_keys(records: list[dict]) -> list[str]:
    return list(dict.fromkeys(key for record in records for key in record))


def _records_raw(records: list[dict], resolved: _Resolved) -> _Raw:
    wanted = (resolved.id, resolved.person, resolved.date, resolved.title, resolved.text)
    raw = _new_raw()
    for record in records:
        for name, key in zip(_FIELDS, wanted):
            raw[name].append(_get_key(record, key) if key is not None else None)
    return raw


def _get_key(record: dict, key: str) -> Any:
    if key in record:
        return record[key]
    folded = key.casefold()
    return next((value for name, value in record.items() if name.casefold() == folded), None)


def _json_array_records(binary: BinaryIO, encoding: str, where: str) -> Iterator[tuple[int, Any]]:
    """Stream the elements of a top-level JSON array, yielding (element number from 1, value)."""
    text = io.TextIOWrapper(binary, encoding=encoding, errors="surrogateescape")
    try:
        yield from _array_elements(text, where)
    finally:
        # the caller closes the file: detached, the wrapper is not left unclosed (a ResourceWarning)
        with contextlib.suppress(ValueError):
            text.detach()


def _array_elements(text: io.TextIOBase, where: str) -> Iterator[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    buffer, position, at_end = "", 0, False
    read_size = _CHUNK_BYTES

    def refill() -> None:
        nonlocal buffer, position, at_end
        chunk = text.read(read_size)
        at_end = not chunk
        buffer, position = buffer[position:] + chunk, 0

    def skip_blank() -> bool:
        """Move to the next non-blank character; False at the end of input."""
        nonlocal position
        while True:
            while position < len(buffer) and buffer[position] in " \t\r\n,":
                position += 1
            if position < len(buffer):
                return True
            if at_end:
                return False
            refill()

    refill()
    if not skip_blank() or buffer[position] != "[":
        raise InputError(f"{where}: expected a JSON array")
    position += 1
    index = 1
    while skip_blank():
        if buffer[position] == "]":
            return
        try:
            value, end = decoder.raw_decode(buffer, position)
        except ValueError:
            if at_end:
                raise InputError(f"{where}: element {index} of the JSON array is not valid JSON") from None
            read_size = min(read_size * 2, 1 << 28)  # a long note: read more at once
            refill()
            continue
        if end == len(buffer) and not at_end:
            refill()  # a number or literal may continue in the next chunk
            continue
        read_size = _CHUNK_BYTES
        position = end
        yield index, value
        index += 1
    raise InputError(f"{where}: the JSON array is not closed")


def _new_raw() -> _Raw:
    return {name: [] for name in _FIELDS}


def _rebatch(chunks: Iterator[_Raw], size: int, max_chars: int = BATCH_CHARS) -> Iterator[_Raw]:
    """Regroup raw chunks of any length into chunks of ``size`` rows (the last shorter), each
    ending early once its texts reach ``max_chars`` characters (a longer text alone).

    Where a batch ends depends only on the input, so a resumed run cuts the same batches.
    """
    pending = _new_raw()
    count = chars = 0
    for chunk in chunks:
        length = len(chunk["id"])
        lengths = [len(text) if isinstance(text, (str, bytes)) else 0 for text in chunk["text"]]
        if count == 0 and length == size and sum(lengths) < max_chars:
            yield chunk
            continue
        start = 0
        while start < length:
            take = min(size - count, length - start)
            for position in range(start, start + take):  # stop after the text that reaches max_chars
                chars += lengths[position]
                if chars >= max_chars:
                    take = position - start + 1
                    break
            for name in _FIELDS:
                pending[name].extend(chunk[name][start:start + take])
            count += take
            start += take
            if count == size or chars >= max_chars:
                yield pending
                pending, count, chars = _new_raw(), 0, 0
    if count:
        yield pending


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and value != value


def _id_text(value: Any) -> str:
    """An id as a string: 12, 12.0 and "12" are the same id; missing is ""."""
    if type(value) is str:  # the common case, first
        text = value.strip()
        if "." in text:
            integral = _INTEGRAL_FLOAT.match(text)
            if integral:
                text = integral.group(1).lstrip("+")
        return text
    if _is_missing(value):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if number != number:
            return ""
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, bytes):
        text = value.decode("utf-8", "surrogateescape").strip()
    else:
        text = str(value).strip()
    integral = _INTEGRAL_FLOAT.match(text)
    if integral:
        text = integral.group(1).lstrip("+")
    return text


def _title_text(value: Any) -> str:
    if type(value) is str:
        return value
    if _is_missing(value):
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value if isinstance(value, str) else str(value)


def _note_text(value: Any) -> str | None:
    if type(value) is str:
        return value
    if _is_missing(value):
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value if isinstance(value, str) else str(value)


def _date_text(value: Any) -> str | None:
    """A date value as ISO text for parsing; None when missing."""
    if type(value) is str:
        return value.strip() or None
    if _is_missing(value):
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (datetime, date)):  # also pandas Timestamp
        return value.isoformat()
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").strip() or None
    return str(value)


def parse_note_dates(values) -> pd.Series:
    """A date column as the readers parse it: ISO 8601 dates and datetimes (mixed in one
    column or not), the local wall-clock time of one with a zone, NaT when missing or not a date."""
    return _parse_dates(list(values))[0]


def _parse_dates(values: list) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Parse ISO dates to datetime64[ns]; returns (dates, missing, unparseable)."""
    texts = [_date_text(value) for value in values]
    missing = np.fromiter((text is None for text in texts), dtype=bool, count=len(texts))
    texts = [_drop_time_zone(text) if text is not None and 16 <= len(text) <= 40 else text for text in texts]
    dates = pd.to_datetime(pd.Series(texts, dtype=object), format="ISO8601", errors="coerce")
    if dates.dtype != "datetime64[ns]":
        # pandas 3 parses at the resolution the text needs: a date that datetime64[ns] cannot
        # hold (outside 1677-2262, e.g. a "9999-12-31" placeholder) is unparseable, as in pandas 2
        dates = dates.mask(dates.notna() & ((dates < pd.Timestamp.min) | (dates > pd.Timestamp.max)))
    dates = dates.astype("datetime64[ns]")
    unparseable = dates.isna().to_numpy() & ~missing
    return dates, missing, unparseable


def _drop_time_zone(text: str) -> str:
    """Keep the wall-clock time of "2021-03-04T23:30:00-05:00": the local date is the clinical one."""
    return _TIME_ZONE_SUFFIX.sub(r"\1", text)


def _notes_frame(note_ids, person_ids, titles, dates, texts, first_row: int) -> pd.DataFrame:
    count = len(note_ids)
    return pd.DataFrame(
        {
            "row": np.arange(first_row, first_row + count, dtype=np.int64),
            "note_id": pd.Series(note_ids, dtype=object),
            "person_id": pd.Series(person_ids, dtype=object),
            "note_date": pd.Series(dates.to_numpy(), dtype="datetime64[ns]"),
            "note_title": pd.Series(titles, dtype=object),
            "note_text": pd.Series(texts, dtype=object),
        },
        columns=list(NOTE_COLUMNS),
    )


class _SeenIds:
    """Counts repeated note ids with 8 bytes per distinct id.

    Ids are kept as 64-bit hashes in a few sorted arrays of doubling sizes
    (merged like a log-structured tree), so a check costs a binary search per
    array. A hash collision (odds ~n²/2⁶⁵) could only over-count by one.
    """

    def __init__(self) -> None:
        self._levels: list[np.ndarray] = []

    def count_repeats(self, note_ids: list[str]) -> int:
        """How many of ``note_ids`` (ignoring "") were seen before, here or earlier."""
        present = [note_id for note_id in note_ids if note_id]
        if not present:
            return 0
        hashes = pd.util.hash_array(np.asarray(present, dtype=object))
        distinct = np.unique(hashes)
        new = np.ones(len(distinct), dtype=bool)
        for level in self._levels:
            found = np.searchsorted(level, distinct)
            found[found == len(level)] = 0
            new &= level[found] != distinct
        fresh = distinct[new]
        self._add(fresh)
        return len(present) - len(fresh)

    def _add(self, hashes: np.ndarray) -> None:
        if not len(hashes):
            return
        self._levels.append(hashes)
        while len(self._levels) > 1 and len(self._levels[-2]) <= 2 * len(self._levels[-1]):
            newest = self._levels.pop()
            self._levels[-1] = np.union1d(self._levels[-1], newest)


class _HashingReader(io.RawIOBase):
    """Reads a binary stream, hashing what passes (standard input's fingerprint)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._digest = hashlib.sha256()
        self.exhausted = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        read = getattr(self._stream, "read1", self._stream.read)
        data = read(len(buffer))
        if not data:
            self.exhausted = True
            return 0
        self._digest.update(data)
        buffer[: len(data)] = data
        return len(data)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _raise_csv_field_limit() -> None:
    """Let the csv module read a note of any length (the default is 128 KiB)."""
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 2
