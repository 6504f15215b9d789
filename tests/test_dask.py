"""``--scheduler``: golden vectors and fresh diff cases on a dask.distributed cluster.

The module starts its own cluster, a scheduler and two single-thread worker processes on
127.0.0.1, and checks that what the cluster computes is byte for byte what local
processes compute; then the cluster's errors (no scheduler, an address that does not
parse, dask missing, a worker running other code), each one line and exit code 2 from the
commands.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

import pytest

import lossref
from lossref import _procs, cli
from lossref.vectors import fresh_specs, generate, manifest


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """The address of a local cluster: a scheduler and two worker processes, one thread
    each, all on 127.0.0.1 (the workers import lossref from the same place as this
    process: spawned processes inherit its sys.path)."""
    distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed "
                                                            "(pip install -e '.[test]')")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=":0",
                                       local_directory=str(tmp_path_factory.mktemp("dask")))
    try:
        with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
            where = client.run(lambda: __import__("lossref").__file__)
        assert sorted(where.values()) == [lossref.__file__] * 2, where
        yield cluster.scheduler_address
    finally:
        cluster.close()


def _same_tree(a, b):
    files = manifest.vector_files(a)
    assert files and files == manifest.vector_files(b)
    for rel in files + ["MANIFEST.sha256"]:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the same bytes ---------------------------------------------------------------------------


def test_golden_on_the_cluster_is_byte_identical(scheduler, tmp_path):
    kw = dict(losses=["huber", "log_cosh", "binary_crossentropy"], dtypes=["float16", "bfloat16"],
              cases=6, progress=False)
    local = generate.golden(tmp_path / "local", jobs=2, **kw)
    remote = generate.golden(tmp_path / "dask", scheduler=scheduler, **kw)
    assert not local.failed and not remote.failed
    assert len(remote.written) == 6
    _same_tree(tmp_path / "local", tmp_path / "dask")


def test_golden_command_with_scheduler(scheduler, tmp_path, capsys):
    base = ["golden", "--dialect", "torch", "--loss", "mse_loss", "kl_div", "--dtype", "float32",
            "float16", "--cases", "5", "--quiet"]
    assert cli.main(base + ["--jobs", "1", "--out", str(tmp_path / "local")]) == 0
    assert cli.main(base + ["--scheduler", scheduler, "--out", str(tmp_path / "dask")]) == 0
    assert "4 file(s) written" in capsys.readouterr().out
    _same_tree(tmp_path / "local", tmp_path / "dask")
    # a complete set needs no cluster: nothing is rendered, nothing connects
    assert cli.main(base + ["--scheduler", f"tcp://127.0.0.1:{_free_port()}",
                            "--out", str(tmp_path / "dask")]) == 0


def test_fresh_diff_cases_on_the_cluster_are_identical(scheduler):
    from lossref.diff.cli import with_expectations

    specs = (fresh_specs(3, 0, losses=["huber", "categorical_crossentropy"], dtypes=["float16", "float32"])
             + fresh_specs(3, 0, losses=["cross_entropy", "l1_loss"], dtypes=["bfloat16"], dialect="torch"))
    local = with_expectations(specs, None, 1)
    remote = with_expectations(specs, None, 1, scheduler)
    assert len(remote) == len(specs)
    assert json.dumps(remote, sort_keys=True) == json.dumps(local, sort_keys=True)


def test_diff_command_with_scheduler_writes_the_same_reports(scheduler, tmp_path):
    pytest.importorskip("torch")
    base = ["diff", "torch", "--loss", "mse_loss", "--dtype", "float32", "--cases", "3",
            "--no-cache", "--no-plots"]
    codes = [cli.main(base + ["--jobs", "1", "--out", str(tmp_path / "local")]),
             cli.main(base + ["--scheduler", scheduler, "--out", str(tmp_path / "dask")])]
    assert codes[0] == codes[1] and codes[0] in (0, 1)
    for name in ("report.json", "report.md", "index.html"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "dask" / name).read_bytes()
    assert "--scheduler" not in json.loads((tmp_path / "dask" / "report.json").read_text())["command"]


# --- the map ------------------------------------------------------------------------------------


def test_map_keeps_order_over_a_long_lazy_iterable(scheduler):
    items = (i for i in range(-400, 0))  # more than the window, slower and faster tasks mixed
    with _procs.work_pool(1, scheduler) as pmap:
        got = list(pmap(lambda i: (time.sleep(0.002 * (i % 3)), abs(i))[1], items))
    assert got == list(range(400, 0, -1))


def test_a_task_exception_comes_back_as_it_is(scheduler):
    with _procs.work_pool(1, scheduler) as pmap:
        with pytest.raises(ZeroDivisionError):
            list(pmap(lambda x: 1 / x, [1, 2, 0, 3]))


def test_oracle_settings_of_this_process_reach_the_workers(scheduler, monkeypatch):
    from distributed import Client

    from lossref import oracle

    def seen(_=None):
        from lossref import oracle as o
        return os.environ.get("LOSSREF_ORACLE"), o.BACKEND, o.BALL_LEVELS

    with Client(scheduler, set_as_default=False) as client:
        before = client.run(seen)  # outside any task: the workers' own settings
        monkeypatch.setenv("LOSSREF_ORACLE", "mpmath")
        monkeypatch.setattr(oracle, "BACKEND", "mpmath")
        monkeypatch.setattr(oracle, "BALL_LEVELS", 5)
        with _procs.work_pool(1, scheduler) as pmap:
            assert set(pmap(seen, range(8))) == {("mpmath", "mpmath", 5)}
        # put back after each task
        assert client.run(seen) == before
    assert ("mpmath", "mpmath", 5) not in before.values()


def test_a_worker_with_other_code_is_refused(scheduler, monkeypatch):
    real = _procs.fingerprint()
    # pickled by value: each process answers with its own pid, so the workers differ
    monkeypatch.setattr(_procs, "fingerprint", lambda: real + (("pid", str(os.getpid())),))
    with pytest.raises(_procs.SchedulerError, match="runs other code or libraries than this process"):
        with _procs.work_pool(1, scheduler):
            pass
    monkeypatch.undo()
    # a worker found to differ during a run (one that joined late) stops it too
    with _procs.work_pool(1, scheduler) as pmap:
        monkeypatch.setattr(_procs, "fingerprint", lambda: real[:1] + (("lossref files", "0" * 16),))
        with pytest.raises(_procs.SchedulerError, match=r"lossref files [0-9a-f]{16} \(here 0{16}\)"):
            list(pmap(abs, [1, 2]))


# --- errors: one line, exit code 2 -------------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["golden", "--loss", "huber", "--dtype", "float16", "--cases", "2", "--quiet"],
    ["diff", "torch", "--loss", "mse_loss", "--dtype", "float32", "--cases", "2", "--no-cache",
     "--no-plots"],
])
def test_unusable_scheduler_is_one_line_and_exit_2(command, tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed")
    if command[0] == "diff":
        pytest.importorskip("torch")
    monkeypatch.setenv("LOSSREF_DASK_TIMEOUT", "1")
    port = _free_port()
    for address, why in [(f"tcp://127.0.0.1:{port}", "cannot connect (no answer within 1 s)"),
                         (f"127.0.0.1:{port}", "cannot connect"),
                         ("nonsense", "is not a dask scheduler address"),
                         ("http://127.0.0.1:8786", "unknown address scheme 'http'"),
                         ("tcp://127.0.0.1:99999", "port 99999 is out of range")]:
        t0 = time.perf_counter()
        code = cli.main(command + ["--scheduler", address, "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and why in err, err
        assert err.startswith(f"lossref {command[0]}: error: scheduler"), err
        assert time.perf_counter() - t0 < 15


def test_no_worker_is_an_error(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setenv("LOSSREF_DASK_TIMEOUT", "1")
    with distributed.LocalCluster(n_workers=0, processes=True, host="127.0.0.1",
                                  dashboard_address=":0") as empty:
        with pytest.raises(_procs.SchedulerError, match="no worker joined within 1 s"):
            generate.golden(tmp_path, losses=["huber"], dtypes=["float16"], cases=2, progress=False,
                            scheduler=empty.scheduler_address)


def test_without_dask_the_option_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    with pytest.raises(_procs.SchedulerError, match=r"pip install 'lossref\[dask\]'"):
        _procs.check_scheduler_address("tcp://127.0.0.1:8786")
    # and local work does not need it
    with _procs.work_pool(1) as pmap:
        assert list(pmap(abs, [-1, -2])) == [1, 2]


def test_bad_timeout_setting(monkeypatch):
    monkeypatch.setenv("LOSSREF_DASK_TIMEOUT", "soon")
    with pytest.raises(_procs.SchedulerError, match="LOSSREF_DASK_TIMEOUT"):
        _procs.connect_timeout()
    monkeypatch.setenv("LOSSREF_DASK_TIMEOUT", "2.5")
    assert _procs.connect_timeout() == 2.5


def test_scaling_benchmark_runs_on_the_cluster(scheduler, tmp_path):
    """benchmarks/dask_scaling.py end to end, tiny: the cluster's results equal one process's."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "scaling.json"
    proc = subprocess.run([sys.executable, os.path.join(root, "benchmarks", "dask_scaling.py"),
                           "--scheduler", scheduler, "--rows", "2", "--stride", "512",
                           "--losses", "huber", "log_cosh", "--dispatch-tasks", "20",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert [r["same_results"] for r in doc["summary"]] == [True, True]
    assert doc["cluster"]["workers"] == 2 and doc["cluster"]["elements_per_worker_s"] > 0
    assert {p["loss"] for p in doc["projection"]} == {"huber", "log_cosh"}
