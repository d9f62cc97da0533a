"""Spreading per-image work over processes with results identical to one serial loop.

The evaluation's per-image work (thresholds, contours, IoUs; METHOD.md section 3) is
independent between images, and its accumulators only append per-image results or add
integer-valued histograms. So a split cut into consecutive chunks, each evaluated into its own
accumulators and merged back in chunk order, gives exactly the numbers of the serial loop.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

CHUNKS_PER_WORKER = 4
"""Chunks handed to each worker, so a slow chunk does not leave the other workers idle."""

#: The libraries whose own threads the evaluation limits: module, its getter and setter.
LIBRARY_THREADS = {
    "cv2": ("getNumThreads", "setNumThreads"),
    "torch": ("get_num_threads", "set_num_threads"),
}


def chunk_bounds(count: int, n_chunks: int) -> list[tuple[int, int]]:
    """`(start, stop)` of `n_chunks` consecutive, near-equal, non-empty chunks of `count` items
    (fewer chunks when there are fewer items)."""
    n_chunks = max(1, min(n_chunks, count))
    edges = [round(i * count / n_chunks) for i in range(n_chunks + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def map_in_chunks(
    function: Callable[[Sequence[Item]], Result], items: Sequence[Item], workers: int = 1
) -> list[Result]:
    """`function` applied to consecutive chunks of `items`, results in chunk order.

    With `workers` > 1 the chunks run in that many forked processes, each limited to one
    intra-op thread (the workers are the parallelism); `function` must be a module-level
    function (or a `functools.partial` of one) and its results picklable.
    """
    if workers < 1:
        raise ValueError(f"workers: expected a positive number of processes, found {workers}")
    if workers == 1 or len(items) <= 1:
        with _one_thread():
            return [function(items)]
    bounds = chunk_bounds(len(items), workers * CHUNKS_PER_WORKER)
    chunks = [items[start:stop] for start, stop in bounds]
    # fork, not spawn: spawn re-runs a Snakemake script's top level in every worker.
    context = multiprocessing.get_context("fork")
    with context.Pool(min(workers, len(chunks)), initializer=_one_thread_per_worker) as pool:
        return pool.map(function, chunks, chunksize=1)


def _one_thread_per_worker() -> None:
    """Workers share the cores between them: each runs OpenCV and torch on one thread."""
    _set_library_threads(dict.fromkeys(_library_threads(), 1))


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """OpenCV and torch on one thread while the serial loop runs, as in a worker (their own
    threads on a 2-core machine made a 160-image evaluation take 2.6 s instead of 1.8 s), and
    back to the caller's counts after."""
    before = _library_threads()
    _set_library_threads(dict.fromkeys(before, 1))
    try:
        yield
    finally:
        _set_library_threads(before)


def _library_threads() -> dict[str, int]:
    """The thread counts of the LIBRARY_THREADS this process has imported."""
    return {
        name: getattr(sys.modules[name], getter)()
        for name, (getter, _) in LIBRARY_THREADS.items()
        if name in sys.modules
    }


def _set_library_threads(counts: dict[str, int]) -> None:
    """Set each named library's thread count."""
    for name, count in counts.items():
        getattr(sys.modules[name], LIBRARY_THREADS[name][1])(count)
