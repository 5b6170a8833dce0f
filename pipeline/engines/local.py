"""The local engine: batches through worker processes on one machine.

* Each worker has the pipeline built once: forked workers inherit the
  caller's :class:`BatchProcessor` (nothing to build); spawned ones build it
  in the pool initializer (medspaCy components cannot be pickled into
  ``nlp.pipe(n_process=...)``). Workers return plain frames, never Docs.
* A reader batch is cut into tasks by text length (at most ``max_chars``
  characters of note text each, a longer note alone), so that one batch of
  long reports does not keep one worker busy while the others wait.
* Read-ahead is bounded: at most ``max_tasks`` tasks and ``max_chars_in_flight``
  characters are queued or running; reading waits for the oldest batch.
* Results come back in input order, each reader batch as one
  ``(index, notes, mentions)``, so the output does not depend on the number
  of workers.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator

import pandas as pd

from ..nlp.extract import BatchProcessor, process_batch

logger = logging.getLogger(__name__)

#: Most characters of note text in one task.
MAX_TASK_CHARS = 400_000
#: Most characters of note text queued or being processed at once, all workers together.
MAX_CHARS_IN_FLIGHT = 16_000_000

_WORKER: BatchProcessor | None = None
_SHARED = None  # what map_in_workers' function gets beside the processor


def _init_worker(patterns: list[str], nlp_date: str, nlp_datetime: str, use_prefilter: bool,
                 defer: bool) -> None:
    global _WORKER
    logging.getLogger("medspacy").setLevel(logging.WARNING)
    if _WORKER is None:  # spawned: build the pipeline once, here
        _WORKER = BatchProcessor(patterns=patterns, nlp_date=nlp_date, nlp_datetime=nlp_datetime,
                                 use_prefilter=use_prefilter, defer=defer)


def _run_task(task: tuple[int, int, pd.DataFrame]) -> tuple[int, int, pd.DataFrame, pd.DataFrame]:
    index, part, batch = task
    assert _WORKER is not None
    notes, mentions = process_batch(batch, _WORKER)
    return index, part, notes, mentions


def _text_lengths(batch: pd.DataFrame) -> list[int]:
    return [len(text) if isinstance(text, str) else 0 for text in batch["note_text"]]


def split_batch(batch: pd.DataFrame, max_chars: int = MAX_TASK_CHARS) -> list[pd.DataFrame]:
    """Consecutive slices of ``batch`` holding at most ``max_chars`` characters of text each.

    A note longer than ``max_chars`` is a slice of its own; no slice is empty.
    """
    if len(batch) == 0:
        return [batch]
    slices, start, size = [], 0, 0
    for position, length in enumerate(_text_lengths(batch)):
        if position > start and size + length > max_chars:
            slices.append(batch.iloc[start:position])
            start, size = position, 0
        size += length
    slices.append(batch.iloc[start:])
    return slices


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The frames of one batch's tasks, in order (empty ones only if all are)."""
    filled = [frame for frame in frames if len(frame)]
    if not filled:
        return frames[0]
    if len(filled) == 1:
        return filled[0].reset_index(drop=True)
    return pd.concat(filled, ignore_index=True)


def run_batches(batches: Iterable[tuple[int, pd.DataFrame]], processor: BatchProcessor, *,
                workers: int = 1, max_chars: int = MAX_TASK_CHARS,
                max_tasks: int | None = None, max_chars_in_flight: int = MAX_CHARS_IN_FLIGHT,
                ) -> Iterator[tuple[int, pd.DataFrame, pd.DataFrame]]:
    """Process ``(index, batch)`` pairs; yield ``(index, notes, mentions)`` in input order."""
    if workers <= 1:
        for index, batch in batches:
            notes, mentions = process_batch(batch, processor)
            yield index, notes, mentions
        return
    yield from _run_pool(batches, processor, workers=workers, max_chars=max_chars,
                         max_tasks=max_tasks or 3 * workers, max_chars_in_flight=max_chars_in_flight)


def _run_pool(batches, processor: BatchProcessor, *, workers: int, max_chars: int, max_tasks: int,
              max_chars_in_flight: int) -> Iterator[tuple[int, pd.DataFrame, pd.DataFrame]]:
    fork = "fork" in multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if fork else "spawn")
    # (index, [async results], characters) per reader batch, oldest first
    pending: deque[tuple[int, list, int]] = deque()
    tasks = chars = 0

    def finish_oldest():
        nonlocal tasks, chars
        index, results, size = pending.popleft()
        parts = [result.get() for result in results]
        tasks -= len(results)
        chars -= size
        return index, _concat([p[2] for p in parts]), _concat([p[3] for p in parts])

    with _inherited(processor if fork else None), context.Pool(
            processes=workers,
            initializer=_init_worker,
            initargs=(list(processor.patterns), processor.nlp_date, processor.nlp_datetime,
                      processor.use_prefilter, processor.defer),
    ) as pool:
        for index, batch in batches:
            size = sum(_text_lengths(batch))
            results = [pool.apply_async(_run_task, ((index, part, piece),))
                       for part, piece in enumerate(split_batch(batch, max_chars))]
            pending.append((index, results, size))
            tasks += len(results)
            chars += size
            while pending and (tasks > max_tasks or chars > max_chars_in_flight):
                yield finish_oldest()
        while pending:
            yield finish_oldest()


@contextlib.contextmanager
def _inherited(processor: BatchProcessor | None, shared=None):
    """Make ``processor`` (and ``shared``) what forked workers find: nothing to build or pickle.

    ``None``: spawned workers, which build their own in ``_init_worker``.
    """
    global _WORKER, _SHARED
    previous = _WORKER, _SHARED
    _WORKER, _SHARED = processor, shared
    try:
        yield
    finally:
        _WORKER, _SHARED = previous


def _run_mapped(task):
    function, item = task
    return item, function(_WORKER, _SHARED, item)


def map_in_workers(function, items: Iterable, processor: BatchProcessor, *, workers: int = 1,
                   shared=None) -> Iterator[tuple[object, object]]:
    """``(item, function(processor, shared, item))`` for each item, in order.

    With ``workers > 1`` (and ``fork``) the calls run in forked worker
    processes that inherit ``processor`` and ``shared`` (nothing is pickled
    but the item, ``function`` and the result); else here, one by one.
    ``function`` must be a module-level function.
    """
    items = list(items)
    if workers <= 1 or len(items) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        for item in items:
            yield item, function(processor, shared, item)
        return
    with _inherited(processor, shared), \
            multiprocessing.get_context("fork").Pool(processes=min(workers, len(items))) as pool:
        yield from pool.imap(_run_mapped, [(function, item) for item in items])
