"""Write run outputs atomically, readable by their owner only.

Every writer goes through :func:`atomic_path`: the content is written to a
temporary file in the destination folder, flushed to disk, then renamed over
the final name. A reader (or a resumed run) therefore sees either the old
file or the complete new one, never half a CSV; a failure leaves neither a
partial file nor the temporary one behind.

Files are created ``0o600`` and missing folders ``0o700`` by default: the
outputs quote note text. Pass ``mode=`` to share a file deliberately.

Example::

    write_csv(patients, outdir / "patients.csv")
    with atomic_path(outdir / "report.xlsx") as tmp:
        workbook.save(tmp)
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FILE_MODE = 0o600
DIR_MODE = 0o700


def make_private_dir(path: str | os.PathLike, *, mode: int = DIR_MODE) -> Path:
    """Create ``path`` and any missing parents with ``mode``; existing folders are left as they are."""
    path = Path(path)
    missing = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        with suppress(FileExistsError):  # another process made it meanwhile
            folder.mkdir(mode=mode)
            os.chmod(folder, mode)  # mkdir's mode is filtered by the umask
    return path


@contextmanager
def atomic_path(final: str | os.PathLike, *, mode: int = FILE_MODE) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``final`` atomically.

    The temporary file is created empty with owner-only permissions next to
    ``final`` (same file system, so the rename is atomic), fsynced, given
    ``mode`` and renamed. If the block raises, the temporary file is removed,
    ``final`` is untouched, and the exception propagates.
    """
    final = Path(final)
    make_private_dir(final.parent)
    handle, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        _fsync(temporary)
        os.chmod(temporary, mode)
        os.replace(temporary, final)
    except BaseException:
        with suppress(FileNotFoundError):
            temporary.unlink()
        raise
    _fsync_folder(final.parent)


def write_csv(df: pd.DataFrame, path: str | os.PathLike, *, mode: int = FILE_MODE) -> Path:
    """Write ``df`` as UTF-8 CSV with ``\\n`` line endings and no index.

    Booleans are ``true``/``false``; missing values are empty; a datetime is
    ``YYYY-MM-DD`` when its time is midnight, else ISO ``YYYY-MM-DDTHH:MM:SS``.
    """
    path = Path(path)
    # Column by position: a frame may repeat a column name.
    formatted = pd.DataFrame({i: _csv_column(df.iloc[:, i]) for i in range(df.shape[1])}, index=df.index)
    formatted.columns = df.columns
    with atomic_path(path, mode=mode) as temporary:
        formatted.to_csv(temporary, index=False, encoding="utf-8", lineterminator="\n", na_rep="")
    return path


def write_csv_frames(frames: Iterable[pd.DataFrame], path: str | os.PathLike, *,
                     columns: Sequence[str], mode: int = FILE_MODE) -> Path:
    """Write several frames one after the other as one CSV (as :func:`write_csv` would
    write their concatenation), holding one frame in memory at a time."""
    path = Path(path)
    with atomic_path(path, mode=mode) as temporary:
        with open(temporary, "w", encoding="utf-8", newline="") as stream:
            header = True
            for df in frames:
                formatted = pd.DataFrame({i: _csv_column(df.iloc[:, i]) for i in range(df.shape[1])},
                                         index=df.index)
                formatted.columns = df.columns
                formatted.to_csv(stream, index=False, header=header, lineterminator="\n", na_rep="")
                header = False
            if header:  # no frame: the header alone
                pd.DataFrame(columns=list(columns)).to_csv(stream, index=False, lineterminator="\n")
    return path


def write_parquet_frames(frames: Iterable[pd.DataFrame], path: str | os.PathLike, *,
                         empty: pd.DataFrame, mode: int = FILE_MODE) -> Path:
    """Write several frames as the row groups of one Parquet file (the first
    frame's schema; ``empty`` gives it when there is no frame)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    with atomic_path(path, mode=mode) as temporary:
        writer = None
        try:
            for df in frames:
                table = pa.Table.from_pandas(df, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(temporary, table.schema)
                elif table.schema != writer.schema:
                    table = table.cast(writer.schema)
                writer.write_table(table)
            if writer is None:
                empty.to_parquet(temporary, index=False, engine="pyarrow")
        finally:
            if writer is not None:
                writer.close()
    return path


def write_parquet(df: pd.DataFrame, path: str | os.PathLike, *, mode: int = FILE_MODE) -> Path:
    """Write ``df`` as Parquet (pyarrow, no index)."""
    path = Path(path)
    with atomic_path(path, mode=mode) as temporary:
        df.to_parquet(temporary, index=False, engine="pyarrow")
    return path


def write_json(obj: Any, path: str | os.PathLike, *, mode: int = FILE_MODE) -> Path:
    """Write ``obj`` as indented UTF-8 JSON.

    Dataclasses, paths, dates, numpy and pandas scalars, sets and frames'
    records are converted; NaN and NaT become ``null`` (strict JSON).
    """
    text = json.dumps(_jsonable(obj), ensure_ascii=False, indent=2, allow_nan=False) + "\n"
    return write_text(text, path, mode=mode)


def write_text(text: str, path: str | os.PathLike, *, mode: int = FILE_MODE) -> Path:
    """Write ``text`` as UTF-8, line endings as given."""
    path = Path(path)
    with atomic_path(path, mode=mode) as temporary:
        with open(temporary, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
    return path


# -- helpers ---------------------------------------------------------------


def _fsync(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable; not every file system allows it, hence best effort."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def _csv_column(column: pd.Series) -> pd.Series:
    """``column`` as :func:`_csv_value` formats each value; whole columns at a time where possible."""
    dtype = column.dtype
    if dtype == bool:
        return pd.Series(np.where(column.to_numpy(), "true", "false"), index=column.index, dtype=object)
    if pd.api.types.is_bool_dtype(dtype):  # nullable boolean
        return column.astype(object).map(_csv_value)
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return _iso_datetimes(column)
    if dtype == object:
        kind = pd.api.types.infer_dtype(column, skipna=True)
        if kind in ("string", "empty"):  # text, missing values: "" (as _csv_value)
            missing = column.isna()
            return column.where(~missing, "") if missing.any() else column
        return column.map(_csv_value)
    return column


def _csv_value(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (datetime, np.datetime64)):  # also pandas Timestamp
        return _iso_datetime(pd.Timestamp(value))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value


def _iso_datetimes(column: pd.Series) -> pd.Series:
    text = pd.Series("", index=column.index, dtype=object)
    present = column.notna()
    midnight = present & (column == column.dt.normalize())
    text[midnight] = column[midnight].dt.strftime("%Y-%m-%d")
    timed = present & ~midnight
    text[timed] = [stamp.isoformat() for stamp in column[timed]]
    return text


def _iso_datetime(stamp: pd.Timestamp) -> str:
    if pd.isna(stamp):
        return ""
    if stamp == stamp.normalize():
        return stamp.date().isoformat()
    return stamp.isoformat()


def _jsonable(obj: Any) -> Any:
    """A structure ``json.dumps`` accepts, with NaN/NaT as None."""
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, Mapping):
        return {str(key): _jsonable(value) for key, value in obj.items()}
    if is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(asdict(obj))
    if isinstance(obj, pd.DataFrame):
        return [_jsonable(record) for record in obj.to_dict(orient="records")]
    if isinstance(obj, (pd.Series, np.ndarray)):
        return [_jsonable(value) for value in obj.tolist()]
    if isinstance(obj, (set, frozenset)):
        return [_jsonable(value) for value in sorted(obj, key=str)]
    if isinstance(obj, (list, tuple)):
        return [_jsonable(value) for value in obj]
    if obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, np.datetime64):
        return None if np.isnat(obj) else pd.Timestamp(obj).isoformat()
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot write a {type(obj).__name__} as JSON")
