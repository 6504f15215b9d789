"""``MANIFEST.sha256``: the SHA-256 of every vector file of a set.

The format is that of ``sha256sum``: one line per file, ``<64 hex digits>  <path>``, the
path relative to the set's folder with ``/`` separators, lines sorted by path. So
``sha256sum -c MANIFEST.sha256`` run in the folder checks a set without lossref, and the
SHA-256 of the manifest itself names a whole set (see :func:`manifest_hash`).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Dict, List

__all__ = ["MANIFEST", "sha256_file", "vector_files", "render_manifest", "write_manifest",
           "read_manifest", "manifest_hash", "write_atomic"]

MANIFEST = "MANIFEST.sha256"
_LINE = re.compile(r"^([0-9a-f]{64})  ([A-Za-z0-9_./-]+\.jsonl)$")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def vector_files(root: Path) -> List[str]:
    """Relative paths (``/``-separated, sorted) of the ``*.jsonl`` files under `root`;
    hidden files (an unfinished write's temporary file) are not part of a set."""
    root = Path(root)
    out = []
    for p in root.rglob("*.jsonl"):
        rel = p.relative_to(root)
        if not any(part.startswith(".") for part in rel.parts):
            out.append(rel.as_posix())
    return sorted(out)


def render_manifest(root: Path) -> str:
    """The manifest text for the files now under `root`."""
    root = Path(root)
    return "".join(f"{sha256_file(root / rel)}  {rel}\n" for rel in vector_files(root))


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename, so
    readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_manifest(root: Path) -> Path:
    """(Re)write ``root/MANIFEST.sha256`` for the files under `root`; returns its path."""
    path = Path(root) / MANIFEST
    write_atomic(path, render_manifest(root).encode("ascii"))
    return path


def read_manifest(root: Path) -> Dict[str, str]:
    """Relative path -> hex SHA-256, as listed; ``ValueError`` naming a malformed line,
    ``FileNotFoundError`` if there is no manifest."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {MANIFEST} (run `lossref golden` to write one)")
    out: Dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="ascii").splitlines(), start=1):
        m = _LINE.match(line)
        if not m:
            raise ValueError(f"{path}: line {n} is not '<sha256>  <file>.jsonl': {line[:80]!r}")
        if m.group(2) in out:
            raise ValueError(f"{path}: line {n} lists {m.group(2)} a second time")
        out[m.group(2)] = m.group(1)
    return out


def manifest_hash(root: Path) -> str:
    """SHA-256 of the manifest file: one hash that names a whole vector set."""
    return sha256_file(Path(root) / MANIFEST)
