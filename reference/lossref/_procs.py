"""Where long work runs: local worker processes, or the workers of a dask cluster.

Local processes. Ctrl-C sends SIGINT to the whole process group: without care every pool
worker prints its own ``KeyboardInterrupt`` traceback. Workers made here ignore SIGINT, so
only the parent sees it. On an exception in the parent the tasks not yet started are
dropped and the running ones finish (each is short: one file, one case); they are not
killed, because a worker killed while it sends a result leaves half a message in the
pool's pipe and the pool then never shuts down. A second Ctrl-C while they finish kills
them.

A dask cluster (:func:`work_pool` with a scheduler address). dask is imported only then,
so lossref works without it. Each task is a pure function of picklable arguments; the
results come back in order, so a run writes the same bytes wherever its tasks ran. Three
things make that hold on workers that live longer than one run and may serve others:

* every task checks that its worker runs the same lossref (a hash of the package's files)
  and the same numeric libraries as this process (:func:`fingerprint`); a worker that
  differs stops the run with :class:`SchedulerError` rather than compute other bytes;
* the oracle's process-wide settings of this process (``LOSSREF_*`` environment
  variables such as ``LOSSREF_ORACLE``, and the settings of :mod:`lossref.oracle` they
  set at import, e.g. ``BACKEND``) are set on the worker for the task and put back after;
* the oracle's working precision is process-wide (mpmath's context, python-flint's
  ``ctx.prec``, the backend in use), so one worker process runs one lossref task at a
  time whatever its thread count: start workers with ``--nthreads 1`` and as many
  processes as cores (``--nworkers``).

Every problem with the cluster (dask not installed, an address that does not parse, no
scheduler answering within :func:`connect_timeout` seconds, no worker, a worker unlike
this process, the scheduler lost during the run) is a :class:`SchedulerError` whose
message is one line; the commands report it with exit code 2.
"""

from __future__ import annotations

import hashlib
import importlib
import multiprocessing
import os
import signal
import sys
import threading
import uuid
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Tuple

__all__ = ["process_pool", "work_pool", "SchedulerError", "check_scheduler_address",
           "connect_timeout", "fingerprint", "CONNECT_TIMEOUT"]

#: Seconds to wait for the scheduler to answer, and then for a first worker to be there;
#: the environment variable ``LOSSREF_DASK_TIMEOUT`` overrides it.
CONNECT_TIMEOUT = 5.0

#: Environment variables of this process that are not sent to dask workers: they
#: describe this machine, not the computation.
_LOCAL_ONLY_ENV = frozenset({"LOSSREF_THREADS", "LOSSREF_DASK_TIMEOUT"})

#: Modules whose public UPPER_CASE settings (str, int, float, bool or None) are copied to
#: the workers for each task: the oracle's process-wide switches (BACKEND, BALL_LEVELS,
#: MAX_PRECISION, ...), which environment variables set at import or code sets later.
_SETTINGS_MODULES = ("lossref.oracle", "lossref.oracle.balls", "lossref.oracle.ops")

#: Numeric libraries whose versions must match between this process and the workers.
_LIBRARIES = ("numpy", "mpmath", "python-flint", "ml_dtypes", "gmpy2")


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


@contextmanager
def work_pool(jobs: int, scheduler: "str | None" = None) -> Iterator[Callable[..., Iterator]]:
    """A ``map(fn, iterable)`` that returns results in order: `jobs` local processes
    (:func:`process_pool`; the builtin ``map`` for one job), or, with `scheduler`, the
    workers of a ``dask.distributed`` cluster at that address (`jobs` is then unused).

    On the cluster `fn` must be picklable (a module-level function) and so must the
    items; the items are submitted a bounded window ahead of the results taken, so an
    iterable of any length can be mapped. An exception raised by `fn` comes back as it
    is; a problem with the cluster is a :class:`SchedulerError`.

    Raises
    ------
    SchedulerError
        On entry: dask is not installed, `scheduler` does not parse, no scheduler
        answers there, no worker joins, a worker runs other code or library versions;
        later: the scheduler is lost, a worker turns out to differ, workers keep dying.
    """
    if scheduler is not None:
        with _dask_pool(scheduler) as mapper:
            yield mapper
        return
    if jobs <= 1:
        yield map
        return
    with process_pool(jobs) as pool:
        yield pool.map


# --- dask ------------------------------------------------------------------------------------


class SchedulerError(RuntimeError):
    """The dask cluster named by a scheduler address cannot be used (one-line message)."""


class WorkerMismatch(RuntimeError):
    """Raised by a task on a worker that runs other lossref code or library versions."""


def connect_timeout() -> float:
    """Seconds to wait for a scheduler and a first worker: ``LOSSREF_DASK_TIMEOUT`` if set,
    else :data:`CONNECT_TIMEOUT`."""
    raw = os.environ.get("LOSSREF_DASK_TIMEOUT", "").strip()
    if not raw:
        return CONNECT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value < float("inf")):
        raise SchedulerError(f"LOSSREF_DASK_TIMEOUT must be a positive number of seconds, got {raw!r}")
    return value


def _distributed(address: str):
    try:
        import distributed
    except ImportError:
        raise SchedulerError(f"scheduler {address}: dask.distributed is not installed "
                             "(pip install 'lossref[dask]')") from None
    return distributed


def check_scheduler_address(address: str) -> str:
    """`address` if it is a dask scheduler address (``tcp://HOST:PORT``, ``HOST:PORT``, or
    another scheme dask knows), without connecting; the address dask will use.

    Raises
    ------
    SchedulerError
        dask is not installed, or the address does not parse.
    """
    _distributed(address)
    from distributed.comm.addressing import get_address_host_port, parse_address
    from distributed.comm.registry import get_backend

    try:
        scheme, loc = parse_address(address.strip())
        get_backend(scheme)  # ValueError naming the schemes dask knows
        if scheme in ("tcp", "tls", "ws", "wss"):
            _, port = get_address_host_port(f"{scheme}://{loc}")
            if not 0 < int(port) < 65536:
                raise ValueError(f"port {port} is out of range")
    except (ValueError, TypeError) as e:
        raise SchedulerError(f"scheduler {address!r} is not a dask scheduler address ({e}); "
                             "expected e.g. tcp://HOST:8786") from None
    return f"{scheme}://{loc}"


def _identity(address: str, timeout: float) -> Dict[str, Any]:
    """What the server at `address` says it is (``{"type": "Scheduler", ...}`` for a
    scheduler), asked over one short-lived connection in a thread of its own (the caller
    may be running an event loop)."""
    import asyncio

    from distributed.comm import connect
    from distributed.security import Security

    async def ask():
        comm = await connect(address, timeout=timeout,
                             **Security().get_connection_args("client"))
        try:
            await comm.write({"op": "identity", "reply": True})
            return await asyncio.wait_for(comm.read(), timeout)
        finally:
            comm.abort()

    box: Dict[str, Any] = {}

    def run():
        try:
            box["value"] = asyncio.run(asyncio.wait_for(ask(), timeout + 1))
        except BaseException as e:  # noqa: BLE001 (reported by the caller)
            box["error"] = e

    t = threading.Thread(target=run, name="lossref-dask-probe", daemon=True)
    t.start()
    t.join(timeout + 3)
    if t.is_alive():
        raise TimeoutError(f"no answer after {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _connect(address: str):
    """A ``distributed.Client`` of the scheduler at `address` with a worker, or a
    :class:`SchedulerError`."""
    address = check_scheduler_address(address)
    timeout = connect_timeout()
    try:
        ident = _identity(address, timeout)
    except (OSError, TimeoutError) as e:
        why = "no answer" if "imed out" in str(e) or isinstance(e, TimeoutError) else str(e)
        raise SchedulerError(f"scheduler {address}: cannot connect ({why} within {timeout:g} s); "
                             "is `dask scheduler` running there?") from None
    except Exception as e:  # noqa: BLE001 (something answered, not in dask's protocol)
        raise SchedulerError(f"scheduler {address}: no dask scheduler answers there "
                             f"({_one_line(e)})") from None
    if not isinstance(ident, dict) or ident.get("type") != "Scheduler":
        what = ident.get("type") if isinstance(ident, dict) else type(ident).__name__
        raise SchedulerError(f"scheduler {address}: the server there is not a dask scheduler "
                             f"(it is a {what}); pass the scheduler's address")
    from distributed import Client

    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except Exception as e:  # noqa: BLE001
        raise SchedulerError(f"scheduler {address}: cannot connect ({_one_line(e)})") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except Exception:  # noqa: BLE001
        _close(client)
        raise SchedulerError(f"scheduler {address}: no worker joined within {timeout:g} s "
                             f"(start workers with `dask worker {address} --nthreads 1`)") from None
    except BaseException:
        _close(client)
        raise
    return client


def _one_line(e: BaseException, limit: int = 160) -> str:
    """``Type: first line of the message``, cut to `limit` characters."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _close(client) -> None:
    try:
        client.close(timeout=5)
    except Exception:  # noqa: BLE001 (closing a client of a dead scheduler)
        pass


@lru_cache(maxsize=1)
def _source_hash() -> str:
    """SHA-256 of the lossref package's files (paths and bytes, caches left out), read
    once per process: the code this process imported."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if "__pycache__" in p.parts or p.suffix in (".pyc", ".pyo") or not p.is_file():
            continue
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        h.update(p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@lru_cache(maxsize=1)
def fingerprint() -> Tuple[Tuple[str, str], ...]:
    """What the bytes of a result depend on besides its inputs: the lossref version and a
    hash of its files, and the versions of the numeric libraries (``-``: not installed).
    Computed once per process."""
    from importlib import metadata

    from . import __version__

    out = [("lossref", __version__), ("lossref files", _source_hash())]
    for name in _LIBRARIES:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append((name, "-"))
    return tuple(out)


def _differences(mine, theirs) -> str:
    a, b = dict(mine), dict(theirs)
    diff = [f"{k} {b.get(k, '?')} (here {a.get(k, '?')})" for k in a if a.get(k) != b.get(k)]
    return ", ".join(diff) or "?"


def _settings() -> Tuple[Tuple[str, Optional[str]], Tuple[Tuple[str, str, Any], ...]]:
    """This process's oracle settings: its ``LOSSREF_*`` environment variables (except
    :data:`_LOCAL_ONLY_ENV`) and the plain UPPER_CASE settings of the oracle modules."""
    env = tuple(sorted((k, v) for k, v in os.environ.items()
                       if k.startswith("LOSSREF_") and k not in _LOCAL_ONLY_ENV))
    attrs = []
    for mod_name in _SETTINGS_MODULES:
        try:  # imported here too, so a worker's own earlier settings never stand
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        for k, v in sorted(vars(mod).items()):
            if k.isupper() and not k.startswith("_") and (v is None or isinstance(v, (str, int, float, bool))):
                attrs.append((mod_name, k, v))
    return env, tuple(attrs)


#: One lossref task at a time per process: the oracle's precision and backend are
#: process-wide, so two tasks in two threads of one worker would change each other's.
_TASK_LOCK = threading.Lock()


@contextmanager
def _applied(settings) -> Iterator[None]:
    """This process with `settings` (:func:`_settings` of the client) for the block, and
    mpmath at its default precision as in a fresh process; all put back after."""
    import mpmath

    env, attrs = settings
    saved_env = {k: v for k, v in os.environ.items() if k.startswith("LOSSREF_") and k not in _LOCAL_ONLY_ENV}
    saved_attrs = []
    saved_prec = mpmath.mp.prec
    try:
        for k in saved_env:
            del os.environ[k]
        os.environ.update(dict(env))
        for mod_name, k, v in attrs:
            mod = importlib.import_module(mod_name)
            saved_attrs.append((mod, k, getattr(mod, k, _MISSING)))
            setattr(mod, k, v)
        mpmath.mp.prec = 53
        yield
    finally:
        mpmath.mp.prec = saved_prec
        for mod, k, v in reversed(saved_attrs):
            if v is _MISSING:
                delattr(mod, k)
            else:
                setattr(mod, k, v)
        for k in [k for k in os.environ if k.startswith("LOSSREF_") and k not in _LOCAL_ONLY_ENV]:
            del os.environ[k]
        os.environ.update(saved_env)


_MISSING = object()


class _Task:
    """`fn` as a dask task: checks the worker against the client's fingerprint, runs `fn`
    alone in its process with the client's oracle settings."""

    def __init__(self, fn: Callable, settings, client_fingerprint) -> None:
        self.fn, self.settings, self.client_fingerprint = fn, settings, client_fingerprint

    def __call__(self, item):
        with _TASK_LOCK:
            mine = fingerprint()
            if mine != self.client_fingerprint:
                raise WorkerMismatch(f"a worker runs other code or libraries than this process: "
                                     f"{_differences(self.client_fingerprint, mine)}; run the "
                                     "workers from the same lossref installation and restart them "
                                     "after an upgrade")
            with _applied(self.settings):
                return self.fn(item)


class _DaskMap:
    """The ``map`` of :func:`work_pool` on a dask cluster."""

    def __init__(self, client, address: str) -> None:
        self.client, self.address = client, address

    def _window(self) -> int:
        try:
            threads = sum(self.client.nthreads().values())
        except Exception:  # noqa: BLE001 (the next result reports a lost scheduler)
            threads = 1
        return max(64, 8 * threads)

    def __call__(self, fn: Callable, iterable: Iterable) -> Iterator:
        task = _Task(fn, _settings(), fingerprint())
        name = getattr(fn, "__name__", "task").strip("_") or "task"
        return self._ordered(task, f"lossref-{name}", iter(iterable))

    def _ordered(self, task: _Task, prefix: str, items: Iterator) -> Iterator:
        pending: deque = deque()
        window, taken = self._window(), 0
        more = True
        try:
            while True:
                # refilled a half window at a time: one message to the scheduler per batch
                if more and len(pending) <= window // 2:
                    batch = list(islice(items, window - len(pending)))
                    more = len(batch) == window - len(pending)
                    if batch:
                        pending.extend(self.client.map(
                            task, batch, key=[f"{prefix}-{uuid.uuid4().hex}" for _ in batch],
                            pure=False))
                if not pending:
                    return
                fut = pending.popleft()
                result = self._result(fut)
                fut.release()
                taken += 1
                if taken % 256 == 0:  # workers may have joined or left
                    window = self._window()
                yield result
        finally:
            if pending:
                try:
                    self.client.cancel(list(pending))
                except Exception:  # noqa: BLE001 (the client is closed next anyway)
                    pass

    def _result(self, fut):
        try:
            return fut.result()
        except KeyboardInterrupt:
            raise
        except WorkerMismatch as e:
            raise SchedulerError(f"scheduler {self.address}: {e}") from None
        except BaseException as e:
            if fut.status == "error" and type(e).__name__ != "KilledWorker":
                raise  # the task's own exception, as a local run raises it
            if type(e).__name__ == "KilledWorker":
                raise SchedulerError(f"scheduler {self.address}: workers died running a task "
                                     f"({_one_line(e)}); out of memory?") from None
            raise SchedulerError(f"scheduler {self.address}: lost the cluster during the run "
                                 f"({_one_line(e)})") from None


@contextmanager
def _dask_pool(address: str) -> Iterator[_DaskMap]:
    client = _connect(address)
    address = client.scheduler.address if getattr(client, "scheduler", None) else address
    try:
        try:
            seen = client.run(fingerprint)
        except Exception as e:  # noqa: BLE001 (a worker without lossref cannot unpickle it)
            raise SchedulerError(f"scheduler {address}: the workers cannot run lossref "
                                 f"({_one_line(e)}); install the same lossref on every worker") from None
        mine = fingerprint()
        for worker, theirs in sorted(seen.items()):
            if tuple(map(tuple, theirs)) != mine:
                raise SchedulerError(f"scheduler {address}: worker {worker} runs other code or "
                                     f"libraries than this process: {_differences(mine, theirs)}; "
                                     "run the workers from the same lossref installation and "
                                     "restart them after an upgrade")
        yield _DaskMap(client, address)
    finally:
        _close(client)
