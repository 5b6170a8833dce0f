"""Run a whole job: read → extract (an engine) → screen → write the run folder.

The run folder (SPEC §5) is written at the end, file by file, atomically.
While the job runs, each finished batch is saved under ``OUTDIR/.work/``
(``notes-NNNNNN.parquet``, ``mentions-NNNNNN.parquet``) and recorded in
``OUTDIR/.work/checkpoint.json``; ``resume=True`` skips the batches already
done. A checkpoint belongs to one input fingerprint, rule set, config and
batch size: resuming with anything else is refused.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import logging
import multiprocessing
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import BATCH_CHARS, __version__
from .config import Config, config_hash, load_config
from .engines.local import map_in_workers, run_batches
from .io.readers import ColumnMap, InputError, NoteSource, iter_notes, parse_note_dates
from .io.writers import (make_private_dir, write_csv, write_csv_frames, write_json, write_parquet,
                         write_parquet_frames)
from .nlp.extract import (DEFERRED, DEFERRED_TEXT, MENTION_COLUMNS, NOTE_COLUMNS, NOTE_FLAGS, BatchProcessor,
                          empty_frame)
from .prefilter import Prefilter, compile_prefilter
from .screening import screen_patients
from .screening.contraindications import outside_window
from .screening.frame import affirmed_mask, as_dates, as_text, patient_groups

logger = logging.getLogger(__name__)

WORK = ".work"


class RunError(RuntimeError):
    """The run cannot go on (one line, no note text)."""


@dataclass
class RunResult:
    """What a run returns. For :func:`run_job`, ``notes`` and ``mentions`` are what the
    report read (the processed notes and the mentions of the patients it lists; empty
    for ``extract``); the files in the run folder hold every note and mention.
    :func:`screen` returns all."""

    notes: pd.DataFrame
    mentions: pd.DataFrame
    patients: pd.DataFrame | None
    manifest: dict = field(default_factory=dict)


def versions() -> dict[str, str]:
    import medspacy
    import spacy
    return {"vertebro": __version__, "spacy": spacy.__version__, "medspacy": medspacy.__version__,
            "pandas": pd.__version__, "python": platform.python_version()}


def _run_key(fingerprints: list[str], rule_files: dict, config: Config | None, batch_size: int,
             defer: bool = False) -> str:
    content = json.dumps({"inputs": fingerprints, "rules": rule_files, "batch_size": batch_size,
                          "batch_chars": BATCH_CHARS,
                          "config": config_hash(config) if config else None, "defer": defer},
                         sort_keys=True)
    return hashlib.sha256(content.encode()).hexdigest()


def _fingerprint_before_reading(source: NoteSource) -> str | None:
    """The input's fingerprint, or None for standard input (known only once read)."""
    try:
        return source.fingerprint()
    except RuntimeError:
        return None


def _load_checkpoint(work: Path, key: str, resume: bool) -> set[int]:
    path = work / "checkpoint.json"
    if not resume:
        if work.exists():
            shutil.rmtree(work)
        return set()
    if not path.exists():
        if work.exists():
            shutil.rmtree(work)
        return set()
    state = json.loads(path.read_text())
    if state.get("key") != key:
        raise RunError("cannot resume: the input, rules, config, batch size or --all-mentions "
                       "differ from the interrupted run (start again without --resume)")
    return set(state.get("done", []))


def _save_checkpoint(work: Path, key: str, done: set[int], **extra) -> None:
    """Record the finished batches (and, in ``extra``, the second pass's) atomically."""
    path = work / "checkpoint.json"
    state = json.loads(path.read_text()) if path.exists() else {}
    state.update({"key": key, "done": sorted(done)})
    state.update({name: sorted(value) for name, value in extra.items()})
    write_json(state, path)


def store_part(work: Path, index: int, notes: pd.DataFrame, mentions: pd.DataFrame) -> None:
    """Save one finished batch: its note rows, its mentions and, if any, its deferred notes.

    Deferred notes keep their row (status ``deferred``) in ``notes-NNNNNN``;
    their text goes to ``deferred-NNNNNN.parquet`` (owner-only, in the work
    folder, deleted with it) until the second pass.
    """
    if DEFERRED_TEXT in notes:
        deferred = notes[notes["status"] == DEFERRED]
        if len(deferred):
            write_parquet(deferred[[*DEFERRED_ROW_COLUMNS, DEFERRED_TEXT]]
                          .rename(columns={DEFERRED_TEXT: "note_text"}).reset_index(drop=True),
                          work / f"deferred-{index:06d}.parquet")
        notes = notes.drop(columns=[DEFERRED_TEXT])
    write_parquet(notes, work / f"notes-{index:06d}.parquet")
    write_parquet(mentions, work / f"mentions-{index:06d}.parquet")


#: What a deferred note is kept with besides its text (the canonical note columns).
DEFERRED_ROW_COLUMNS = ["row", "note_id", "person_id", "note_date", "note_title"]


def extract_to_parts(sources: Sequence[NoteSource], outdir: Path, processor: BatchProcessor, *,
                     config: Config | None, workers: int, resume: bool,
                     progress: Callable[[int], None] | None = None,
                     engine: str = "local", scheduler: str | None = None, session=None,
                     read_on: str = "workers", partition_column: str | None = None) -> dict:
    """Run the extraction into checkpointed parts; return timing and count facts."""
    work = make_private_dir(outdir) / WORK
    fingerprints = [_fingerprint_before_reading(source) for source in sources]
    if resume and None in fingerprints:
        raise RunError("cannot resume a run that reads standard input")
    plan = None
    if session is not None and read_on == "workers":
        from .io.partitions import plan_partitions
        plan, reason = plan_partitions(sources, target=max(4, 2 * session.threads()),
                                       partition_column=partition_column)
        logger.info("Dask: %s", reason if plan is None else f"the workers read the input ({reason})")
        session.read = "partitions" if plan is not None else "client"
    key = _run_key(fingerprints + ([repr([(p.kind, p.where) for p in plan])] if plan is not None else []),
                   processor.rules.files, config, sources[0].batch_size if sources else 0,
                   defer=processor.defer)
    done = _load_checkpoint(work, key, resume)
    make_private_dir(work)
    if plan is not None:
        from .engines.dask import extract_partitions
        return extract_partitions(plan, sources, work, processor, session, done=done, key=key,
                                  fingerprints=fingerprints, progress=progress)
    skipped = 0

    def pending():
        nonlocal skipped
        for index, batch in enumerate(iter_notes(sources)):
            if index in done:
                skipped += len(batch)
                if progress:
                    progress(len(batch))
                continue
            yield index, batch

    started = time.perf_counter()
    if engine == "dask":
        from .engines.dask import run_batches_dask
        results = run_batches_dask(pending(), processor, workers=workers, scheduler=scheduler,
                                   session=session)
    else:
        results = run_batches(pending(), processor, workers=workers)
    for index, notes, mentions in results:
        store_part(work, index, notes, mentions)
        done.add(index)
        _save_checkpoint(work, key, done)
        if progress:
            progress(len(notes))
    return {"extract_seconds": round(time.perf_counter() - started, 3), "resumed_notes": skipped,
            "fingerprints": fingerprints, "run_key": key}


# --------------------------------------------------------------------------------------------
# The second pass of ``screen``: deferred notes, for the patients with a fracture
# --------------------------------------------------------------------------------------------

def fracture_people(mentions: pd.DataFrame) -> set[str]:
    """Patients with an affirmed FRACTURE mention: those whose deferred notes screening reads.

    Screening assesses infection, coagulopathy, anticoagulants, pain and
    the rest only for a patient with a fracture (a window around the index
    date; see :func:`pipeline.screening.contraindications.in_window`), and
    every FRACTURE mention comes from the first pass, so this set is final
    after it.
    """
    fractures = mentions[(mentions["concept"] == "FRACTURE") & affirmed_mask(mentions)]
    return set(fractures["person_id"].astype(str))


def merge_deferred(notes: pd.DataFrame, mentions: pd.DataFrame, deferred: pd.DataFrame,
                   new_notes: pd.DataFrame, new_mentions: pd.DataFrame
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Replace the ``deferred`` notes' rows by the second pass's results.

    A deferred note the second pass did not process (its patient has no
    fracture) becomes ``no_trigger``: nothing in it can change a row of
    patients.csv. Idempotent: rows already merged are replaced again, never
    doubled (a resumed run may merge a part twice).
    """
    rows = deferred["row"]
    skipped = deferred[~rows.isin(new_notes["row"])].reset_index(drop=True)
    skipped = skipped.assign(status="no_trigger", error="", n_mentions=0,
                             **dict.fromkeys(NOTE_FLAGS, False))[NOTE_COLUMNS]
    kept = notes[~notes["row"].isin(rows)]
    notes = pd.concat([f for f in (kept, new_notes, skipped) if len(f)] or [kept], ignore_index=True)
    kept = mentions[~mentions["row"].isin(rows)]
    mentions = pd.concat([f for f in (kept, new_mentions) if len(f)] or [kept], ignore_index=True)
    notes = notes.sort_values("row", kind="stable").reset_index(drop=True)
    mentions = mentions.sort_values(SORT_KEYS["mentions"], kind="stable").reset_index(drop=True)
    return notes, mentions


@dataclass
class DeferredSelection:
    """Which deferred notes the second pass processes.

    A deferred note (its triggers are all of concepts outside the first
    pass) is processed when its patient has an affirmed fracture (``people``),
    unless, with ``window_days``, it is dated more than ``window_days`` days
    from the patient's index date (``index_dates``) and can hold no mention of
    a screened concept that can count at any date (``standing``: osteoporosis,
    and anticoagulants, which count at any date for a patient with only chronic
    levels): then every mention it can hold (infection, coagulopathy, pain:
    ``WINDOWED_CONCEPTS``) falls outside the window and changes no row of
    patients.csv. The distance is :func:`~pipeline.screening.contraindications.in_window`'s;
    an undated note, or a patient without an index date, is processed.
    """

    people: set[str]
    index_dates: pd.Series = field(default_factory=lambda: pd.Series(dtype="datetime64[ns]"))
    window_days: int | None = None
    standing: Prefilter | None = None

    def __call__(self, deferred: pd.DataFrame) -> tuple[pd.DataFrame, int]:
        """The deferred notes (canonical columns) to process, and how many of the patients' notes
        were left as outside the window."""
        person = as_text(deferred["person_id"])
        wanted = person.isin(self.people).to_numpy()
        outside = np.zeros(len(deferred), dtype=bool)
        if self.window_days is not None and wanted.any():
            outside = wanted & outside_window(person, as_dates(deferred["note_date"]),  # as in_window sees it
                                              self.index_dates, self.window_days)
            for position in np.flatnonzero(outside):
                if self.standing is None or self.standing(deferred["note_text"].iat[position]):
                    outside[position] = False
        return deferred[wanted & ~outside].reset_index(drop=True), int(outside.sum())


def deferred_selection(work: Path, processor: BatchProcessor, window_days: int | None = None
                       ) -> DeferredSelection:
    """The :class:`DeferredSelection` of a run whose first pass is in ``work``.

    The patients with a fracture, and with ``window_days`` their index dates:
    only FRACTURE and OEDEMA mentions decide those (all from the first pass),
    read a group of patients at a time as :func:`screen_parts` does.
    """
    from .screening import fracture_index_dates

    groups = _patient_group_count(work)

    def decisive(frame: pd.DataFrame, group: int) -> np.ndarray:
        keep = frame["concept"].isin(["FRACTURE", "OEDEMA"]).to_numpy()
        return keep & _in_group(frame, group, groups) if groups > 1 else keep

    people: set[str] = set()
    dates = []
    for group in range(groups):
        mentions = _mentions_of(work, lambda frame, group=group: decisive(frame, group))
        people |= fracture_people(mentions)
        if window_days is not None:
            dates.append(fracture_index_dates(mentions))
    return _selection(people, pd.concat(dates) if dates else None, processor, window_days)


def _selection(people: set[str], index_dates: pd.Series | None, processor: BatchProcessor,
               window_days: int | None) -> DeferredSelection:
    from .screening.frame import SCREENED_CONCEPTS, WINDOWED_CONCEPTS
    if window_days is None or index_dates is None:
        return DeferredSelection(people)
    standing = compile_prefilter(processor.rules, concepts=SCREENED_CONCEPTS - WINDOWED_CONCEPTS)
    return DeferredSelection(people, index_dates[index_dates.notna()], window_days, standing)


def second_pass(work: Path, processor: BatchProcessor, *, key: str, workers: int, engine: str,
                session=None, scheduler: str | None = None, window_days: int | None = None) -> dict:
    """Process the deferred notes of the patients with a fracture, part by part.

    With ``window_days`` (the screening config's), a deferred note dated
    outside the window around its patient's index date is processed only if
    it can hold an anticoagulant or osteoporosis mention
    (:class:`DeferredSelection`); the manifest records the window
    (``second_pass_window_days``). Each ``deferred-NNNNNN.parquet`` is merged
    into its ``notes-NNNNNN`` and ``mentions-NNNNNN`` parts (written atomically), recorded in the
    checkpoint as ``second``, then deleted: a killed second pass resumes
    where it stopped. On the local engine a worker does a whole part
    (read, process, merge, write); on Dask the workers process the notes
    and the client merges.
    """
    parts = sorted(work.glob("deferred-*.parquet"))
    started = time.perf_counter()
    facts = {"deferred_notes": 0, "second_pass_notes": 0, "outside_window_notes": 0}
    window = {"second_pass_window_days": window_days}
    if not parts:
        return {**facts, **window, "second_pass_seconds": 0.0}
    selection = deferred_selection(work, processor, window_days)
    state = json.loads((work / "checkpoint.json").read_text())
    finished = set(state.get("second", []))
    done = set(state.get("done", []))
    full = processor.without_deferring()
    indexes = []
    for path in parts:
        index = int(path.stem.split("-")[1])
        if index in finished:
            path.unlink()  # merged and recorded before the run was killed
        else:
            indexes.append(index)
    logger.info("second pass: deferred notes of %d batch(es), for %d patient(s) with a fracture",
                len(indexes), len(selection.people))

    def record(index: int, counts: tuple[int, int, int]) -> None:
        finished.add(index)
        _save_checkpoint(work, key, done, second=finished)
        (work / f"deferred-{index:06d}.parquet").unlink()
        for name, count in zip(("deferred_notes", "second_pass_notes", "outside_window_notes"), counts):
            facts[name] += count

    if engine == "dask":
        # parts being processed: their deferred rows (not texts), and how many of their notes
        # were outside the window
        in_flight: dict[int, tuple[pd.DataFrame, int]] = {}

        def pending():
            for index in indexes:
                deferred, wanted, outside = _deferred(work, index, selection)
                if wanted.empty:
                    record(index, (*_merge_part(work, index, deferred), outside))
                else:
                    in_flight[index] = deferred[DEFERRED_ROW_COLUMNS], outside
                    yield index, wanted

        from .engines.dask import run_batches_dask
        for index, notes, mentions in run_batches_dask(pending(), full, workers=workers, scheduler=scheduler,
                                                       session=session):
            deferred, outside = in_flight.pop(index)
            record(index, (*_merge_part(work, index, deferred, notes, mentions), outside))
    else:
        for index, counts in map_in_workers(_second_pass_part, indexes, full, workers=workers,
                                            shared=(work, selection)):
            record(index, counts)
    logger.info("second pass: processed %d of %d deferred notes; %d more, of patients with a fracture, "
                "were outside the window", facts["second_pass_notes"], facts["deferred_notes"],
                facts["outside_window_notes"])
    return {**facts, **window, "second_pass_seconds": round(time.perf_counter() - started, 3)}


def _deferred(work: Path, index: int, selection: DeferredSelection) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """One part's deferred notes, those of them to process, and how many were outside the window
    (``selection``)."""
    deferred = pd.read_parquet(work / f"deferred-{index:06d}.parquet")
    return (deferred, *selection(deferred))


def _merge_part(work: Path, index: int, deferred: pd.DataFrame, new_notes: pd.DataFrame | None = None,
                new_mentions: pd.DataFrame | None = None) -> tuple[int, int]:
    """Merge one part's second-pass results into its parts; (deferred notes, processed notes)."""
    new_notes = empty_frame(NOTE_COLUMNS) if new_notes is None else new_notes
    new_mentions = empty_frame(MENTION_COLUMNS) if new_mentions is None else new_mentions
    # without new mentions the part's mentions stay as they are (a deferred note has none before)
    mentions_path = work / f"mentions-{index:06d}.parquet" if len(new_mentions) else None
    notes, mentions = merge_deferred(pd.read_parquet(work / f"notes-{index:06d}.parquet"),
                                     empty_frame(MENTION_COLUMNS) if mentions_path is None
                                     else pd.read_parquet(mentions_path),
                                     deferred[DEFERRED_ROW_COLUMNS], new_notes, new_mentions)
    if mentions_path is not None:
        write_parquet(mentions, mentions_path)
    write_parquet(notes, work / f"notes-{index:06d}.parquet")
    return len(deferred), len(new_notes)


def _second_pass_part(processor: BatchProcessor, shared: tuple[Path, DeferredSelection], index: int
                      ) -> tuple[int, int, int]:
    """One part of the second pass, whole (runs in a worker process): (deferred, processed,
    outside the window)."""
    from .nlp.extract import process_batch
    work, selection = shared
    deferred, wanted, outside = _deferred(work, index, selection)
    if wanted.empty:
        return (*_merge_part(work, index, deferred), outside)
    return (*_merge_part(work, index, deferred, *process_batch(wanted, processor)), outside)


#: What screening and the report read of the notes (the rest is only written out).
SCREEN_NOTE_COLUMNS = ["row", "note_id", "person_id", "note_date", "note_title", "status"]
#: Mention columns that only the written files need (OMOP constants, run stamps, long summaries).
WRITE_ONLY_MENTION_COLUMNS = {"section_concept_id", "offset", "note_nlp_concept_id",
                              "note_nlp_source_concept_id", "nlp_system", "nlp_date", "nlp_datetime",
                              "term_temporal", "term_modifiers"}
SORT_KEYS = {"notes": ["row"], "mentions": ["row", "start", "end", "lab"]}


def _part_frames(work: Path, kind: str, columns: list[str] | None = None):
    """The non-empty parts of one kind, in input order, each sorted."""
    for part in sorted(work.glob(f"{kind}-*.parquet")):
        frame = pd.read_parquet(part, columns=columns)
        if len(frame):
            keys = [key for key in SORT_KEYS[kind] if key in frame]
            yield frame.sort_values(keys, kind="stable").reset_index(drop=True)


def _parts_in_order(work: Path, kind: str) -> bool:
    """Whether the parts, read in name order, follow the input order (no part overlaps the next).

    Read from the Parquet statistics of ``row`` (no data is read).
    """
    import pyarrow.parquet as pq
    last = -1
    for part in sorted(work.glob(f"{kind}-*.parquet")):
        metadata = pq.ParquetFile(part).metadata
        if metadata.num_rows == 0:
            continue
        column = metadata.schema.to_arrow_schema().get_field_index("row")
        if column < 0:
            return _parts_in_order_by_reading(work, kind)
        bounds = [metadata.row_group(group).column(column).statistics for group in range(metadata.num_row_groups)]
        if any(stats is None or not stats.has_min_max for stats in bounds):
            return _parts_in_order_by_reading(work, kind)
        if min(stats.min for stats in bounds) < last:
            return False
        last = max(stats.max for stats in bounds)
    return True


def _parts_in_order_by_reading(work: Path, kind: str) -> bool:
    last = -1
    for frame in _part_frames(work, kind, columns=["row"]):
        if frame["row"].iloc[0] < last:
            return False
        last = frame["row"].iloc[-1]
    return True


def _read_parts(work: Path, kind: str, columns: list[str],
                keep: Callable[[pd.DataFrame], pd.Series | np.ndarray] | None = None) -> pd.DataFrame:
    """The parts of one kind as one frame in input order (only the rows ``keep`` selects)."""
    frames = []
    for frame in _part_frames(work, kind, columns):
        if keep is not None:
            frame = frame[keep(frame)]
        if len(frame):
            frames.append(frame)
    if not frames:
        return empty_frame(columns)
    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values(SORT_KEYS[kind], kind="stable").reset_index(drop=True)


def _stream_parts(work: Path, kind: str, columns: list[str]):
    """Parts for writing, without ``row``: streamed when in order, else sorted whole."""
    if _parts_in_order(work, kind):
        for frame in _part_frames(work, kind, columns):
            yield frame.drop(columns=["row"])
    else:
        frame = _read_parts(work, kind, columns)
        if len(frame):
            yield frame.drop(columns=["row"])


# --------------------------------------------------------------------------------------------
# Screening from the parts, in bounded memory
# --------------------------------------------------------------------------------------------

#: Mentions screened at once: past this many, patients are screened in groups (by a hash of
#: person_id), each group reading only its own mentions from the parts.
SCREEN_GROUP_MENTIONS = 400_000
#: The mention columns screening and the report read.
LEAN_MENTION_COLUMNS = [c for c in MENTION_COLUMNS if c not in WRITE_ONLY_MENTION_COLUMNS]


@dataclass
class Census:
    """What a pass over the note parts gathers for screening, holding no per-note string.

    ``status``: notes per status; ``note_counts``: person_id -> number of
    distinct note ids; ``shared_ids``: whether a note id belongs to several
    patients.
    """

    status: dict[str, int]
    note_counts: pd.Series
    shared_ids: bool


def note_census(work: Path) -> Census:
    """Count the notes of every patient, a part at a time.

    Distinct note ids are counted by a 64-bit hash of the id (a duplicated id,
    as in ``screen_patients``, counts once per patient); persons are numbered
    as they come. Memory: 16 bytes per note. Screening needs nothing else
    of the notes: the mentions carry their note's date.
    """
    persons: dict[str, int] = {}
    codes: list[np.ndarray] = []
    hashes: list[np.ndarray] = []
    status: dict[str, int] = {}
    for frame in _part_frames(work, "notes", ["row", "note_id", "person_id", "status"]):
        for name, count in frame["status"].value_counts().items():
            status[str(name)] = status.get(str(name), 0) + int(count)
        person = as_text(frame["person_id"])
        codes.append(np.fromiter((persons.setdefault(value, len(persons)) for value in person),
                                 dtype=np.int64, count=len(person)))
        hashes.append(pd.util.hash_pandas_object(as_text(frame["note_id"]), index=False).to_numpy())
    if not codes:
        return Census(status={}, note_counts=pd.Series(dtype="int64", index=pd.Index([], dtype=object)),
                      shared_ids=False)
    pairs = pd.DataFrame({"person": np.concatenate(codes), "note": np.concatenate(hashes)}).drop_duplicates()
    del codes, hashes
    counts = pairs.groupby("person").size()
    names = np.array(list(persons), dtype=object)
    note_counts = pd.Series(counts.to_numpy(), index=pd.Index(names[counts.index.to_numpy()], dtype=object))
    return Census(status=dict(sorted(status.items())), note_counts=note_counts.astype("int64"),
                  shared_ids=bool(pairs["note"].duplicated().any()))


def processed_notes(work: Path, people: set[str] | None = None) -> pd.DataFrame:
    """The processed notes (of ``people``, when given): the only notes mentions belong to."""
    def keep(frame: pd.DataFrame) -> pd.Series:
        processed = frame["status"] == "processed"
        return processed if people is None else processed & as_text(frame["person_id"]).isin(people)
    return _read_parts(work, "notes", SCREEN_NOTE_COLUMNS, keep)


def _mentions_of(work: Path, keep: Callable[[pd.DataFrame], pd.Series | np.ndarray] | None = None
                 ) -> pd.DataFrame:
    """The lean mention columns of every part (the rows ``keep`` selects), in input order."""
    return _read_parts(work, "mentions", LEAN_MENTION_COLUMNS, keep)


def _count_rows(work: Path, kind: str) -> int:
    import pyarrow.parquet as pq
    return sum(pq.ParquetFile(part).metadata.num_rows for part in work.glob(f"{kind}-*.parquet"))


def _patient_group_count(work: Path, group_mentions: int | None = None) -> int:
    """Groups of patients (:func:`patient_groups`) that keep each group's mentions near
    ``group_mentions`` (default ``SCREEN_GROUP_MENTIONS``); 1: everyone at once."""
    limit = SCREEN_GROUP_MENTIONS if group_mentions is None else group_mentions
    return max(1, -(-_count_rows(work, "mentions") // max(1, limit)))


def _in_group(frame: pd.DataFrame, group: int, groups: int) -> np.ndarray:
    """The rows of ``frame`` whose patient is in ``group`` of ``groups``."""
    return patient_groups(frame["person_id"], groups) == group


def screen_parts(work: Path, census: Census, config: Config, *,
                 group_mentions: int | None = None) -> pd.DataFrame:
    """``screen_patients`` over the parts, in groups of patients when the mentions are many.

    A patient's row depends on that patient's notes and mentions only, so
    screening groups of patients (a stable hash of ``person_id``) and
    concatenating gives the same frame as screening everyone at once, unless a
    note id belongs to several patients (then everyone is screened together;
    the Dask engine makes the same choice).
    """
    groups = _patient_group_count(work, group_mentions)
    if groups > 1 and census.shared_ids:
        logger.info("some note ids belong to several patients: screening them together")
        groups = 1
    if groups == 1:
        return screen_patients(_mentions_of(work), None, config, note_counts=census.note_counts)
    logger.info("screening %d groups of patients", groups)
    count_group = patient_groups(pd.Series(census.note_counts.index, dtype=object), groups)
    frames = []
    for group in range(groups):
        mentions = _mentions_of(work, lambda frame, group=group: _in_group(frame, group, groups))
        frames.append(screen_patients(mentions, None, config,
                                      note_counts=census.note_counts[count_group == group]))
    patients = pd.concat(frames, ignore_index=True)
    return patients.sort_values("person_id", kind="stable").reset_index(drop=True)


def report_frames(work: Path, patients: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The notes and mentions the report reads: those of the patients its table lists.

    The page lists at most ``MAX_TABLE_PATIENTS`` patients, so what is read
    here is bounded whatever the size of the cohort.
    """
    from .report.html import MAX_TABLE_PATIENTS, table_order
    if len(patients) <= MAX_TABLE_PATIENTS:
        return processed_notes(work), _mentions_of(work)
    listed = set(patients["person_id"].iloc[table_order(patients, limit=MAX_TABLE_PATIENTS)].astype(str))
    mentions = _mentions_of(work, lambda frame: as_text(frame["person_id"]).isin(listed).to_numpy())
    return processed_notes(work, listed), mentions


def write_parts(outdir: Path, work: Path) -> None:
    """notes.csv and mentions.parquet/.csv straight from the batch parts, a part at a time."""
    note_columns = [c for c in NOTE_COLUMNS if c != "row"]
    mention_columns = [c for c in MENTION_COLUMNS if c != "row"]
    write_csv_frames(_stream_parts(work, "notes", NOTE_COLUMNS), outdir / "notes.csv", columns=note_columns)
    write_parquet_frames(_stream_parts(work, "mentions", MENTION_COLUMNS), outdir / "mentions.parquet",
                         empty=empty_frame(mention_columns))
    write_csv_frames(_stream_parts(work, "mentions", MENTION_COLUMNS), outdir / "mentions.csv",
                     columns=mention_columns)


def write_outputs(outdir: Path, result: RunResult, *, excel: bool = False, report: bool = True,
                  work: Path | None = None, parts_written=None, workers: int = 1) -> None:
    """Write the files of SPEC §5 into ``outdir`` (each atomically).

    With ``work``, notes.csv and the mention files are streamed from the batch
    parts there (bounded memory whatever the input size), and ``result``
    needs only the columns screening and the report read; ``parts_written``
    (a future of :func:`write_parts` already running) is waited for instead,
    once the report is written (the two overlap). With ``workers`` > 1 two
    processes build the report's evidence. The manifest is written last, with
    the time this took (``timings.write_seconds``).
    """
    clock = time.perf_counter()
    notes = result.notes.drop(columns=["row"], errors="ignore")
    mentions = result.mentions.drop(columns=["row"], errors="ignore")
    if parts_written is None:
        if work is not None:
            write_parts(outdir, work)
        else:
            write_csv(notes, outdir / "notes.csv")
            write_parquet(mentions, outdir / "mentions.parquet")
            write_csv(mentions, outdir / "mentions.csv")
    if result.patients is not None:
        write_csv(result.patients, outdir / "patients.csv")
        write_parquet(result.patients, outdir / "patients.parquet")
        if report:
            from .report.html import write_html_report
            write_html_report(outdir / "report.html", patients=result.patients, mentions=mentions,
                              notes=notes, manifest=result.manifest, workers=workers)
        if excel:
            from .report.excel import write_excel_report
            write_excel_report(outdir / "report.xlsx", patients=result.patients, mentions=mentions)
    if parts_written is not None:
        parts_written.result()  # written meanwhile by its own process (an error is raised here)
    result.manifest.setdefault("timings", {})["write_seconds"] = round(time.perf_counter() - clock, 3)
    write_json(result.manifest, outdir / "manifest.json")


def build_manifest(*, command: str, sources: Sequence[NoteSource] | None, processor: BatchProcessor | None,
                   config: Config | None, config_path: str | None, notes: pd.DataFrame,
                   patients: pd.DataFrame | None, timings: dict, extra: dict | None = None,
                   status: dict[str, int] | None = None) -> dict:
    """The manifest of SPEC §5; ``status`` (notes per status) when ``notes`` is not every note."""
    if status is None:
        status = {str(k): int(v) for k, v in notes["status"].value_counts().sort_index().items()}
    manifest = {
        "tool": "vertebro",
        "command": command,
        "versions": versions(),
        "started_at": extra.get("started_at") if extra else None,
        "rules": processor.rules.files if processor else {},
        "config": {"path": config_path or "default", "hash": config_hash(config) if config else None,
                   "values": config.to_dict() if config else None},
        "config_hash": config_hash(config) if config else None,
        "input": {
            "sources": [{"description": source.describe(), "format": source.format,
                         "fingerprint": source.fingerprint(), "stats": source.stats.as_dict()}
                      for source in sources or []],
            "rows": int(sum(status.values())),
        },
        "counts": {
            "notes": int(sum(status.values())),
            "status": status,
            "patients": int(len(patients)) if patients is not None else None,
            "tier": ({str(k): int(v) for k, v in patients["tier"].value_counts().sort_index().items()}
                     if patients is not None else {}),
        },
        "timings": timings,
    }
    if extra:
        manifest.update({k: v for k, v in extra.items() if k != "started_at"})
    return manifest


def run_job(inputs: Sequence[NoteSource], outdir: str | Path, *, command: str = "screen",
            patterns: Sequence[str] = (), config_path: str | None = None, workers: int = 1,
            resume: bool = False, excel: bool = False, engine: str = "local",
            scheduler: str | None = None, partitions: int | None = None,
            progress: Callable[[int], None] | None = None, read_on: str = "workers",
            partition_column: str | None = None, all_mentions: bool = False) -> RunResult:
    """Extract (and, for ``screen``, score and report) into ``outdir``.

    ``screen`` runs in two passes unless ``all_mentions``: notes that can
    only hold facts screening reads for patients with a fracture
    (infection, coagulopathy, anticoagulants, pain, ...) wait until the
    first pass has found those patients, and are processed only for them
    (:func:`second_pass`). patients.csv is the same either way; mentions of
    the skipped notes are not extracted (``extract`` finds every mention).

    ``engine="dask"`` runs the batches and the screening on a Dask cluster
    (``scheduler`` address, else a LocalCluster of ``workers`` processes;
    ``partitions`` patient groups for the screening): same results. With
    ``read_on="workers"`` the workers read Parquet, JSON Lines and SQL tables
    as partitions themselves (``partition_column``: SQL; see
    :mod:`pipeline.io.partitions`), else the client reads every input.
    """
    if engine == "dask":
        from .engines.dask import DaskSession
        with DaskSession(workers=workers, scheduler=scheduler, partitions=partitions) as session:
            return _run_job(inputs, outdir, command=command, patterns=patterns, config_path=config_path,
                            workers=workers, resume=resume, excel=excel, engine=engine,
                            progress=progress, session=session, read_on=read_on,
                            partition_column=partition_column, all_mentions=all_mentions)
    return _run_job(inputs, outdir, command=command, patterns=patterns, config_path=config_path,
                    workers=workers, resume=resume, excel=excel, engine=engine, progress=progress,
                    all_mentions=all_mentions)


def _run_job(inputs: Sequence[NoteSource], outdir: str | Path, *, command: str, patterns: Sequence[str],
             config_path: str | None, workers: int, resume: bool, excel: bool, engine: str,
             progress: Callable[[int], None] | None, session=None, read_on: str = "workers",
             partition_column: str | None = None, all_mentions: bool = False) -> RunResult:
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S")
    outdir = Path(outdir)
    config = load_config(config_path) if command == "screen" else None
    clock = time.perf_counter()
    processor = BatchProcessor(patterns=[str(p) for p in patterns],
                               defer=command == "screen" and not all_mentions)
    timings = {"load_seconds": round(time.perf_counter() - clock, 3)}
    facts = extract_to_parts(inputs, outdir, processor, config=config, workers=workers, resume=resume,
                             progress=progress, engine=engine, session=session, read_on=read_on,
                             partition_column=partition_column)
    timings["extract_seconds"] = facts["extract_seconds"]
    work = outdir / WORK
    passes = {}
    if processor.defer:
        passes = second_pass(work, processor, key=facts["run_key"], workers=workers, engine=engine,
                             session=session, window_days=config.window_days if config else None)
        timings["second_pass_seconds"] = passes.pop("second_pass_seconds")
    # screening and the report read the parts a patient group at a time; the note and
    # mention files are streamed from them (bounded memory whatever the input size), by a
    # process of their own when there are CPUs to spare (a Dask run's workers are elsewhere)
    writers = workers if session is None else 1
    with _parts_writer(outdir, work, writers) as parts_written:
        return _screen_and_write(outdir, work, processor, inputs, command=command, config=config,
                                 config_path=config_path, timings=timings, facts=facts, passes=passes,
                                 started_at=started_at, engine=engine, workers=workers, session=session,
                                 excel=excel, parts_written=parts_written, writers=writers)


@contextlib.contextmanager
def _parts_writer(outdir: Path, work: Path, workers: int):
    """A future of :func:`write_parts` in a forked process (None with one worker or no fork)."""
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield None
        return
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        future = pool.submit(write_parts, outdir, work)
        try:
            yield future
        finally:
            concurrent.futures.wait([future])  # never delete the parts under it


def _screen_and_write(outdir: Path, work: Path, processor: BatchProcessor, inputs: Sequence[NoteSource], *,
                      command: str, config: Config | None, config_path: str | None, timings: dict,
                      facts: dict, passes: dict, started_at: str, engine: str, workers: int, session,
                      excel: bool, parts_written, writers: int) -> RunResult:
    census = note_census(work)
    patients = None
    notes, mentions = empty_frame(SCREEN_NOTE_COLUMNS), empty_frame(LEAN_MENTION_COLUMNS)
    if command == "screen":
        clock = time.perf_counter()
        if session is not None:
            patients = session.screen_patients(_mentions_of(work), processed_notes(work), config,
                                               note_counts=census.note_counts, shared_ids=census.shared_ids)
        else:
            patients = screen_parts(work, census, config)
        timings["screen_seconds"] = round(time.perf_counter() - clock, 3)
        notes, mentions = report_frames(work, patients)
    extra = {"started_at": started_at, "engine": engine, "workers": workers,
             "resumed_notes": facts["resumed_notes"], "two_pass": processor.defer, **passes}
    if session is not None:
        extra["dask"] = session.describe()
        extra["workers"] = extra["dask"]["workers"]
    manifest = build_manifest(command=command, sources=inputs, processor=processor, config=config,
                              config_path=config_path, notes=notes, patients=patients, timings=timings,
                              extra=extra, status=census.status)
    result = RunResult(notes=notes, mentions=mentions, patients=patients, manifest=manifest)
    write_outputs(outdir, result, excel=excel, work=work, parts_written=parts_written, workers=writers)
    shutil.rmtree(work, ignore_errors=True)
    return result


def rescore(outdir: str | Path, *, config_path: str | None = None, excel: bool = False) -> RunResult:
    """Re-score the saved mentions of a run folder with another config (no notes re-read)."""
    outdir = Path(outdir)
    if not (outdir / "mentions.parquet").exists() or not (outdir / "notes.csv").exists():
        raise RunError(f"{outdir} is not a vertebro run folder (no mentions.parquet / notes.csv)")
    mentions = pd.read_parquet(outdir / "mentions.parquet")
    notes = pd.read_csv(outdir / "notes.csv", dtype={"note_id": str, "person_id": str, "error": str},
                        keep_default_na=False, na_values=[""])
    notes["note_date"] = parse_note_dates(notes["note_date"])
    for column in ("fracture", "acute_fracture", "oedema", "retropulsion", "epidural_disease",
                   "infection", "coagulopathy", "anticoagulant", "malignancy"):
        if column in notes:
            notes[column] = notes[column].astype(str).str.lower().eq("true")
    notes["error"] = notes["error"].fillna("")
    config = load_config(config_path)
    old = {}
    if (outdir / "manifest.json").exists():
        old = json.loads((outdir / "manifest.json").read_text())
    _check_window(old, config, outdir)
    clock = time.perf_counter()
    patients = screen_patients(mentions, notes, config)
    manifest = dict(old)
    manifest.update({
        "command": "score", "config": {"path": config_path or "default", "hash": config_hash(config),
                                       "values": config.to_dict()},
        "config_hash": config_hash(config),
        "versions": versions(),
    })
    manifest.setdefault("counts", {})["tier"] = {str(k): int(v) for k, v in
                                                 patients["tier"].value_counts().sort_index().items()}
    manifest["counts"]["patients"] = int(len(patients))
    manifest.setdefault("timings", {})["screen_seconds"] = round(time.perf_counter() - clock, 3)
    result = RunResult(notes=notes, mentions=mentions, patients=patients, manifest=manifest)
    write_csv(patients, outdir / "patients.csv")
    write_parquet(patients, outdir / "patients.parquet")
    from .report.html import write_html_report
    write_html_report(outdir / "report.html", patients=patients, mentions=mentions, notes=notes,
                      manifest=manifest)
    if excel:
        from .report.excel import write_excel_report
        write_excel_report(outdir / "report.xlsx", patients=patients, mentions=mentions)
    write_json(manifest, outdir / "manifest.json")
    return result


def _check_window(manifest: dict, config: Config, outdir: Path) -> None:
    """Refuse to re-score with a wider window than the second pass of ``screen`` used.

    That pass skips notes dated outside the window that can only hold
    infection, coagulopathy or pain facts (:class:`DeferredSelection`); a
    wider window would need them. A narrower one (or any other setting) is exact.
    """
    used = manifest.get("second_pass_window_days")
    if used is not None and config.window_days > used:
        raise RunError(
            f"{outdir} was screened with a {used}-day window: notes outside it that could only hold "
            f"infection, coagulopathy or pain facts were not processed, so a {config.window_days}-day "
            f"window cannot be scored from its mentions. Run `vertebro screen` again with this config "
            f"(or screen with --all-mentions to keep every mention).")


def frame_to_notes(frame: pd.DataFrame, columns: ColumnMap = ColumnMap()) -> pd.DataFrame:
    """A user's notes frame in the canonical shape (docs/design.md §1)."""
    missing = [name for name in (columns.id, columns.person, columns.text) if name not in frame.columns]
    if missing:
        raise InputError(f"missing required column(s) {', '.join(missing)}; found: {', '.join(map(str, frame.columns))}")

    def ids(series: pd.Series) -> pd.Series:
        def one(value):
            if value is None or (isinstance(value, float) and pd.isna(value)):
                return ""
            if isinstance(value, float) and value.is_integer():
                return str(int(value))
            return str(value)
        return series.map(one)

    canonical = pd.DataFrame({
        "row": range(len(frame)),
        "note_id": ids(frame[columns.id]).to_numpy(),
        "person_id": ids(frame[columns.person]).to_numpy(),
        "note_date": (parse_note_dates(frame[columns.date]).to_numpy()
                      if columns.date and columns.date in frame else pd.NaT),
        "note_title": (frame[columns.title].fillna("").astype(str).to_numpy()
                       if columns.title and columns.title in frame else ""),
        "note_text": frame[columns.text].where(frame[columns.text].notna(), None).to_numpy(),
    })
    canonical["note_date"] = pd.to_datetime(canonical["note_date"])
    return canonical


def screen(notes: pd.DataFrame, *, config: Config | str | None = None, patterns: Sequence[str] = (),
           columns: ColumnMap = ColumnMap(), all_mentions: bool = False) -> RunResult:
    """Screen a pandas frame of notes in memory; the same frames the CLI writes.

    Two passes as in ``vertebro screen`` unless ``all_mentions`` (every note
    processed, every mention returned; the patients are the same).

    Example::

        import pandas as pd, pipeline
        result = pipeline.screen(pd.read_csv("notes.csv"))
        result.patients[["person_id", "tier", "candidate_levels"]]
    """
    from .nlp.extract import process_batch
    processor = BatchProcessor(patterns=[str(p) for p in patterns], defer=not all_mentions)
    if not isinstance(config, Config):
        config = load_config(config)
    canonical = frame_to_notes(notes, columns)
    note_rows, mention_rows = process_batch(canonical, processor)
    pending = note_rows[note_rows["status"] == DEFERRED].rename(columns={DEFERRED_TEXT: "note_text"})
    deferred = pending[DEFERRED_ROW_COLUMNS]
    note_rows = note_rows.drop(columns=[DEFERRED_TEXT], errors="ignore")
    if len(deferred):
        from .screening import fracture_index_dates
        selection = _selection(fracture_people(mention_rows), fracture_index_dates(mention_rows), processor,
                               config.window_days)
        wanted, _ = selection(pending)
        new_notes, new_mentions = process_batch(canonical[canonical["row"].isin(wanted["row"])],
                                                processor.without_deferring())
        note_rows, mention_rows = merge_deferred(note_rows, mention_rows, deferred, new_notes, new_mentions)
    patients = screen_patients(mention_rows, note_rows, config)
    return RunResult(notes=note_rows.drop(columns=["row"]), mentions=mention_rows.drop(columns=["row"]),
                     patients=patients)
