"""The Dask engine: the same batch function on a Dask cluster.

``vertebro screen INPUT -o OUT --engine dask [--scheduler tcp://HOST:8786]``

* With no scheduler, a ``LocalCluster`` of worker *processes* (one thread
  each: the NLP holds the GIL) sized to the machine, or to ``--workers``.
* Parquet, JSON Lines and SQL tables are read by the workers, one task per
  partition (:mod:`pipeline.io.partitions`: the readers' canonicalisation per
  partition; the client shifts ``row`` by the notes of earlier partitions and
  merges the statistics, so both are the local engine's). Other inputs, or
  ``read_on="client"``: the client reads the input with the usual readers
  and submits each canonical batch as one task, a bounded number in flight. Workers run :func:`pipeline.nlp.extract.process_batch`,
  the function the local engine runs, with a :class:`BatchProcessor` built
  once per worker thread; results come back in input order and the client
  writes them as Parquet parts under ``OUT/.work/`` (the checkpoint).
* Screening is grouped by patient: notes and mentions are split by a hash
  of ``person_id`` into ``--partitions`` groups, each group is screened on a
  worker with :func:`pipeline.screening.screen_patients`, and the patient
  rows are put back in ``person_id`` order.
* A task whose worker dies is re-run by the scheduler (up to
  ``distributed.scheduler.allowed-failures`` times); a task that raises is
  retried twice. Neither changes the result: the batch function is
  deterministic.

Extra rule folders (``--patterns``) are shipped to the workers with each
task, and every worker checks that it runs the client's vertebro version and
rule files, so a cluster with another installation fails with a clear
message instead of giving other results.

Nothing here imports Dask at module level: :func:`process_with_spec` and
:func:`processor_spec` are plain Python and serve the Spark recipe of
``docs/cluster.md`` too.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import logging
import os
import tempfile
import threading
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import __version__
from ..nlp.extract import BatchProcessor, process_batch
from ..screening.frame import patient_groups

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'vertebro[dask]'"
CONNECT_TIMEOUT = 5          # seconds to reach a scheduler
WORKER_WAIT = 60             # seconds to wait for a first worker on an external scheduler
TASK_RETRIES = 2             # re-runs of a task that raised (a lost worker is handled by the scheduler)
MAX_SHIPPED_RULES = 20 << 20  # bytes of extra rule files sent with each task


# -- what a worker needs to build the pipeline ------------------------------


class WorkerMismatch(RuntimeError):
    """The worker's vertebro installation differs from the client's."""


@dataclass(frozen=True)
class ProcessorSpec:
    """Everything a worker needs to build the client's :class:`BatchProcessor`.

    ``folders`` holds the content of each extra rule folder (relative path →
    bytes), so that workers on other machines need not see the client's
    files; ``rule_hashes`` (the sha256 of every rule file loaded, in load
    order) and ``version`` are checked there.
    ``key`` identifies the rule set (a worker builds one pipeline per key and
    reuses it for every run); the run stamp is applied per batch.
    """

    version: str
    folders: tuple[tuple[tuple[str, bytes], ...], ...]
    rule_hashes: tuple[str, ...]
    nlp_date: str
    nlp_datetime: str
    use_prefilter: bool
    defer: bool
    key: str


def processor_spec(processor: BatchProcessor) -> ProcessorSpec:
    """The shippable description of ``processor`` (read on the client)."""
    folders = []
    total = 0
    for folder in processor.patterns:
        root = Path(folder)
        files = []
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            if not path.is_file() or any(part.startswith(".") for part in relative.parts):
                continue
            content = path.read_bytes()
            total += len(content)
            files.append((relative.as_posix(), content))
        folders.append(tuple(files))
    if total > MAX_SHIPPED_RULES:
        raise _run_error(f"the extra rule folders hold {total >> 20} MB; at most "
                         f"{MAX_SHIPPED_RULES >> 20} MB can be shipped to the workers")
    # extra folders are keyed by their path, which differs on a worker: compare the content
    rule_hashes = tuple(processor.rules.files.values())
    digest = hashlib.sha256(__version__.encode())
    for sha in rule_hashes:
        digest.update(f"\x00{sha}".encode())
    for files in folders:
        digest.update(b"\x00folder")
        for name, content in files:
            digest.update(name.encode() + b"\x00" + hashlib.sha256(content).digest())
    return ProcessorSpec(version=__version__, folders=tuple(folders), rule_hashes=rule_hashes,
                         nlp_date=processor.nlp_date, nlp_datetime=processor.nlp_datetime,
                         use_prefilter=processor.use_prefilter, defer=processor.defer,
                         key=digest.hexdigest())


_LOCAL = threading.local()
_MATERIALISE = threading.Lock()


def _materialise(spec: ProcessorSpec) -> list[str]:
    """Write the shipped rule folders under the worker's temporary folder (once per spec)."""
    if not spec.folders:
        return []
    base = Path(tempfile.gettempdir()) / f"vertebro-rules-{spec.key[:16]}"
    with _MATERIALISE:
        if not base.is_dir():
            staging = Path(tempfile.mkdtemp(prefix="vertebro-rules-", dir=tempfile.gettempdir()))
            for index, files in enumerate(spec.folders):
                for name, content in files:
                    target = staging / str(index) / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(content)
                (staging / str(index)).mkdir(exist_ok=True)
            try:
                os.rename(staging, base)
            except OSError:  # another process on this host got there first
                import shutil
                shutil.rmtree(staging, ignore_errors=True)
    return [str(base / str(index)) for index in range(len(spec.folders))]


def _thread_cache() -> dict[str, BatchProcessor]:
    cache = getattr(_LOCAL, "processors", None)
    if cache is None:
        cache = _LOCAL.processors = {}
    return cache


def worker_processor(spec: ProcessorSpec) -> BatchProcessor:
    """The processor for ``spec``: the pipeline is built once per worker thread and rule set."""
    cache = _thread_cache()
    built = cache.get(spec.key)
    if built is None:
        if spec.version != __version__:
            raise WorkerMismatch(f"a worker runs vertebro {__version__}, the client {spec.version}: "
                                 "install the same version on the cluster")
        for name in ("medspacy", "PyRuSH"):
            logging.getLogger(name).setLevel(logging.WARNING)
        built = BatchProcessor(patterns=_materialise(spec), nlp_date=spec.nlp_date,
                               nlp_datetime=spec.nlp_datetime, use_prefilter=spec.use_prefilter,
                               defer=spec.defer)
        if tuple(built.rules.files.values()) != spec.rule_hashes:
            raise WorkerMismatch("the rule files on a worker differ from the client's "
                                 "(another vertebro installation on the cluster?)")
        cache.clear()  # one rule set at a time per thread
        cache[spec.key] = built
    if (built.nlp_date, built.nlp_datetime, built.use_prefilter, built.defer) == \
            (spec.nlp_date, spec.nlp_datetime, spec.use_prefilter, spec.defer):
        return built
    # another run (or pass) with the same rules: share the pipeline, stamp with this one
    stamped = copy.copy(built)
    stamped.nlp_date, stamped.nlp_datetime = spec.nlp_date, spec.nlp_datetime
    stamped.use_prefilter, stamped.defer = spec.use_prefilter, spec.defer
    return stamped


def _warm_up() -> None:
    """Build the shipped-rules pipeline in this worker thread while the client reads the input."""
    cache = _thread_cache()
    if not cache:
        for name in ("medspacy", "PyRuSH"):
            logging.getLogger(name).setLevel(logging.WARNING)
        processor = BatchProcessor()
        cache[processor_spec(processor).key] = processor


def process_with_spec(spec: ProcessorSpec, batch: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run :func:`process_batch` on ``batch`` with this worker's processor for ``spec``."""
    return process_batch(batch, worker_processor(spec))


def process_partition(spec: ProcessorSpec, partition) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Read one input partition here (:mod:`pipeline.io.partitions`) and run :func:`process_batch`
    on each of its batches; ``row`` counts from 0 in the partition (the client shifts it)."""
    from ..io.partitions import partition_facts, read_partition
    from ..io.readers import empty_notes_frame
    processor = worker_processor(spec)
    read = read_partition(partition)
    notes, mentions = [], []
    for batch in read:
        batch_notes, batch_mentions = process_batch(batch, processor)
        notes.append(batch_notes)
        mentions.append(batch_mentions)
    if not notes:
        empty_notes, empty_mentions = process_batch(empty_notes_frame(), processor)
        notes, mentions = [empty_notes], [empty_mentions]
    return (pd.concat(notes, ignore_index=True), pd.concat(mentions, ignore_index=True),
            partition_facts(read))


def _screen_task(mentions: pd.DataFrame, notes: pd.DataFrame, config,
                 note_counts: pd.Series | None = None) -> pd.DataFrame:
    from ..screening import screen_patients
    return screen_patients(mentions, notes, config, note_counts=note_counts)


# -- the client side -------------------------------------------------------


def _run_error(message: str) -> Exception:
    from ..run import RunError
    return RunError(message)


class DaskSession:
    """A connection to a Dask cluster (a new LocalCluster when ``scheduler`` is None).

    Use as a context manager; :meth:`close` shuts down a LocalCluster it
    started and only disconnects from an external scheduler.
    """

    def __init__(self, *, workers: int | None = None, scheduler: str | None = None,
                 partitions: int | None = None, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        try:
            import distributed
        except ImportError:
            raise _run_error("--engine dask needs Dask, an optional dependency: "
                             f"{INSTALL_HINT}") from None
        if logging.getLogger("pipeline").getEffectiveLevel() > logging.DEBUG:
            # distributed logs every connection at INFO; keep its warnings only
            logging.getLogger("distributed").setLevel(logging.WARNING)
        self.partitions = partitions
        self.read = "client"  # "partitions" once the workers read the input (pipeline.run.extract_to_parts)
        self.cluster = None
        self.scheduler = scheduler
        if scheduler:
            if workers and workers > 1:
                logger.warning("--workers is ignored with --scheduler: the cluster has its own workers")
            target = _scheduler_target(scheduler)
            try:
                self.client = distributed.Client(timeout=f"{connect_timeout}s", set_as_default=False,
                                                 **target)
            except Exception as error:  # OSError / TimeoutError
                raise _run_error(f"cannot reach the Dask scheduler at {scheduler} within "
                                 f"{connect_timeout:g} s ({type(error).__name__}); is `dask scheduler` "
                                 "running there and the port open?") from None
            try:
                if not self.client.scheduler_info().get("workers"):
                    logger.info("waiting up to %d s for a Dask worker at %s", WORKER_WAIT, scheduler)
                    self.client.wait_for_workers(1, timeout=WORKER_WAIT)
            except Exception:
                self.client.close()
                raise _run_error(f"the Dask scheduler at {scheduler} has no workers "
                                 f"(none joined within {WORKER_WAIT} s)") from None
        else:
            from dask.system import CPU_COUNT
            count = workers or CPU_COUNT
            try:
                self.cluster = distributed.LocalCluster(
                    n_workers=count, threads_per_worker=1, processes=True,
                    dashboard_address=":0", silence_logs=logging.ERROR)
            except Exception as error:
                raise _run_error(f"could not start a local Dask cluster of {count} workers "
                                 f"({type(error).__name__}: {str(error)[:200]})") from None
            try:
                self.client = distributed.Client(self.cluster, set_as_default=False)
            except BaseException:
                self.cluster.close()
                raise
        self.address = self.client.scheduler.address
        # one warm-up task per worker: the pipeline builds while the client reads the input
        warm = uuid.uuid4().hex[:12]
        for number, worker in enumerate(self.client.nthreads()):
            distributed.fire_and_forget(self.client.submit(
                _warm_up, pure=False, workers=[worker], allow_other_workers=False,
                key=f"vertebro-warm-up-{warm}-{number}"))
        logger.info("Dask: %d worker thread(s) at %s", self.threads(), self.address)
        if importlib.util.find_spec("bokeh") is not None:
            logger.info("Dask dashboard: %s", self.client.dashboard_link)

    def threads(self) -> int:
        return sum(self.client.nthreads().values())

    def describe(self) -> dict:
        """For the manifest: where it ran (no credentials in a scheduler address)."""
        workers = self.client.scheduler_info().get("workers", {})
        return {"scheduler": self.scheduler or "LocalCluster", "workers": len(workers),
                "threads": self.threads(), "partitions": self._partitions(), "read": self.read}

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()

    def __enter__(self) -> DaskSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- extraction ------------------------------------------------------

    def run_partitions(self, partitions: Iterable[tuple[int, object]],
                       processor: BatchProcessor) -> Iterator[tuple[int, pd.DataFrame, pd.DataFrame, dict]]:
        """Read and process ``(index, Partition)`` pairs on the workers (:func:`process_partition`);
        yield ``(index, notes, mentions, facts)`` in input order, ``row`` counted from 0 per partition."""
        yield from self.run_batches(partitions, processor, function=process_partition, what="partition")

    def run_batches(self, batches: Iterable[tuple[int, pd.DataFrame]],
                    processor: BatchProcessor, *, function=None,
                    what: str = "batch") -> Iterator[tuple[int, pd.DataFrame, pd.DataFrame]]:
        """Process ``(index, batch)`` pairs on the cluster; yield ``(index, notes, mentions)`` in input order.

        At most ``2 × threads`` batches are queued or running on the cluster,
        and at most ``8 × threads`` are held on the client (finished, waiting
        for an earlier one): the input is never read far ahead. ``threads``
        is counted again as batches go, so workers that join are used.
        """
        from distributed import wait
        spec = processor_spec(processor)
        run = uuid.uuid4().hex[:12]  # keys must not meet those of another run on the same scheduler
        in_flight: deque = deque()

        def unfinished() -> list:
            return [future for _, future in in_flight if not future.done()]

        try:
            for index, batch in batches:
                threads = max(1, self.threads())
                running, held = 2 * threads, max(8, 8 * threads)
                future = self.client.submit(function or process_with_spec, spec, batch, pure=False,
                                            retries=TASK_RETRIES, key=f"vertebro-{what}-{run}-{index}")
                in_flight.append((index, future))
                while in_flight and (in_flight[0][1].done() or len(in_flight) >= held):
                    yield self._collect(*in_flight.popleft(), what)
                pending = unfinished()
                while len(pending) >= running:
                    with self.client.as_current():
                        wait(pending, return_when="FIRST_COMPLETED")
                    while in_flight and in_flight[0][1].done():
                        yield self._collect(*in_flight.popleft(), what)
                    pending = unfinished()
            while in_flight:
                yield self._collect(*in_flight.popleft(), what)
        finally:
            if in_flight:
                try:
                    self.client.cancel([future for _, future in in_flight])
                except Exception:  # the client is already closed
                    pass

    def _collect(self, index: int, future, what: str = "batch") -> tuple:
        return (index, *self._result(future, f"{what} {index}"))

    def _result(self, future, what: str):
        from distributed import KilledWorker

        from ..io.readers import InputError
        try:
            return future.result()
        except KilledWorker:
            raise _run_error(f"{what}: the workers running it died repeatedly (out of memory? killed?); "
                             "see the worker logs") from None
        except (WorkerMismatch, InputError) as error:  # one line, never note text
            raise _run_error(str(error)) from None
        except (FileNotFoundError, PermissionError) as error:
            raise _run_error(f"{what}: a worker cannot read the input ({type(error).__name__}): workers read "
                             "the input themselves; put it where they can read it (same path), or use "
                             "--read-on client") from None
        except Exception as error:
            # the class name only: a message could quote note text
            raise _run_error(f"{what} failed on the Dask cluster: {type(error).__name__}") from None

    # -- screening, grouped by patient ---------------------------------------

    def _partitions(self) -> int:
        return self.partitions or max(1, 2 * self.threads())

    def screen_patients(self, mentions: pd.DataFrame, notes: pd.DataFrame, config, *,
                        note_counts: pd.Series | None = None, shared_ids: bool | None = None
                        ) -> pd.DataFrame:
        """:func:`screen_patients` on the cluster, one task per group of patients; same frame.

        ``note_counts`` (person_id -> notes) as for :func:`screen_patients`;
        ``shared_ids``: whether a note id belongs to several patients, when
        already known (see :func:`pipeline.run.note_census`).
        """
        from ..screening import screen_patients
        count = self._partitions()
        if shared_ids is None:
            shared_ids = _ids_shared_by_patients(notes)
        if count > 1 and shared_ids:
            # screen_patients orders and joins some evidence by note_id over the whole cohort: when
            # patients share a note id, groups of patients would not give the whole screening
            logger.info("some note ids belong to several patients: screening in one task")
            count = 1
        if count <= 1:
            future = self.client.submit(_screen_task, mentions, notes, config, note_counts, pure=False,
                                        retries=TASK_RETRIES)
            return self._result(future, "screening")
        run = uuid.uuid4().hex[:12]
        note_part = patient_groups(notes["person_id"], count)
        mention_part = patient_groups(mentions["person_id"], count)
        count_part = (None if note_counts is None else
                      patient_groups(pd.Series(note_counts.index, dtype=object), count))
        futures = []
        for part in range(count):
            part_notes = notes[note_part == part]
            part_mentions = mentions[mention_part == part]
            part_counts = None if note_counts is None else note_counts[count_part == part]
            if part_notes.empty and part_mentions.empty and (part_counts is None or part_counts.empty):
                continue
            futures.append(self.client.submit(_screen_task, part_mentions, part_notes, config, part_counts,
                                              pure=False, retries=TASK_RETRIES,
                                              key=f"vertebro-screen-{run}-{part}"))
        frames = [self._result(future, "screening") for future in futures]
        if not frames:
            return screen_patients(mentions, notes, config, note_counts=note_counts)
        patients = pd.concat(frames, ignore_index=True)
        return patients.sort_values("person_id", kind="stable").reset_index(drop=True)


def _scheduler_target(scheduler: str) -> dict:
    """``Client`` arguments for an address (``tcp://host:8786``) or a scheduler file (``*.json``)."""
    from distributed.comm.addressing import get_address_host_port
    if scheduler.endswith(".json"):
        path = Path(scheduler).expanduser()
        if not path.is_file():
            raise _run_error(f"no such scheduler file: {scheduler}")
        return {"scheduler_file": str(path)}
    try:
        get_address_host_port(scheduler, strict=False)
    except ValueError as error:
        raise _run_error(f"not a Dask scheduler address: {scheduler!r} ({error}); "
                         "expected tcp://HOST:PORT or a scheduler file *.json") from None
    return {"address": scheduler}


def _ids_shared_by_patients(notes: pd.DataFrame) -> bool:
    """Whether a note id (``""`` included) belongs to more than one patient."""
    pairs = notes[["note_id", "person_id"]].drop_duplicates()
    return bool(pairs["note_id"].duplicated().any())


def run_batches_dask(batches: Iterable[tuple[int, pd.DataFrame]], processor: BatchProcessor, *,
                     workers: int | None = None, scheduler: str | None = None,
                     session: DaskSession | None = None) -> Iterator[tuple[int, pd.DataFrame, pd.DataFrame]]:
    """Process ``(index, batch)`` pairs on Dask; yield ``(index, notes, mentions)`` in input order.

    Uses ``session`` when given, else connects (and disconnects at the end).
    """
    if session is not None:
        yield from session.run_batches(batches, processor)
        return
    with DaskSession(workers=workers, scheduler=scheduler) as own:
        yield from own.run_batches(batches, processor)


def extract_partitions(plan, sources, work: Path, processor: BatchProcessor, session: DaskSession, *,
                       done: set[int], key: str, fingerprints: list, progress=None) -> dict:
    """The extraction when the workers read the input (``plan``: :func:`pipeline.io.partitions.plan_partitions`).

    Each partition's notes and mentions come back with ``row`` counted from 0;
    the client shifts them by the notes of all earlier partitions (in input
    order, as the local readers number them), writes them as the parts
    ``notes-NNNNNN.parquet`` / ``mentions-NNNNNN.parquet`` (NNNNNN: the
    partition) with their facts ``part-NNNNNN.json`` (statistics, line count),
    checkpoints, and merges the reading statistics into each source.
    """
    import json
    import time

    from ..io.partitions import PlanStats
    from ..io.writers import write_json
    from ..run import _save_checkpoint, store_part

    started = time.perf_counter()
    totals = PlanStats(sources)
    by_index = {partition.index: partition for partition in plan}
    state = {"next": 0, "row": 0, "skipped": 0}

    def account(index: int, notes_ids: list[str], facts: dict) -> None:
        totals.add(by_index[index], facts["stats"], facts["lines"], notes_ids)
        state["row"] += facts["stats"]["rows"]
        state["next"] = index + 1

    def catch_up(until: int) -> None:
        """Count the partitions done by an interrupted run, up to ``until`` (exclusive)."""
        for index in range(state["next"], until):
            facts = json.loads((work / f"part-{index:06d}.json").read_text())
            ids = pd.read_parquet(work / f"notes-{index:06d}.parquet", columns=["note_id"])["note_id"].tolist()
            account(index, ids, facts)
            state["skipped"] += facts["stats"]["rows"]
            if progress:
                progress(facts["stats"]["rows"])

    pending = ((partition.index, partition) for partition in plan if partition.index not in done)
    for index, notes, mentions, facts in session.run_partitions(pending, processor):
        catch_up(index)
        shift = state["row"]
        notes = notes.assign(row=notes["row"] + shift)
        mentions = mentions.assign(row=mentions["row"] + shift)
        store_part(work, index, notes, mentions)
        write_json(facts, work / f"part-{index:06d}.json")
        account(index, notes["note_id"].tolist(), facts)
        done.add(index)
        _save_checkpoint(work, key, done)
        if progress:
            progress(len(notes))
    catch_up(len(plan))
    totals.finish()
    return {"extract_seconds": round(time.perf_counter() - started, 3), "resumed_notes": state["skipped"],
            "fingerprints": fingerprints, "run_key": key}
