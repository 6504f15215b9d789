"""Check a loss implementation against a lossref golden-vector file.

Needs only NumPy and the Python standard library: copy this file into a test suite and
call :func:`check` with your framework's loss (see ``__main__`` below for an example).

    python example_check.py keras/mean_squared_error/float32.jsonl

reads the file, runs a plain NumPy mean squared error on every case and prints the cases
whose result is more than ``--ulps`` representable steps away from the correctly rounded
expectation (exit status 1 if there is any).
"""

import argparse
import json
import sys
import warnings

import numpy as np

#: NumPy dtype of each format; bfloat16 has none in NumPy, so its values stay float64
#: (every bfloat16 value is exact in float64) and are compared in bfloat16 steps.
NUMPY_DTYPES = {"float16": np.float16, "bfloat16": None, "float32": np.float32, "float64": np.float64}
#: (precision in bits, exponent of the least normal, exponent of the largest binade)
FORMATS = {"float16": (11, -14, 15), "bfloat16": (8, -126, 127), "float32": (24, -126, 127),
           "float64": (53, -1022, 1023)}


def round_to(values, dtype_name):
    """float64 values rounded to nearest-even in a format (returned as float64), overflow
    to ±inf and gradual underflow included; no double rounding through another format."""
    prec, emin, emax = FORMATS[dtype_name]
    x = np.asarray(values, dtype=np.float64)
    if dtype_name == "float64":
        return x
    finite = np.isfinite(x) & (x != 0)
    safe = np.where(finite, x, 1.0)
    _, e = np.frexp(safe)
    quantum = np.maximum(e - 1, emin) - (prec - 1)  # exponent of the last kept bit
    r = np.ldexp(np.rint(np.ldexp(safe, -quantum)), quantum)  # both scalings exact
    largest = np.ldexp(2.0 - np.ldexp(1.0, 1 - prec), emax)
    r = np.where(np.abs(r) > largest, np.copysign(np.inf, x), r)
    return np.where(finite, r, x)


def read(path):
    """``(provenance, cases)`` of a golden-vector file."""
    with open(path, encoding="ascii") as f:
        lines = [json.loads(line) for line in f]
    return lines[0]["provenance"], lines[1:]


def decode(arr, dtype_name):
    """An encoded array (``{"shape", "hex"}``) as a NumPy array of the format."""
    values = np.array([float.fromhex(h) for h in arr["hex"]], dtype=np.float64)
    values = round_to(values.reshape(arr["shape"]), dtype_name)  # a no-op for a valid file
    dt = NUMPY_DTYPES[dtype_name]
    return values if dt is None else values.astype(dt)


def _ordinal(values, dtype_name):
    """Integer position of each value among the values of the format (+0 and -0 both 0)."""
    v = np.asarray(values, dtype=np.float64)
    if dtype_name == "bfloat16":
        bits = v.astype(np.float32).view(np.uint32).astype(np.int64) >> 16
        sign = 1 << 15
    else:
        dt = NUMPY_DTYPES[dtype_name]
        width = np.dtype(dt).itemsize * 8
        bits = v.astype(dt).view({16: np.uint16, 32: np.uint32, 64: np.uint64}[width])
        bits = bits.astype(object if width == 64 else np.int64)
        sign = 1 << (width - 1)
    mag = np.where(bits >= sign, bits - sign, bits)
    return np.where(bits >= sign, -mag, mag)


def steps(got, want, dtype_name):
    """Representable steps between `got` (rounded into the format) and `want`, elementwise.

    0 where both are NaN or both the same infinity; infinite where only one is NaN or
    infinite. Signs of zero are not compared.
    """
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    got, want = np.broadcast_arrays(got, want)
    out = np.full(got.shape, np.inf)
    both_nan = np.isnan(got) & np.isnan(want)
    same_inf = np.isinf(got) & (got == want)
    finite = np.isfinite(got) & np.isfinite(want)
    out[both_nan | same_inf] = 0.0
    if finite.any():
        d = _ordinal(got[finite], dtype_name) - _ordinal(want[finite], dtype_name)
        out[finite] = np.abs(d.astype(np.float64))
    return out


def check(path, per_sample=None, loss=None, ulps=0.0):
    """Compare an implementation with every case of one golden-vector file.

    Parameters
    ----------
    path : str
        A ``.jsonl`` file.
    per_sample : callable, optional
        ``per_sample(y_true, y_pred, **params)`` -> per-sample losses (Keras: the loss
        function); compared with ``expected.per_sample``.
    loss : callable, optional
        ``loss(y_true, y_pred, sample_weight, reduction, **params)`` -> reduced loss
        (Keras: ``Class(reduction=None if reduction == "none" else reduction,
        dtype=dtype, **params)(y_true, y_pred, sample_weight=sample_weight)``); compared
        with each ``expected.reductions[reduction]``.
    ulps : float
        Accepted distance in representable steps (0: correctly rounded).

    Returns
    -------
    list of str
        One line per case and output that is further away than `ulps` (or raised).
    """
    prov, cases = read(path)
    failures = []
    for case in cases:
        dt = case["dtype"]
        inp = case["inputs"]
        y_true, y_pred = decode(inp["y_true"], dt), decode(inp["y_pred"], dt)
        sw = None if inp["sample_weight"] is None else decode(inp["sample_weight"], dt)
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in case["params"].items()}
        outputs = []
        if per_sample is not None:
            outputs.append(("per_sample", case["expected"]["per_sample"],
                            lambda: per_sample(y_true, y_pred, **params)))
        if loss is not None:
            for red, exp in sorted(case["expected"]["reductions"].items()):
                outputs.append((red, exp, lambda red=red: loss(y_true, y_pred, sw, red, **params)))
        for name, exp, run in outputs:
            out_dtype = exp.get("dtype", dt)
            want = decode(exp, out_dtype)
            try:
                got = np.asarray(run(), dtype=np.float64)
            except Exception as e:  # a crash is a failure of this case, not of the check
                failures.append(f"{case['id']} {name}: raised {type(e).__name__}: {e}")
                continue
            if got.shape != want.shape:
                failures.append(f"{case['id']} {name}: shape {got.shape}, expected {want.shape}")
                continue
            # the implementation's result rounded into the expected format, then compared
            got = round_to(got, out_dtype)
            d = steps(got, want, out_dtype)
            if (d > ulps).any():
                i = int(np.argmax(d.ravel()))
                failures.append(f"{case['id']} {name}: element {i} is {got.ravel()[i]!r}, expected "
                                f"{exp['hex'][i]} = {exp['decimal'][i]} ({d.ravel()[i]:g} steps)")
    return failures


def numpy_mean_squared_error(y_true, y_pred):
    """Example implementation under test: float64 arithmetic, one rounding at the end."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the mean of an empty axis is NaN
        return np.mean((t - p) ** 2, axis=-1)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Check a NumPy mean squared error against a "
                                             "golden-vector file of mean_squared_error.")
    ap.add_argument("file", help="a .jsonl file of keras/mean_squared_error")
    ap.add_argument("--ulps", type=float, default=1.0, help="accepted distance in steps (default 1)")
    args = ap.parse_args(argv)
    failures = check(args.file, per_sample=numpy_mean_squared_error, ulps=args.ulps)
    for line in failures:
        print(line)
    _, cases = read(args.file)
    print(f"{len(cases)} cases, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
