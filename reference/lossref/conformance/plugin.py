"""pytest plugin (entry point ``pytest11``): the ``--lossref-*`` options."""

from __future__ import annotations

import re


def pytest_addoption(parser) -> None:
    g = parser.getgroup("lossref", "lossref conformance suite")
    g.addoption("--lossref-framework", default=None, metavar="FRAMEWORK[BACKEND]",
                help="framework to check, e.g. keras[numpy], keras[jax], keras[torch], torch, optax, tf")
    g.addoption("--lossref-vectors", default=None, metavar="PATH",
                help="golden-vector file or folder (default: the canonical set)")
    g.addoption("--lossref-loss", action="append", default=None, help="only this loss (repeatable)")
    g.addoption("--lossref-dtype", action="append", default=None, help="only this dtype (repeatable)")
    g.addoption("--lossref-timeout", type=float, default=30.0, help="seconds per case")


def parse_framework(spec: str):
    """``keras[numpy]`` -> ("keras", "numpy"); a bare ``keras`` means the numpy backend;
    ``torch`` (or ``torch[cpu]``) -> ("torch", "cpu")."""
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
    return fw, m.group(2) or "numpy"
