"""The local engine: batches through worker processes on one machine.

Each worker builds the pipeline once (medspaCy components cannot be pickled
into ``nlp.pipe(n_process=...)``) and returns plain frames, never Docs.
Results come back in input order, so the output does not depend on the
number of workers.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator

import pandas as pd

from ..nlp.extract import BatchProcessor, process_batch

logger = logging.getLogger(__name__)

_WORKER: BatchProcessor | None = None


def _init_worker(patterns: list[str], nlp_date: str, nlp_datetime: str, use_prefilter: bool) -> None:
    global _WORKER
    logging.getLogger("medspacy").setLevel(logging.WARNING)
    _WORKER = BatchProcessor(patterns=patterns, nlp_date=nlp_date, nlp_datetime=nlp_datetime,
                             use_prefilter=use_prefilter)


def _run_in_worker(item: tuple[int, pd.DataFrame]) -> tuple[int, pd.DataFrame, pd.DataFrame]:
    index, batch = item
    assert _WORKER is not None
    notes, mentions = process_batch(batch, _WORKER)
    return index, notes, mentions


def run_batches(batches: Iterable[tuple[int, pd.DataFrame]], processor: BatchProcessor, *,
                workers: int = 1) -> Iterator[tuple[int, pd.DataFrame, pd.DataFrame]]:
    """Process ``(index, batch)`` pairs; yield ``(index, notes, mentions)`` in input order."""
    if workers <= 1:
        for index, batch in batches:
            notes, mentions = process_batch(batch, processor)
            yield index, notes, mentions
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    in_flight: deque = deque()
    limit = 2 * workers  # read ahead a little, never the whole input (bounded memory)
    with context.Pool(
        processes=workers,
        initializer=_init_worker,
        initargs=(list(processor.patterns), processor.nlp_date, processor.nlp_datetime,
                  processor.use_prefilter),
    ) as pool:
        for item in batches:
            in_flight.append(pool.apply_async(_run_in_worker, (item,)))
            while len(in_flight) >= limit:
                yield in_flight.popleft().get()
        while in_flight:
            yield in_flight.popleft().get()
