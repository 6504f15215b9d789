"""``MANIFEST.sha256``: the SHA-256 of every vector file of a set.

The format is that of ``sha256sum``: one line per file, ``<64 hex digits>  <path>``, the
path relative to the set's folder with ``/`` separators, lines sorted by path. So
``sha256sum -c MANIFEST.sha256`` run in the folder checks a set without lossref, and the
SHA-256 of the manifest itself names a whole set (see :func:`manifest_hash`).

A manifest vouches for a set only when it is complete: it lists every vector file, every
file it lists exists, and it lists at least one. :func:`listing_problems` states those
rules once for ``verify``, ``cite`` and ``golden``. The manifest is only ever written from
hashes of bytes that were just written or already matched an earlier manifest
(:func:`write_manifest` takes the entries; it never hashes whatever lies on disk).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Dict, Iterable, List, Mapping

__all__ = ["MANIFEST", "VectorSetError", "sha256_bytes", "sha256_file", "vector_files",
           "check_readable", "render_manifest", "write_manifest", "read_manifest",
           "listing_problems", "hash_problem", "manifest_hash", "write_atomic"]

MANIFEST = "MANIFEST.sha256"
_LINE = re.compile(r"^([0-9a-f]{64})  ([A-Za-z0-9_./-]+\.jsonl)$")


class VectorSetError(Exception):
    """A vector set that cannot be read or written at all (a folder that is a file, an
    unreadable vector file, a manifest that cannot be parsed or written): a user error,
    reported by the CLI as one line with exit code 2."""


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def vector_files(root: Path) -> List[str]:
    """Relative paths (``/``-separated, sorted) of the ``*.jsonl`` entries under `root`;
    hidden ones (an unfinished write's temporary file) are not part of a set.

    A folder named like a vector file is listed too, so that :func:`check_readable`
    reports it instead of the set silently losing a file.

    Raises
    ------
    VectorSetError
        If a folder of the set cannot be listed (skipping it would lose its files
        without a word).
    """
    root = Path(root)

    def unreadable(e: OSError) -> None:
        raise VectorSetError(f"{e.filename}: cannot read the folder: {e.strerror or e}") from None

    if not root.is_dir():
        return []
    out = []
    for folder, dirs, files in os.walk(root, onerror=unreadable):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel_folder = Path(folder).relative_to(root)
        out += [(rel_folder / name).as_posix() for name in files + dirs
                if name.endswith(".jsonl") and not name.startswith(".")]
    return sorted(out)


def check_readable(root: Path, rels: Iterable[str]) -> None:
    """Open every file `rels` under `root` once, before any long work.

    Raises
    ------
    VectorSetError
        Naming the first entry that is not a regular, readable file.
    """
    for rel in rels:
        path = Path(root) / rel
        try:
            with open(path, "rb"):
                pass
        except OSError as e:
            raise VectorSetError(f"{path}: cannot read: {e.strerror or e}") from None


def render_manifest(entries: Mapping[str, str]) -> str:
    """The manifest text of `entries` (relative path -> hex SHA-256), sorted by path."""
    return "".join(f"{entries[rel]}  {rel}\n" for rel in sorted(entries))


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


def write_manifest(root: Path, entries: Mapping[str, str]) -> Path:
    """(Re)write ``root/MANIFEST.sha256`` atomically with `entries`; returns its path.

    The caller vouches for every hash: one of bytes it has just written, or one the old
    manifest already had for bytes that still match it.

    Raises
    ------
    VectorSetError
        If the manifest cannot be written (e.g. ``MANIFEST.sha256`` is a folder).
    """
    path = Path(root) / MANIFEST
    try:
        write_atomic(path, render_manifest(entries).encode("ascii"))
    except OSError as e:
        raise VectorSetError(f"{path}: cannot write the manifest: {e.strerror or e}") from None
    return path


def read_manifest(root: Path) -> Dict[str, str]:
    """Relative path -> hex SHA-256, as listed (possibly empty: see :func:`listing_problems`).

    Raises
    ------
    FileNotFoundError
        If there is no manifest.
    ValueError
        Naming a malformed line (not ``<sha256>  <file>.jsonl`` with a relative path inside
        the set, or a file listed twice).
    VectorSetError
        If ``MANIFEST.sha256`` exists but cannot be read (a folder, no permission).
    """
    path = Path(root) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path}: no {MANIFEST} (run `lossref golden` to write one)")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise VectorSetError(f"{path}: cannot read: {e.strerror or e}") from None
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # what follows the final newline
    out: Dict[str, str] = {}
    for n, raw in enumerate(lines, start=1):
        line = raw.decode("ascii", errors="replace")
        m = _LINE.match(line)
        # a path outside the set (``..``, absolute) or hidden is never one of its files
        if not m or any(not part or part.startswith(".") for part in m.group(2).split("/")):
            raise ValueError(f"{path}: line {n} is not '<sha256>  <file>.jsonl': {line[:80]!r}")
        if m.group(2) in out:
            raise ValueError(f"{path}: line {n} lists {m.group(2)} a second time")
        out[m.group(2)] = m.group(1)
    return out


def listing_problems(listed: Mapping[str, str], on_disk: Iterable[str]) -> List[str]:
    """What keeps a manifest from vouching for a set, besides hashes: it lists no file,
    lists a file that is missing, or misses a file that is there. One message a problem,
    each naming the file."""
    on_disk = set(on_disk)
    out = []
    if not listed:
        out.append(f"{MANIFEST} lists no files: an empty manifest vouches for nothing")
    out += [f"{rel}: listed in {MANIFEST} but missing" for rel in sorted(set(listed) - on_disk)]
    out += [f"{rel}: not listed in {MANIFEST}" for rel in sorted(on_disk - set(listed))]
    return out


def hash_problem(rel: str) -> str:
    """The message for a file whose bytes differ from its manifest line."""
    return f"{rel}: SHA-256 differs from {MANIFEST}: the file was changed, corrupted or truncated"


def manifest_hash(root: Path) -> str:
    """SHA-256 of the manifest file: one hash that names a whole vector set."""
    return sha256_file(Path(root) / MANIFEST)
