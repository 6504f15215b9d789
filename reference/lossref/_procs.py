"""Worker processes that an interrupt cannot leave behind.

Ctrl-C sends SIGINT to the whole process group: without care every pool worker prints its
own ``KeyboardInterrupt`` traceback and the parent waits for their tasks. Workers made
here ignore SIGINT, so only the parent sees it; on any exception the parent terminates
them and drops the tasks not yet started.
"""

from __future__ import annotations

import signal
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Iterator

__all__ = ["process_pool"]


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A ``ProcessPoolExecutor`` of `workers` processes that ignore SIGINT; on an exception
    in the ``with`` block (Ctrl-C included) its workers are terminated, not awaited."""
    pool = ProcessPoolExecutor(max_workers=max(1, workers), initializer=_ignore_sigint)
    try:
        yield pool
    except BaseException:
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
