"""pytest plugin (entry point ``pytest11``): the ``--lossref-*`` options, the ``[tool.lossref]``
table of the rootdir's ``pyproject.toml``, and the hooks that report and write baselines.

What is tested
    ``--lossref-framework`` keras[numpy|jax|torch|tensorflow], torch, optax or tf;
    ``--lossref-loss`` and ``--lossref-dtype`` narrow the vectors (``--lossref-vectors``,
    default the canonical set). ``--lossref-cases`` picks case classes by each case's
    category (its first tag): ``typical`` (random draws, the default), ``adversarial``
    (adversarial and edge-shape cases), ``special`` (NaN, infinities, zeros) or ``all``.
    ``--lossref-grad`` adds a test per recorded gradient output (``grad:<output>``).

Budgets
    By default a value passes within the spec's budget, 4 + 2*ceil(log2 n) ulp for a value
    formed from n terms (:func:`lossref.diff.compare.budget_ulps`). ``--lossref-budget
    LOSS=ULPS`` or ``LOSS:FORMAT=ULPS`` (repeatable) replaces it by a flat budget per value
    (values and gradients alike); a format's budget wins over the loss's. Another
    convention (a mismatch) or an exception fails whatever the budget.

``[tool.lossref]``
    Keys ``framework``, ``vectors``, ``loss``, ``dtype``, ``cases``, ``budget`` (a table of
    ``LOSS`` or ``"LOSS:FORMAT"`` to ulps), ``grad``, ``baseline`` and ``timeout``; paths are
    relative to the file. The command line wins, key by key for budgets.

Baselines
    ``--lossref-record FILE`` writes the state of every test that ran (pass or fail, worst
    status, largest error in ulps, the failing case numbers, the cause) with the framework,
    backend, versions and the cases covered (:mod:`lossref.conformance.baseline`).
    ``--lossref-baseline FILE`` checks against it: a test that passed and now fails
    fails; a known failure is an xfail with its cause unless it got worse (a worse status,
    a larger error, or a case failing that did not), which fails; a known failure that
    improved is listed in the summary. ``--lossref-baseline FILE --lossref-tighten`` also
    rewrites FILE with every improvement and nothing worse.

The vector-set rule
    A baseline records, per (loss, format, case class), the case ids it covers and a
    SHA-256 over their records. A check refuses it (one line) where a covered case is
    missing or changed, and where the lossref version, framework, backend or budgets
    differ. Cases the baseline does not cover (a vector set that only adds cases) are
    judged by the budget alone: a new failing case fails its test and is named, while
    the covered cases keep their baseline verdicts. Groups this run does not select are
    not checked. Tightening takes a group's new cases in only when every test of the group
    ran and none failed.

The plugin is loaded by every pytest run where lossref is installed, so it does nothing
until the conformance module is collected: the options are read and checked then
(:func:`settings`), and a problem is one ``ERROR:`` line and exit code 4 (a usage error).
"""

from __future__ import annotations

import math
import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import pytest

#: case classes, by the category of a case (its first tag): ``random`` draws are typical,
#: ``special`` ones hold NaN, infinities or zeros, ``adversarial`` and ``edge-shape`` ones
#: are hard inputs and unusual shapes
CLASSES = ("typical", "adversarial", "special")
#: keys of ``[tool.lossref]`` and the types they take
PYPROJECT_KEYS = {"framework": str, "vectors": str, "loss": list, "dtype": list, "cases": str,
                  "budget": dict, "grad": bool, "baseline": str, "timeout": (int, float)}
DEFAULT_TIMEOUT = 30.0

_PYPROJECT = pytest.StashKey[Tuple[Dict[str, Any], Optional[str]]]()
#: a usage error found while collecting, raised once collection ends
USAGE = pytest.StashKey[str]()
#: the :class:`~lossref.conformance.suite.Suite` of this session
SUITE = pytest.StashKey[Any]()


class ConformanceError(ValueError):
    """A usage error of the conformance suite: one line, shown as pytest's ``ERROR:``."""


def pytest_addoption(parser) -> None:
    g = parser.getgroup("lossref", "lossref conformance suite (pytest --pyargs lossref.conformance)")
    g.addoption("--lossref-framework", default=None, metavar="FRAMEWORK[BACKEND]",
                help="framework to check: keras[numpy], keras[jax], keras[torch], keras[tensorflow], "
                     "torch, optax or tf")
    g.addoption("--lossref-vectors", default=None, metavar="PATH",
                help="golden-vector file or folder (default: the canonical set)")
    g.addoption("--lossref-loss", action="append", default=None, metavar="NAME",
                help="only this loss (repeatable)")
    g.addoption("--lossref-dtype", action="append", default=None, metavar="FORMAT",
                help="only this format (repeatable)")
    g.addoption("--lossref-cases", default=None, metavar="CLASSES",
                help="case classes to test: typical (default), adversarial, special or all; "
                     "several with commas")
    g.addoption("--lossref-budget", action="append", default=None, metavar="LOSS[:FORMAT]=ULPS",
                help="error budget in ulps per value for a loss (or a loss in one format), in place "
                     "of the spec's budget (repeatable)")
    g.addoption("--lossref-grad", action="store_true", default=False,
                help="also test the gradients of the outputs the vectors record")
    g.addoption("--lossref-timeout", type=float, default=None, metavar="SECONDS",
                help=f"seconds per case (default {DEFAULT_TIMEOUT:g})")
    g.addoption("--lossref-baseline", default=None, metavar="FILE",
                help="compare with this baseline: only changes from it fail")
    g.addoption("--lossref-record", default=None, metavar="FILE",
                help="write the state of every test to FILE as a baseline")
    g.addoption("--lossref-tighten", action="store_true", default=False,
                help="with --lossref-baseline: rewrite the baseline where tests improved (never looser)")


def parse_framework(spec: str) -> Tuple[str, str]:
    """``keras[numpy]`` -> ("keras", "numpy"); a bare ``keras`` means the numpy backend;
    ``torch``, ``optax`` or ``tf`` (or with ``[cpu]``) -> (name, "cpu")."""
    m = re.fullmatch(r"\s*(\w+)\s*(?:\[\s*(\w+)\s*\])?\s*", spec or "")
    if not m:
        raise ValueError(f"--lossref-framework {spec!r}: expected FRAMEWORK[BACKEND], e.g. keras[numpy]")
    fw = m.group(1)
    if fw in ("torch", "optax", "tf"):
        if m.group(2) not in (None, "cpu"):
            raise ValueError(f"--lossref-framework {spec!r}: {fw} runs on cpu only")
        return fw, "cpu"
    if fw != "keras":
        raise ValueError(f"--lossref-framework {spec!r}: keras[BACKEND], torch, optax or tf")
    backend = m.group(2) or "numpy"
    if backend not in ("numpy", "jax", "torch", "tensorflow"):
        raise ValueError(f"--lossref-framework {spec!r}: Keras backends are numpy, jax, torch and tensorflow")
    return fw, backend


# --- pyproject.toml --------------------------------------------------------------------------------


def read_pyproject(path: str) -> Dict[str, Any]:
    """The ``[tool.lossref]`` table of the pyproject file at `path` ({} if there is none).

    Raises
    ------
    ConformanceError
        The file has a ``[tool.lossref]`` table that cannot be read: invalid TOML, or no
        TOML parser (Python 3.10 without ``tomli``).
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return {}
    mentions = re.search(rb"^\s*\[\s*tool\s*\.\s*lossref\s*\]", data, re.M) is not None
    try:
        import tomllib as toml
    except ImportError:  # Python 3.10
        try:
            import tomli as toml
        except ImportError:
            if mentions:
                raise ConformanceError(f"{path}: reading [tool.lossref] needs Python 3.11 or the tomli "
                                       "package (pip install tomli)") from None
            return {}
    try:
        doc = toml.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:  # TOMLDecodeError is a ValueError
        if mentions:
            raise ConformanceError(f"{path}: not valid TOML: {str(e).splitlines()[0]}") from None
        return {}  # someone else's broken file: pytest or its owner will say so
    table = doc.get("tool", {}).get("lossref", {}) if isinstance(doc.get("tool"), dict) else {}
    if not isinstance(table, dict):
        raise ConformanceError(f"{path}: [tool.lossref] must be a table")
    return table


def pytest_configure(config) -> None:
    path = os.path.join(str(config.rootpath), "pyproject.toml")
    try:
        table, error = read_pyproject(path), None
    except ConformanceError as e:
        table, error = {}, str(e)
    config.stash[_PYPROJECT] = (table, error)
    # the table's framework counts as given (collection hooks that ask for the option see it)
    if config.getoption("--lossref-framework") is None and isinstance(table.get("framework"), str):
        config.option.lossref_framework = table["framework"]


# --- the settings of a run -------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What one conformance run checks, from the options and ``[tool.lossref]``."""

    framework: str
    backend: str
    vectors: Optional[str] = None
    losses: Optional[Tuple[str, ...]] = None
    dtypes: Optional[Tuple[str, ...]] = None
    classes: Tuple[str, ...] = ("typical",)
    budgets: Dict[str, float] = field(default_factory=dict)
    grad: bool = False
    timeout: float = DEFAULT_TIMEOUT
    baseline: Optional[str] = None
    record: Optional[str] = None
    tighten: bool = False

    @property
    def framework_spec(self) -> str:
        return f"{self.framework}[{self.backend}]" if self.framework == "keras" else self.framework

    def budget(self, loss: str, dtype: str) -> Optional[float]:
        """The user's budget in ulps for `loss` in `dtype` (None: the spec's)."""
        return self.budgets.get(f"{loss}:{dtype}", self.budgets.get(loss))

    def command(self, test_id: str) -> str:
        """A pytest command line that runs test `test_id` alone with these settings (no
        recording: rerunning one test must not rewrite a baseline)."""
        words = ["pytest", "--pyargs", "lossref.conformance", "--lossref-framework", self.framework_spec]
        if self.vectors:
            words += ["--lossref-vectors", self.vectors]
        for flag, values in (("--lossref-loss", self.losses), ("--lossref-dtype", self.dtypes)):
            for v in values or ():
                words += [flag, v]
        if self.classes != ("typical",):
            words += ["--lossref-cases", "all" if self.classes == CLASSES else ",".join(self.classes)]
        for k, v in sorted(self.budgets.items()):
            words += ["--lossref-budget", f"{k}={v:g}"]
        if self.grad:
            words.append("--lossref-grad")
        if self.timeout != DEFAULT_TIMEOUT:
            words += ["--lossref-timeout", f"{self.timeout:g}"]
        if self.baseline:
            words += ["--lossref-baseline", self.baseline]
        return shlex.join(words + ["-k", f"test_conformance[{test_id}]"])


def _pyproject_value(table: Dict[str, Any], key: str, where: str):
    if key not in table:
        return None
    v = table[key]
    want = PYPROJECT_KEYS[key]
    if key in ("loss", "dtype") and isinstance(v, str):
        v = [v]
    if isinstance(v, bool) and want is not bool or not isinstance(v, want) or \
            (isinstance(v, list) and not all(isinstance(x, str) for x in v)):
        kind = {str: "a string", list: "a list of strings", dict: "a table", bool: "true or false"}.get(
            want, "a number")
        raise ConformanceError(f"{where}: {key} must be {kind}; got {v!r}")
    return v


def _classes(text: str, where: str) -> Tuple[str, ...]:
    names = [w.strip() for w in text.split(",") if w.strip()]
    if "all" in names:
        return CLASSES
    bad = [n for n in names if n not in CLASSES]
    if bad or not names:
        raise ConformanceError(f"{where}: case class {', '.join(bad) or repr(text)} is not one of "
                               f"{', '.join(CLASSES)}, all")
    return tuple(c for c in CLASSES if c in names)


def _budget_entry(key: str, value: Any, where: str, known_losses, known_formats) -> Tuple[str, float]:
    loss, _, dtype = key.partition(":")
    if loss not in known_losses:
        raise ConformanceError(f"{where}: unknown loss {loss!r} in budget {key!r}")
    if dtype and dtype not in known_formats:
        raise ConformanceError(f"{where}: unknown format {dtype!r} in budget {key!r}; "
                               f"formats: {', '.join(sorted(known_formats))}")
    try:
        ulps = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        ulps = math.nan
    if not (math.isfinite(ulps) and ulps >= 0):
        raise ConformanceError(f"{where}: budget {key!r} must be a number of ulps >= 0; got {value!r}")
    return key, ulps


def settings(config) -> Settings:
    """The settings of this run: command-line options over ``[tool.lossref]`` over the
    defaults, every one checked.

    Raises
    ------
    ConformanceError
        A value is missing, unknown or contradicts another; the message is one line.
    """
    from .. import formats
    from ..vectors.targets import targets as dialect_targets

    table, error = config.stash.get(_PYPROJECT, ({}, None))
    if error:
        raise ConformanceError(error)
    where = "pyproject.toml [tool.lossref]"
    unknown = sorted(set(table) - set(PYPROJECT_KEYS))
    if unknown:
        raise ConformanceError(f"{where}: unknown key {', '.join(map(repr, unknown))}; known: "
                               f"{', '.join(sorted(PYPROJECT_KEYS))}")
    py = {k: _pyproject_value(table, k, where) for k in PYPROJECT_KEYS}
    opt = config.getoption
    spec = opt("--lossref-framework") or py["framework"]
    if not spec:
        raise ConformanceError("lossref.conformance needs --lossref-framework (or framework in "
                               "[tool.lossref]), e.g. keras[numpy]")
    try:
        fw, backend = parse_framework(spec)
    except ValueError as e:
        raise ConformanceError(str(e)) from None
    known = dialect_targets(fw)
    root = str(config.rootpath)

    def path_of(cli: Optional[str], key: str) -> Optional[str]:
        # a path in pyproject.toml is relative to the file's folder; one on the command line to the cwd
        return cli if cli is not None else (os.path.join(root, py[key]) if py[key] else None)

    losses = opt("--lossref-loss") or py["loss"]
    dtypes = opt("--lossref-dtype") or py["dtype"]
    for name in losses or ():
        if name not in known:
            raise ConformanceError(f"--lossref-loss: unknown {fw} loss {name!r}; known: {', '.join(sorted(known))}")
    for d in dtypes or ():
        if d not in formats.FORMATS:
            raise ConformanceError(f"--lossref-dtype: unknown format {d!r}; formats: "
                                   f"{', '.join(sorted(formats.FORMATS))}")
    cli_classes = opt("--lossref-cases")
    classes = _classes(cli_classes, "--lossref-cases") if cli_classes is not None else \
        _classes(py["cases"], f"{where}: cases") if py["cases"] is not None else ("typical",)
    budgets = dict(_budget_entry(str(k), v, f"{where}: budget", known, formats.FORMATS)
                   for k, v in (py["budget"] or {}).items())
    for text in opt("--lossref-budget") or ():
        key, eq, value = text.partition("=")
        if not eq:
            raise ConformanceError(f"--lossref-budget {text!r}: expected LOSS=ULPS or LOSS:FORMAT=ULPS")
        budgets.update([_budget_entry(key.strip(), value.strip(), "--lossref-budget", known, formats.FORMATS)])
    grad = bool(opt("--lossref-grad") or py["grad"])
    if grad and backend == "numpy":
        raise ConformanceError("--lossref-grad needs a backend with autodiff (keras[jax], keras[torch], "
                               "keras[tensorflow], torch, optax, tf); Keras's numpy backend has none")
    timeout = opt("--lossref-timeout")
    timeout = float(timeout if timeout is not None else py["timeout"] if py["timeout"] is not None
                    else DEFAULT_TIMEOUT)
    if not (math.isfinite(timeout) and timeout > 0):
        raise ConformanceError(f"--lossref-timeout must be a positive number of seconds; got {timeout:g}")
    record, tighten = opt("--lossref-record"), bool(opt("--lossref-tighten"))
    baseline = opt("--lossref-baseline")
    if record and (baseline or tighten):
        raise ConformanceError("--lossref-record writes a new baseline: leave out --lossref-baseline "
                               "and --lossref-tighten")
    if record is None:  # recording starts afresh: a baseline named in pyproject.toml is not read
        baseline = path_of(baseline, "baseline")
    if tighten and not baseline:
        raise ConformanceError("--lossref-tighten rewrites the baseline: give it with --lossref-baseline")
    if record:
        parent = os.path.dirname(os.path.abspath(record))
        if not os.path.isdir(parent):
            raise ConformanceError(f"--lossref-record {record}: the folder {parent} does not exist")
    vectors = path_of(opt("--lossref-vectors"), "vectors")
    if vectors is not None and not os.path.exists(vectors):
        raise ConformanceError(f"--lossref-vectors: {vectors}: no such file or folder")
    return Settings(framework=fw, backend=backend, vectors=vectors,
                    losses=tuple(losses) if losses else None, dtypes=tuple(dtypes) if dtypes else None,
                    classes=classes, budgets=budgets, grad=grad, timeout=timeout,
                    baseline=baseline, record=record, tighten=tighten)


# --- hooks -----------------------------------------------------------------------------------------


def pytest_collection_modifyitems(session, config, items) -> None:
    # a usage error found while the conformance module was collected: one line, exit code 4
    message = config.stash.get(USAGE, None)
    if message:
        raise pytest.UsageError(message)


def pytest_sessionfinish(session, exitstatus) -> None:
    suite = session.config.stash.get(SUITE, None)
    if suite is None or exitstatus == pytest.ExitCode.INTERRUPTED:
        return
    try:
        suite.write_baseline()
    except OSError as e:
        suite.notes.append(f"could not write the baseline: {e}")
        session.exitstatus = pytest.ExitCode.USAGE_ERROR


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    suite = config.stash.get(SUITE, None)
    if suite is None or not (suite.notes or suite.improved):
        return
    terminalreporter.section("lossref conformance")
    if suite.improved:
        terminalreporter.write_line(f"{len(suite.improved)} test(s) improved on the baseline "
                                    "(tighten it: rerun with --lossref-tighten):")
        for test_id, what in sorted(suite.improved.items()):
            terminalreporter.write_line(f"  {test_id}: {what}")
    for line in suite.notes:
        terminalreporter.write_line(line)
