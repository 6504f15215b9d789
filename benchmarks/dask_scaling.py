"""How oracle work scales onto a dask cluster: measured on this machine, projected for a
full two-input float16 sweep (every pair of float16 bit patterns, 2^32 pairs).

    python benchmarks/dask_scaling.py [--quick] [--workers 2 | --scheduler ADDRESS | --no-cluster]
                                      [--rows 16] [--stride 8] [--losses mean_squared_error ...]
                                      [--out FILE.json]

The unit of a sweep is a *row*: one y_true bit pattern against all 2^16 y_pred bit
patterns, 65,536 elements; the sweep is 65,536 rows. The script measures on a stratified
sample of rows (``--rows`` y_true patterns evenly spaced over the 2^16 bit patterns, so
both signs, every binade, zeros, subnormals, infinities and NaNs come in at their share),
each row cut to every ``--stride``-th y_pred pattern (also evenly spaced). Each task is
``Loss.elementwise.exact(y_true, y_pred).round(float16)`` on one such row: the oracle's
whole cost (exact inputs, ball evaluation, Ziv's fallback, rounding).

1. **One process**: every (loss, row) task in this process, one after another; cost per
   element = CPU time of the task (``time.thread_time``: what a dedicated core spends,
   unlike wall time on a shared machine) / elements; wall time beside it. A size series
   (one row cut to 1/64 .. the whole row) shows the fixed cost per oracle call.
2. **Local cluster**: a ``LocalCluster`` of ``--workers`` single-thread worker processes
   on 127.0.0.1 (or the cluster at ``--scheduler ADDRESS``), driven through ``lossref._procs.work_pool`` as ``lossref golden
   --scheduler`` drives it. After a warm-up task per worker: the dispatch overhead per
   task (no-op tasks through the same ordered map), then the same (loss, row) tasks;
   elements per worker-second = elements / (wall time x workers), and per worker
   CPU-second. Every task returns a hash of its rounded results, compared with the
   one-process run's (they must agree).
3. **Projection** onto N dedicated workers for 2^32 pairs, on paper, at one row a task:
   task time = 65,536 x (worker CPU cost per element) + dispatch cost per task;
   worker-hours = 65,536 tasks x task time; wall time = that / N; and the scheduler's
   load (tasks per second) at N workers, to hold against what one scheduler sustains.

Nothing here depends on the date or the commit: rerun it after the oracle changes and
copy the printed table into ``benchmarks/dask_scaling.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
import warnings

import numpy as np

import lossref
from lossref import _procs

SWEEP_PAIRS = 1 << 32
ROW = 1 << 16
DEFAULT_LOSSES = ("mean_squared_error", "huber", "log_cosh", "binary_crossentropy")


def row_task(args):
    """One row of the sweep: y_true = bit pattern `row`, y_pred = every `stride`-th
    pattern from `offset`; ``(elements, cpu seconds, wall seconds, hash of results)``."""
    loss, row, stride, offset = args
    p = (np.arange(offset, ROW, stride, dtype=np.uint32).astype(np.uint16)).view(np.float16)
    t = np.full(p.shape, row, dtype=np.uint16).view(np.float16)
    c0, w0 = time.thread_time(), time.perf_counter()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        r = lossref.get(loss).elementwise.exact(t, p).round(np.float16)
    c1, w1 = time.thread_time(), time.perf_counter()
    digest = hashlib.sha256(np.ascontiguousarray(r, dtype=np.float16).view(np.uint16).tobytes()).hexdigest()
    return int(p.size), c1 - c0, w1 - w0, digest[:16]


def noop(x):
    """A task that does nothing: what dispatching one costs."""
    return x


def sample_rows(k: int):
    """`k` y_true bit patterns evenly spaced over the 2^16 (stratified by sign and binade)."""
    return [int((i + 0.5) * ROW / k) for i in range(k)]


def machine():
    try:
        from importlib.metadata import version
        flint = version("python-flint")
    except Exception:  # noqa: BLE001
        flint = "-"
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    from lossref import oracle
    return {"lossref": lossref.__version__, "python": platform.python_version(), "cpu": cpu,
            "cpus": os.cpu_count(), "numpy": np.__version__, "python-flint": flint,
            "oracle_backend": oracle.BACKEND, "balls": bool(oracle.use_balls())}


def one_process(tasks):
    out = {}
    for t in tasks:
        n, cpu, wall, digest = row_task(t)
        out[t] = {"elements": n, "cpu_s": cpu, "wall_s": wall, "digest": digest}
    return out


def size_series(loss: str, row: int):
    """Cost per element against the number of elements per oracle call."""
    res = []
    for stride in (64, 16, 4, 1):
        n, cpu, wall, _ = row_task((loss, row, stride, 0))
        res.append({"elements": n, "cpu_us_per_element": cpu / n * 1e6, "wall_us_per_element": wall / n * 1e6})
    return res


def on_cluster(tasks, workers: int, dispatch_tasks: int, scheduler=None):
    """The tasks on a local cluster of `workers` processes, or on the cluster at
    `scheduler` (its worker threads counted as the workers)."""
    import contextlib

    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if scheduler is None:
            scheduler = stack.enter_context(LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=":0")).scheduler_address
        else:
            with Client(scheduler, set_as_default=False, timeout=_procs.connect_timeout()) as c:
                workers = sum(c.nthreads().values())
        with _procs.work_pool(1, scheduler) as pmap:
            # warm-up: every worker imports lossref and evaluates each loss once
            warm = [(t[0], t[1], 1024, 0) for t in tasks[:: max(1, len(tasks) // (2 * workers))]]
            list(pmap(row_task, warm))
            w0 = time.perf_counter()
            list(pmap(noop, range(dispatch_tasks)))
            dispatch = (time.perf_counter() - w0) / dispatch_tasks
            w0 = time.perf_counter()
            results = list(pmap(row_task, tasks))
            wall = time.perf_counter() - w0
    per_task = {t: {"elements": r[0], "cpu_s": r[1], "wall_s": r[2], "digest": r[3]}
                for t, r in zip(tasks, results)}
    return {"workers": workers, "wall_s": wall, "dispatch_s_per_task": dispatch,
            "dispatch_tasks": dispatch_tasks, "tasks": per_task}


def summarise(losses, single, cluster):
    """Per loss: cost per element in one process (CPU time of the evaluating thread, and
    wall time), and on the cluster the CPU cost per element on the workers and the
    elements per worker-second.

    CPU time is what a dedicated core spends; wall time on a shared machine also counts
    the other processes' turns. The cluster's elements per worker-second is wall-based:
    elements / (wall time of the whole map x workers), so it includes the dispatch, the
    transfers, the client and the scheduler."""
    rows = []
    for loss in losses:
        mine = {t: v for t, v in single.items() if t[0] == loss}
        n = sum(v["elements"] for v in mine.values())
        row = {"loss": loss, "elements": n,
               "cpu_us_per_element": sum(v["cpu_s"] for v in mine.values()) / n * 1e6,
               "wall_us_per_element": sum(v["wall_s"] for v in mine.values()) / n * 1e6,
               "task_cpu_us_per_element_range": [min(v["cpu_s"] / v["elements"] * 1e6 for v in mine.values()),
                                                 max(v["cpu_s"] / v["elements"] * 1e6 for v in mine.values())]}
        if cluster:
            theirs = {t: v for t, v in cluster["tasks"].items() if t[0] == loss}
            row["worker_cpu_us_per_element"] = sum(v["cpu_s"] for v in theirs.values()) / n * 1e6
            row["same_results"] = all(theirs[t]["digest"] == mine[t]["digest"] for t in mine)
        rows.append(row)
    if cluster:  # the cluster ran every loss's tasks in one map: one rate over all of them
        n_all = sum(v["elements"] for v in cluster["tasks"].values())
        cpu_all = sum(v["cpu_s"] for v in cluster["tasks"].values())
        cluster["elements_per_worker_s"] = n_all / (cluster["wall_s"] * cluster["workers"])
        cluster["elements_per_worker_cpu_s"] = n_all / cpu_all
        # the share of a worker's wall time spent evaluating: the rest is dispatch, transfer,
        # idling while the client takes results in order, and other processes' turns
        cluster["busy"] = cpu_all / (cluster["wall_s"] * cluster["workers"])
    return rows


def project(rows, cluster, ns=(1, 16, 64, 256, 1024, 4096)):
    """2^32 pairs at one row (65,536 elements) a task on N dedicated workers: each task
    costs its elements at the cluster's CPU cost per element, plus the measured dispatch
    cost per task."""
    out = []
    dispatch = cluster["dispatch_s_per_task"] if cluster else 0.0
    for row in rows:
        cost = row.get("worker_cpu_us_per_element", row["cpu_us_per_element"]) * 1e-6
        task_s = ROW * cost + dispatch
        worker_s = (SWEEP_PAIRS // ROW) * task_s
        out.append({"loss": row["loss"], "elements_per_worker_s": ROW / task_s,
                    "worker_hours": worker_s / 3600, "task_s": task_s,
                    "wall_h": {n: worker_s / n / 3600 for n in ns},
                    "tasks_per_s": {n: n / task_s for n in ns}})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 rows, stride 32: about a minute")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rows", type=int, default=16, help="y_true patterns sampled (default 16)")
    ap.add_argument("--stride", type=int, default=8, help="every STRIDE-th y_pred pattern (default 8)")
    ap.add_argument("--losses", nargs="+", default=list(DEFAULT_LOSSES))
    ap.add_argument("--no-cluster", action="store_true", help="one process only (no dask needed)")
    ap.add_argument("--scheduler", default=None, metavar="ADDRESS",
                    help="measure on the cluster at ADDRESS instead of a local one")
    ap.add_argument("--dispatch-tasks", type=int, default=1000)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    if args.quick:
        args.rows, args.stride, args.dispatch_tasks = 4, 32, 300

    rows = sample_rows(args.rows)
    tasks = [(loss, r, args.stride, (r * 7) % args.stride) for loss in args.losses for r in rows]
    info = machine()
    info["load_before"] = round(os.getloadavg()[0], 1)
    print(f"lossref {info['lossref']}, oracle {info['oracle_backend']} (balls: {info['balls']}, "
          f"python-flint {info['python-flint']}), {info['cpu']}, {info['cpus']} CPUs", flush=True)
    print(f"{len(tasks)} tasks: {len(args.losses)} losses x {len(rows)} rows of "
          f"{ROW // args.stride} elements", flush=True)

    for loss in args.losses:  # warm-up: imports, the first call of each loss
        row_task((loss, rows[0], 1024, 0))
    t0 = time.perf_counter()
    single = one_process(tasks)
    print(f"one process: {time.perf_counter() - t0:.1f} s", flush=True)
    series = size_series(args.losses[-1], rows[len(rows) // 3])
    cluster = None
    if not args.no_cluster:
        cluster = on_cluster(tasks, args.workers, args.dispatch_tasks, args.scheduler)
        print(f"cluster of {args.workers}: {cluster['wall_s']:.1f} s, dispatch "
              f"{cluster['dispatch_s_per_task'] * 1e3:.2f} ms a task", flush=True)
    table = summarise(args.losses, single, cluster)
    proj = project(table, cluster)

    print(f"\nload average before / after: {info['load_before']} / {os.getloadavg()[0]:.1f} "
          f"on {info['cpus']} CPUs")
    print("\n| loss | one process: CPU µs per element (task range) | wall µs per element | "
          "cluster: worker CPU µs per element | same results |")
    print("|---|---|---|---|---|")
    for r in table:
        lo, hi = r["task_cpu_us_per_element_range"]
        print(f"| {r['loss']} | {r['cpu_us_per_element']:.1f} ({lo:.1f}–{hi:.1f}) | "
              f"{r['wall_us_per_element']:.1f} | {r.get('worker_cpu_us_per_element', float('nan')):.1f} | "
              f"{r.get('same_results', '-')} |")
    if cluster:
        print(f"\ncluster of {cluster['workers']} workers over all losses: "
              f"{cluster['elements_per_worker_s']:,.0f} elements per worker-second (wall), "
              f"{cluster['elements_per_worker_cpu_s']:,.0f} per worker CPU-second, workers busy "
              f"{cluster['busy']:.0%} of the wall time; dispatch {cluster['dispatch_s_per_task'] * 1e3:.2f} ms "
              f"a task ({1 / cluster['dispatch_s_per_task']:,.0f} tasks/s through one client)")
    print(f"\nsize series ({args.losses[-1]}): " + ", ".join(
        f"{s['elements']}: {s['cpu_us_per_element']:.1f} µs" for s in series) + " (CPU per element)")
    ns = list(proj[0]["wall_h"])
    print("\n| loss | elements per worker-second | worker-hours for 2^32 | one row (task) s | " +
          " | ".join(f"wall h, N={n}" for n in ns) + " | tasks/s at N=" + str(ns[-1]) + " |")
    print("|---|---|---|---|" + "---|" * len(ns) + "---|")
    for p in proj:
        print(f"| {p['loss']} | {p['elements_per_worker_s']:,.0f} | {p['worker_hours']:,.1f} | {p['task_s']:.2f} | " +
              " | ".join(f"{p['wall_h'][n]:,.2f}" for n in ns) + f" | {p['tasks_per_s'][ns[-1]]:,.0f} |")
    if args.out:
        def keyed(d):
            return {"/".join(map(str, k)): v for k, v in d.items()}
        doc = {"machine": info, "args": vars(args), "one_process": keyed(single), "size_series": series,
               "summary": table, "projection": proj}
        if cluster:
            doc["cluster"] = {**cluster, "tasks": keyed(cluster["tasks"])}
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1, default=str)
    bad = [r["loss"] for r in table if r.get("same_results") is False]
    if bad:
        print(f"\nthe cluster's results differ from one process's for: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
