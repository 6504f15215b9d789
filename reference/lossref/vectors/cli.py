"""The ``golden``, ``verify`` and ``cite`` subcommands of ``lossref``.

Every user error (a bad option, a folder that is a file, an unreadable vector file, a
manifest that cannot be parsed or written) is found before any long work and reported as
one line on stderr with exit code 2; exit 1 means a check found a problem in the set.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


__all__ = ["register_commands"]


def _cmd_golden(args: argparse.Namespace) -> int:
    from .generate import golden, plan
    from .manifest import VectorSetError

    try:
        plan(args.dialect, args.loss, args.dtype)
    except KeyError as e:
        return _usage("golden", e.args[0])
    except TypeError as e:
        return _usage("golden", str(e))
    if args.cases < 1:
        return _usage("golden", f"--cases must be >= 1, got {args.cases}")
    if args.jobs is not None and args.jobs < 1:
        return _usage("golden", f"--jobs must be >= 1, got {args.jobs}")
    from .._procs import SchedulerError, check_scheduler_address
    try:
        if args.scheduler is not None:
            check_scheduler_address(args.scheduler)
        rep = golden(Path(args.out), dialect=args.dialect, losses=args.loss, dtypes=args.dtype,
                     cases=args.cases, seed=args.seed, jobs=args.jobs, progress=not args.quiet,
                     force=args.force, log=lambda s: print(s, file=sys.stderr),
                     scheduler=args.scheduler)
    except (VectorSetError, SchedulerError) as e:
        return _usage("golden", str(e))
    written = len(rep.written)
    print(f"golden: {written} file(s) written, {len(rep.skipped)} already complete, "
          f"{len(rep.failed)} failed, in {rep.seconds:.1f} s")
    slow = sorted(rep.written, key=lambda w: -w[1])[:3]
    if slow:
        print("slowest: " + ", ".join(f"{name} {sec:.1f} s" for name, sec, _ in slow))
    for name, err in rep.failed:
        print(f"golden: FAILED {name}: {err}", file=sys.stderr)
    for p in rep.problems:
        print(f"golden: FAIL {p}", file=sys.stderr)
    if rep.manifest is not None:
        print(f"manifest: {rep.manifest}")
    return 1 if rep.failed or rep.problems else 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from .manifest import VectorSetError
    from .verify import verify

    if args.sample < 0:
        return _usage("verify", f"--sample must be >= 0, got {args.sample}")
    if args.jobs is not None and args.jobs < 1:
        return _usage("verify", f"--jobs must be >= 1, got {args.jobs}")
    try:
        rep = verify(Path(args.dir) if args.dir else None, sample=args.sample,
                     all_cases=args.all, jobs=args.jobs or os.cpu_count() or 1,
                     progress=not args.quiet)
    except VectorSetError as e:
        return _usage("verify", str(e))
    for note in rep.notes:
        print(f"note: {note}", file=sys.stderr)
    for p in rep.problems:
        print(f"FAIL {p}", file=sys.stderr)
    status = "OK" if rep.ok else f"{len(rep.problems)} problem(s)"
    print(f"verify {rep.root}: {rep.files} file(s), {rep.cases} case(s), {rep.rederived} "
          f"re-derived with the oracle: {status}")
    return 0 if rep.ok else 1


def _cmd_cite(args: argparse.Namespace) -> int:
    from .cite import bibtex, citation
    from .fileformat import canonical_dir
    from .manifest import VectorSetError

    vec = None
    if args.vectors is not None:
        vec = Path(args.vectors) if args.vectors else canonical_dir()
    try:
        text = bibtex(vec) if args.bibtex else citation(vec)
    except VectorSetError as e:
        return _usage("cite", str(e))
    print(text)
    return 0


def _usage(cmd: str, msg: str) -> int:
    print(f"lossref {cmd}: error: {msg}", file=sys.stderr)
    return 2


def register_commands(sub) -> None:
    """Add ``golden``, ``verify`` and ``cite`` to the ``lossref`` subcommands."""
    p = sub.add_parser(
        "golden", help="generate golden-vector files and their manifest",
        description="Generate one JSON Lines file per (loss, dtype) at "
                    "DIR/DIALECT/LOSS/DTYPE.jsonl and keep DIR/MANIFEST.sha256 up to date. The "
                    "seed and the lossref version decide every byte. A file of this run is "
                    "skipped only if its bytes match the hash the existing manifest has for it "
                    "and it was made with the same settings; otherwise it is generated again. "
                    "Files outside this run keep their manifest lines; one that is unlisted, "
                    "missing or no longer matches its line is reported (exit 1) and never "
                    "added, so `lossref verify` fails until it is regenerated. Files and the "
                    "manifest are written atomically, one file at a time, so an interrupted run "
                    "resumes. Exit 0 done, 1 a file failed or the set has a file the manifest "
                    "cannot vouch for, 2 a usage error (checked before any work), 130 "
                    "interrupted. Format and rules: spec/vectors/README.md.")
    p.add_argument("--dialect", default="keras", choices=["keras", "torch", "optax", "tf"],
                   help="dialect: keras, torch, optax or tf (the functions of lossref/vectors/torch_table.py, "
                        "optax_table.py and tf_table.py)")
    p.add_argument("--loss", nargs="+", action="extend", metavar="NAME",
                   help="only these losses (repeatable; default: every loss of the dialect)")
    p.add_argument("--dtype", nargs="+", action="extend", metavar="DTYPE",
                   help="only these formats (float16 bfloat16 float32 float64; default: all four)")
    p.add_argument("--cases", type=int, default=64, metavar="N",
                   help="cases per file, >= 1 (default 64)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="generator seed (default 0)")
    p.add_argument("--jobs", type=int, default=None, metavar="J",
                   help="worker processes, >= 1 (default: every core)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="render the files on the workers of the dask.distributed scheduler at "
                        "ADDRESS (e.g. tcp://HOST:8786) instead of local processes; the same "
                        "bytes (needs lossref[dask])")
    p.add_argument("--force", action="store_true",
                   help="regenerate this run's files even where they match the manifest")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, metavar="DIR", help="folder of the vector set")
    p.set_defaults(func=_cmd_golden)

    p = sub.add_parser(
        "verify", help="check a golden-vector set: manifest, format, expectations",
        description="Check the vector set in DIR (default: the canonical set spec/vectors). "
                    "Every run: MANIFEST.sha256 must list every *.jsonl file and only existing "
                    "ones (a missing, empty or malformed manifest is a problem) and every hash "
                    "must match; every line of every file is checked: canonical JSON, the "
                    "format, shapes against value counts, values exact in their format, each "
                    "expected hex the correct rounding of its 40-digit decimal, ids increasing, "
                    "the case count. Sampled: K cases per file have their expectations "
                    "re-derived with the oracle (every case of a file whose hash differs and "
                    "every case whose hex and decimal disagree; --all: every case). Exit 1, "
                    "naming the file, line and case, on any mismatch, corruption or "
                    "truncation; 2 on a usage error (a bad option, DIR not a folder, an "
                    "unreadable file).")
    p.add_argument("dir", nargs="?", default=None, metavar="DIR", help="folder of the set")
    p.add_argument("--all", action="store_true", help="re-derive every case (slow)")
    p.add_argument("--sample", type=int, default=2, metavar="K",
                   help="cases per file re-derived with the oracle, >= 0 (default 2)")
    p.add_argument("--jobs", type=int, default=None, metavar="J",
                   help="worker processes, >= 1 (default: every core)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser(
        "cite", help="how to cite lossref (and a vector set)",
        description="Print a citation of lossref: version and numeric spec version. With "
                    "--vectors, also name a golden-vector set by the SHA-256 of its manifest; "
                    "the set is cited only if its manifest lists exactly its *.jsonl files and "
                    "every hash matches (exit 2 otherwise; `lossref verify` checks the rest).")
    p.add_argument("--bibtex", action="store_true", help="a BibTeX @software entry")
    p.add_argument("--vectors", nargs="?", const="", default=None, metavar="DIR",
                   help="cite the vector set in DIR (default: the canonical set)")
    p.set_defaults(func=_cmd_cite)
