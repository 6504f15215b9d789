"""The ``lossref`` command.

Exit codes: 0 success, 1 a check found a problem, 2 a usage or input error (bad loss
name, parameter, array, dtype or file), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
from typing import Optional, Sequence

import numpy as np

from . import __version__, formats, get, names, reduction


class UsageError(Exception):
    """Bad command-line input: reported on stderr with exit code 2."""


def _cmd_list(args: argparse.Namespace) -> int:
    from .vectors.targets import keras_targets

    keras = keras_targets()  # the dialects that expose each loss (only Keras so far)
    rows = [(n, get(n).stage2, f"keras.{keras[n].class_name}, keras.{keras[n].function_name}"
             if n in keras else "-") for n in names()]
    w0 = max(len(r[0]) for r in rows + [("loss", "", "")])
    w1 = max(len(r[1]) for r in rows + [("", "stage 2", "")])
    print(f"{'loss':<{w0}}  {'stage 2':<{w1}}  dialects")
    for n, s, d in rows:
        print(f"{n:<{w0}}  {s:<{w1}}  {d}")
    print(f"\n{len(rows)} losses (lossref {__version__})")
    return 0


def _parse_array(text: str, what: str) -> np.ndarray:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise UsageError(f"{what}: cannot parse {_short(text)} as a (nested) list of "
                             "numbers") from None
    try:
        arr = np.asarray(value)
    except ValueError:  # NumPy refuses ragged nesting: rows of different lengths
        raise UsageError(f"{what}: {_short(text)} is ragged: every row of a nesting level "
                         "must have the same length") from None
    if arr.dtype.kind not in "biuf":
        raise UsageError(f"{what}: expected numbers, got {_short(text)}")
    return arr.astype(np.float64)


def _short(text: str, limit: int = 60) -> str:
    """`text` quoted for a one-line message, cut to `limit` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _parse_param(text: str):
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--param expects KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def _cmd_eval(args: argparse.Namespace) -> int:
    try:
        loss = get(args.loss)
    except KeyError as e:
        raise UsageError(e.args[0]) from None
    try:
        fmt = formats.get_format(args.dtype)
    except TypeError as e:
        raise UsageError(f"--dtype: {e}") from None
    t = formats.to_format_array(_parse_array(args.y_true, "--y-true"), fmt)
    p = formats.to_format_array(_parse_array(args.y_pred, "--y-pred"), fmt)
    params = dict(_parse_param(s) for s in args.param)
    try:
        loss._inputs(t, p)  # shape and dtype checks; the format is the one asked for (bfloat16
        kw = loss.bind(params)  # may sit in float32 arrays when ml_dtypes is missing)
        values = np.asarray(formats.to_format_array(loss.per_sample64(t, p, kw), fmt))
        exact = loss.exact(t, p, **params)
        if args.reduction != "none":
            values = reduction.reduce(values, args.reduction)
            inner = exact
            exact = inner.map(lambda v: reduction.reduce_weighted_values(
                v, args.reduction, None, None, reduction.EXACT))
    except (ValueError, TypeError) as e:
        raise UsageError(str(e)) from None
    rounded = exact.round(fmt)
    digits = exact.decimal(40)
    errs = np.vectorize(lambda c, x: formats.ulp_error(c, x, fmt), otypes=[float])(
        values.astype(np.float64), exact.values(exact.final_prec))
    bound = ", ".join(f"{k}={v!r}" for k, v in kw.items())
    print(f"loss       {loss.name}({bound})  stage 2: {loss.stage2}  dtype: {fmt.name}"
          f"  reduction: {args.reduction}")
    print(f"reference  {np.array2string(np.asarray(values), precision=10)}")
    print(f"rounded    {np.array2string(np.asarray(rounded), precision=10)}  (exact, correctly rounded)")
    for d in np.atleast_1d(digits).ravel():
        print(f"exact      {d}")
    print(f"ulp error  {np.array2string(np.asarray(errs), precision=3)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one subcommand per job)."""
    ap = argparse.ArgumentParser(prog="lossref", description="Ground truth for deep-learning losses.")
    ap.add_argument("--version", action="version", version=f"lossref {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    p_list = sub.add_parser("list", help="the catalogue: name, stage-2 kind, dialects")
    p_list.set_defaults(func=_cmd_list)

    p_eval = sub.add_parser("eval", help="evaluate one loss: reference, exact value, ulp error",
                            description="Evaluate LOSS on the given arrays (JSON lists) in DTYPE: "
                                        "the reference value, the exact value to 40 digits and "
                                        "the reference's error in ulps.")
    p_eval.add_argument("loss", help="canonical loss name (see `lossref list`)")
    p_eval.add_argument("--y-true", required=True, help="JSON array, e.g. '[[0, 1], [1, 0]]'")
    p_eval.add_argument("--y-pred", required=True, help="JSON array of the same shape")
    p_eval.add_argument("--dtype", default="float32",
                        help="float16, bfloat16, float32 (default) or float64; inputs are rounded to it")
    p_eval.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="loss parameter (JSON value), repeatable: --param delta=0.5")
    p_eval.add_argument("--reduction", default="none",
                        choices=[r for r in reduction.REDUCTIONS if r is not None],
                        help="stage 3 applied to the per-sample values (default none)")
    p_eval.set_defaults(func=_cmd_eval)

    from .diff.cli import register_commands as _register_diff
    _register_diff(sub)
    from .diff.sweep import register_commands as _register_sweep
    _register_sweep(sub)
    from .vectors.cli import register_commands
    register_commands(sub)
    return ap


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``lossref`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "lossref"
    try:
        args = build_parser().parse_args(argv)
        args.argv = argv
        command = f"lossref {args.command}"
        from .oracle import backend_problem

        if backend_problem():  # checked before any work, as the options are
            raise UsageError(backend_problem())
        return args.func(args)
    except UsageError as e:
        print(f"{command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # files are written atomically: nothing is left half-written
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`lossref ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return 1
    except OSError as e:  # a file or folder the command could not read or write
        print(f"{command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
