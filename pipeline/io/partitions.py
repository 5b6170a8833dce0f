"""Read an input as independent partitions (for the Dask engine), with the local readers' results.

:func:`plan_partitions` looks at the inputs on the client (metadata only: a
Parquet footer, JSON Lines byte offsets, a SQL ``min``/``max``) and returns a
list of :class:`Partition` tasks, or ``None`` when an input cannot be split
safely (then the client reads it, as the local engine does).
:func:`read_partition`, run on a worker, yields the canonical notes frames of
one partition, through the readers' own canonicalisation
(:meth:`NoteSource.canonical_batches`): same ids, dates, NUL and
undecodable-byte handling, ``--since/--until`` window, statistics.

``row`` numbers: a partition numbers its notes from 0; the client adds the
number of notes of all earlier partitions (a cumulative sum taken in
partition order), which gives exactly the local readers' numbering, with or
without ``--since/--until``, without a pre-pass. The statistics of the
partitions are summed on the client; duplicate ids are counted there from
the note ids, in input order, as the local reader does.

=================  ==========================================================
Parquet            consecutive row groups (at least ``batch_size`` rows per
                   partition), from the footer
JSON Lines         byte ranges ending at a line end (``.jsonl``/``.ndjson``,
                   uncompressed, UTF-8); malformed-line numbers are made
                   global with the line counts of earlier ranges
SQL table          ranges of a numeric id column (``partition_column``, default
                   the note id column), each read ``ORDER BY`` the id
CSV / TSV, JSON    the client (quoted notes may span lines: a byte range can
array, ``.txt``    start inside a note); also compressed files, standard input,
folders, queries   SQL queries, ids with NULLs, a partition column other than
                   the id
=================  ==========================================================
"""

from __future__ import annotations

import copy
import io
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from itertools import pairwise
from typing import Any

import pandas as pd

from .readers import (
    _COMPRESSED,
    _MAX_LISTED_LINES,
    InputError,
    NoteSource,
    ReadStats,
    _DelimitedSource,
    _JsonSource,
    _ParquetSource,
    _SeenIds,
    _SqlSource,
)

logger = logging.getLogger(__name__)

JSONL_BLOCK_BYTES = 32 << 20  # byte range of a JSON Lines partition at most (and at least 1/target of the file)
MIN_BLOCK_BYTES = 1 << 20     # ... but not smaller than this


@dataclass(frozen=True)
class Partition:
    """One task's share of one input. ``source`` is a copy of the client's :class:`NoteSource`."""

    index: int               # position in the whole plan (input order)
    source_index: int        # which input
    source: NoteSource
    kind: str                # "parquet" | "jsonl" | "sql"
    where: tuple             # row groups | (start byte, end byte) | (low id, high id)

    def describe(self) -> str:
        return f"{self.kind} partition {self.index} {self.where!r}"


class PartitionRead:
    """The canonical frames of one partition; after iterating, ``stats`` and ``lines`` are complete."""

    def __init__(self, partition: Partition) -> None:
        self.partition = partition
        self.source = copy.copy(partition.source)
        self.source.stats = ReadStats()
        self.lines = 0  # JSON Lines: lines in the byte range

    def __iter__(self) -> Iterator[pd.DataFrame]:
        return self.source.canonical_batches(self._raw(), start_row=0, seen_ids=_SeenIds())

    @property
    def stats(self) -> ReadStats:
        return self.source.stats

    def _raw(self):
        part, source = self.partition, self.source
        if part.kind == "parquet":
            yield from source._iter_raw(row_groups=part.where)
        elif part.kind == "jsonl":
            start, end = part.where
            with open(source.path, "rb") as stream:
                stream.seek(start)
                data = stream.read(end - start)
            self.lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
            records = source._line_records(io.BytesIO(data), strip_bom=start == 0)
            yield from source._records_to_raw(records, resolved=source._resolved, require_valid=False)
        elif part.kind == "sql":
            yield from source._iter_raw(id_range=part.where)
        else:
            raise ValueError(part.kind)


def read_partition(partition: Partition) -> PartitionRead:
    """Iterate the result for the canonical frames (``row`` from 0); then read ``.stats``, ``.lines``."""
    return PartitionRead(partition)


# -- the plan (on the client) ---------------------------------------------------


def plan_partitions(sources: Sequence[NoteSource], *, target: int = 8,
                    partition_column: str | None = None) -> tuple[list[Partition] | None, str]:
    """Partitions of all ``sources`` in input order, or ``(None, reason)`` to read on the client.

    ``target`` is the number of partitions wanted per input (a few per worker thread).
    """
    plan: list[Partition] = []
    for number, source in enumerate(sources):
        if isinstance(source, _ParquetSource):
            parts = _parquet_parts(source)
        elif isinstance(source, _JsonSource):
            parts, reason = _jsonl_parts(source, target)
            if parts is None:
                return None, reason
        elif isinstance(source, _SqlSource):
            parts, reason = _sql_parts(source, target, partition_column)
            if parts is None:
                return None, reason
        elif isinstance(source, _DelimitedSource):
            return None, (f"{source.describe()}: CSV is read by the client (a quoted note may span lines, "
                          "so a byte range can start inside a note)")
        else:
            return None, f"{source.describe()}: read by the client"
        kind = {"_ParquetSource": "parquet", "_JsonSource": "jsonl", "_SqlSource": "sql"}[type(source).__name__]
        shipped = copy.copy(source)
        shipped.stats = ReadStats()
        if isinstance(shipped, _SqlSource):
            shipped._statement = None
        for where in parts:
            plan.append(Partition(index=len(plan), source_index=number, source=shipped, kind=kind, where=where))
    if partition_column is not None and not any(isinstance(s, _SqlSource) for s in sources):
        logger.warning("--partition-column applies to SQL inputs only; ignored")
    return plan, f"{len(plan)} partitions"


def _parquet_parts(source: _ParquetSource) -> list[tuple[int, ...]]:
    with source._parquet_file() as parquet:
        metadata = parquet.metadata
        sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    parts, current, rows = [], [], 0
    for group, size in enumerate(sizes):
        current.append(group)
        rows += size
        if rows >= source.batch_size:
            parts.append(tuple(current))
            current, rows = [], 0
    if current:
        parts.append(tuple(current))
    return parts


def _jsonl_parts(source: _JsonSource, target: int) -> tuple[list | None, str]:
    where = source.describe()
    if source.format != "jsonl":
        return None, f"{where}: a .json file is read by the client (one array cannot be split)"
    if source.path is None:
        return None, f"{where}: standard input is read by the client"
    if source.path.suffix.lower() in _COMPRESSED:
        return None, f"{where}: a compressed file is read by the client (it cannot be split by bytes)"
    if source.encoding.lower().replace("_", "-") not in ("utf-8-sig", "utf-8", "ascii"):
        return None, f"{where}: encoding {source.encoding} is read by the client"
    # the columns, resolved from the first records exactly as the local reader does
    records = source._iter_raw()
    try:
        first = next(records, None)
    finally:
        records.close()
    if first is None or source._resolved is None:
        return None, f"{where}: no JSON object in the first lines; read by the client"
    size = source.path.stat().st_size
    block = max(MIN_BLOCK_BYTES, min(JSONL_BLOCK_BYTES, math.ceil(size / max(1, target))))
    bounds = [0]
    with open(source.path, "rb") as stream:
        while bounds[-1] + block < size:
            stream.seek(bounds[-1] + block - 1)
            stream.readline()  # to the end of the line holding the byte before the cut
            position = stream.tell()
            if position >= size:
                break
            bounds.append(position)
    bounds.append(size)
    return [(start, end) for start, end in pairwise(bounds) if end > start] or [(0, 0)], ""


_INTEGER_TYPES = ("INT", "SERIAL")
_NUMERIC_TYPES = _INTEGER_TYPES + ("NUMERIC", "DECIMAL", "REAL", "FLOAT", "DOUBLE", "NUMBER")


def _sql_parts(source: _SqlSource, target: int, partition_column: str | None) -> tuple[list | None, str]:
    from sqlalchemy import column, func, inspect, select
    from sqlalchemy import table as table_clause

    from .readers import _database_errors

    where = source.describe()
    if source.query is not None:
        return None, f"{where}: a query is read by the client (only a table can be split by id ranges)"
    resolved = source._resolved
    key = partition_column or resolved.id
    if key.casefold() != resolved.id.casefold():
        return None, (f"{where}: rows are numbered in {resolved.id} order, so only the id column can "
                      f"partition them identically; --partition-column {key} ignored, read by the client")
    key = resolved.id
    engine = source._engine()
    try:
        with _database_errors(source), engine.connect() as connection:
            schema, _, name = source.table.rpartition(".")
            schema = schema or None
            inspector = inspect(connection)
            tables = inspector.get_table_names(schema=schema) + inspector.get_view_names(schema=schema)
            actual = name if name in tables else next(t for t in tables if t.casefold() == name.casefold())
            types = {info["name"]: str(info["type"]).upper() for info in inspector.get_columns(actual, schema=schema)}
            kind = types.get(key, "")
            if not any(word in kind for word in _NUMERIC_TYPES):
                return None, f"{where}: the id column {key} is not numeric ({kind or 'unknown'}); read by the client"
            table = table_clause(actual, column(key), schema=schema)
            low, high, present, count = connection.execute(select(
                func.min(table.c[key]), func.max(table.c[key]), func.count(table.c[key]), func.count())).one()
            nulls = count - present
    finally:
        engine.dispose()
    if nulls:
        return None, f"{where}: {nulls} rows have no {key}; read by the client"
    if not count or low is None:
        return [(None, None)], ""
    parts = max(1, min(target, math.ceil(count / source.batch_size)))
    integral = any(word in kind for word in _INTEGER_TYPES) and float(low).is_integer() and float(high).is_integer()
    if integral:
        width = max(1, math.ceil((int(high) - int(low) + 1) / parts))
        edges = [int(low) + width * k for k in range(1, parts) if int(low) + width * k <= int(high)]
    else:
        width = (float(high) - float(low)) / parts
        edges = sorted({float(low) + width * k for k in range(1, parts)} - {float(low)})
    bounds = [None] + edges + [None]
    source.partition_column = key
    return [(start, end) for start, end in pairwise(bounds)], ""


# -- merging on the client --------------------------------------------------------


class PlanStats:
    """Sums the partitions' statistics per input, in input order, as the local readers count them."""

    _SUMMED: tuple[str, ...] = tuple(f.name for f in fields(ReadStats) if f.type in ("int", int))

    def __init__(self, sources: Sequence[NoteSource]) -> None:
        self.sources = sources
        self.stats = [ReadStats() for _ in sources]
        self.seen = [_SeenIds() for _ in sources]
        self.lines = [0 for _ in sources]
        self.valid_lines = [0 for _ in sources]

    def add(self, partition: Partition, stats: ReadStats | dict, lines: int, note_ids: list[str]) -> None:
        """Add one partition's facts; call in partition order."""
        number = partition.source_index
        stats = ReadStats(**stats) if isinstance(stats, dict) else stats
        total = self.stats[number]
        for name in self._SUMMED:
            if name != "duplicate_ids":
                setattr(total, name, getattr(total, name) + getattr(stats, name))
        for line in stats.malformed_line_numbers:
            if len(total.malformed_line_numbers) < _MAX_LISTED_LINES:
                total.malformed_line_numbers.append(line + self.lines[number])
        self.lines[number] += lines
        total.duplicate_ids += self.seen[number].count_repeats(note_ids)

    def finish(self) -> None:
        """Give each source its statistics (as after a local read)."""
        for source, stats in zip(self.sources, self.stats):
            if isinstance(source, _JsonSource) and not stats.rows and not stats.filtered_out \
                    and stats.malformed_lines:
                raise InputError(f"{source.describe()}: none of the {stats.malformed_lines} non-blank lines "
                                 "is a JSON object (is it JSON Lines?)")
            source.stats = stats
            source._log_summary()


def partition_facts(read: PartitionRead) -> dict[str, Any]:
    """What the client needs of a finished partition besides its frames (JSON-able)."""
    return {"stats": read.stats.as_dict(), "lines": read.lines}
