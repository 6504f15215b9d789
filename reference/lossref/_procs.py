"""Worker processes that an interrupt cannot leave behind.

Ctrl-C sends SIGINT to the whole process group: without care every pool worker prints its
own ``KeyboardInterrupt`` traceback. Workers made here ignore SIGINT, so only the parent
sees it. On an exception in the parent the tasks not yet started are dropped and the
running ones finish (each is short: one file, one case); they are not killed, because a
worker killed while it sends a result leaves half a message in the pool's pipe and the
pool then never shuts down. A second Ctrl-C while they finish kills them.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Iterator

__all__ = ["process_pool"]


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A ``ProcessPoolExecutor`` of `workers` processes that ignore SIGINT; on an exception
    in the ``with`` block (Ctrl-C included) the tasks not started are cancelled."""
    # forking a process that runs JAX's threads may deadlock the child (a lock held by a
    # thread that the child does not have): then the workers start from a fork server
    ctx = None
    if "jax" in sys.modules and "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
    pool = ProcessPoolExecutor(max_workers=max(1, workers), initializer=_ignore_sigint, mp_context=ctx)
    try:
        yield pool
    except BaseException:
        try:
            pool.shutdown(wait=True, cancel_futures=True)
        except KeyboardInterrupt:  # impatient: stop the running tasks too
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.kill()
        raise
    pool.shutdown(wait=True)
