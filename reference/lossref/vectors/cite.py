"""``lossref cite``: how to cite lossref and a golden-vector set.

The facts (title, authors, licence) are kept here and in ``CITATION.cff`` at the top of
the source tree; the version and the spec version come from the package, and a test
checks that ``CITATION.cff`` agrees.

A vector set is cited by the SHA-256 of its manifest, so a citation is only as good as the
manifest: :func:`vector_set_citation` first checks that it is complete and that every
file matches its hash (:func:`check_set`), and refuses otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Tuple

from .. import SPEC_VERSION, __version__

__all__ = ["TITLE", "AUTHORS", "LICENSE", "citation", "bibtex", "vector_set_citation",
           "set_versions", "check_set"]

TITLE = "lossref: ground truth for deep-learning loss functions"
#: As in CITATION.cff (an entity, not a list of people).
AUTHORS = "The lossref contributors"
LICENSE = "Apache-2.0"


def check_set(root: Path) -> None:
    """Check that the manifest of the set in `root` names exactly its files: it exists,
    parses, lists at least one file, lists every ``*.jsonl`` file and only those, and every
    file matches its SHA-256 (hashing a set is cheap; the format and the expectations are
    ``lossref verify``'s job).

    Raises
    ------
    VectorSetError
        One line: the first problem, how many there are, and what to run.
    """
    from .manifest import (MANIFEST, VectorSetError, check_readable, hash_problem,
                           listing_problems, read_manifest, sha256_file, vector_files)

    root = Path(root)
    if not root.is_dir():
        raise VectorSetError(f"{root}: not a folder (give the folder of a vector set)")
    try:
        listed = read_manifest(root)
    except (FileNotFoundError, ValueError) as e:
        raise VectorSetError(f"{e}; not citing this set") from None
    on_disk = vector_files(root)
    check_readable(root, on_disk)
    problems = listing_problems(listed, on_disk)
    problems += [hash_problem(rel) for rel in sorted(set(listed) & set(on_disk))
                 if sha256_file(root / rel) != listed[rel]]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise VectorSetError(f"{root}: {problems[0]}{more}; {MANIFEST} does not name this set, "
                             f"so it cannot be cited (run `lossref verify {root}`)")


def set_versions(root: Path) -> Tuple[str, str]:
    """``(lossref version, spec version)`` that made the files of a set, from their
    provenance records (``"mixed"`` where the files disagree).

    Raises
    ------
    VectorSetError
        If a listed file's first line is not a provenance record.
    """
    from .manifest import VectorSetError, read_manifest

    made = set()
    for rel in read_manifest(Path(root)):
        try:
            with open(Path(root) / rel, "rb") as f:
                prov = json.loads(f.readline())["provenance"]
            made.add((str(prov["lossref"]), str(prov["spec"])))
        except (OSError, ValueError, KeyError, TypeError):
            raise VectorSetError(f"{Path(root) / rel}: line 1 is not a provenance record "
                                 "(run `lossref verify`)") from None
    if len(made) == 1:
        return next(iter(made))
    return ("mixed", "mixed") if made else (__version__, SPEC_VERSION)


def vector_set_citation(root: Path) -> str:
    """One line naming a vector set exactly: the lossref and spec versions that made it
    and the SHA-256 of its ``MANIFEST.sha256``.

    Raises
    ------
    VectorSetError
        If the manifest does not name the set's files exactly (:func:`check_set`).
    """
    from .manifest import manifest_hash

    check_set(root)
    version, spec = set_versions(root)
    return (f"Golden vectors of lossref {version} (numeric spec {spec}), "
            f"MANIFEST.sha256 SHA-256 {manifest_hash(Path(root))}")


def citation(vectors: Optional[Path] = None) -> str:
    """Plain-text citation; with `vectors`, a second line naming that vector set
    (:class:`~.manifest.VectorSetError` if its manifest does not name it exactly)."""
    text = (f"{AUTHORS}. {TITLE}. Software, version {__version__} (numeric spec version "
            f"{SPEC_VERSION}). License {LICENSE}.")
    if vectors is not None:
        text += "\n" + vector_set_citation(vectors) + "."
    return text


def bibtex(vectors: Optional[Path] = None) -> str:
    """BibTeX ``@software`` entry; with `vectors`, the vector set in its note
    (:class:`~.manifest.VectorSetError` if its manifest does not name it exactly)."""
    note = f"Numeric spec version {SPEC_VERSION}"
    if vectors is not None:
        note += "; " + vector_set_citation(vectors)
    return ("@software{lossref,\n"
            f"  title   = {{{TITLE}}},\n"
            f"  author  = {{{{{AUTHORS}}}}},\n"
            f"  version = {{{__version__}}},\n"
            f"  license = {{{LICENSE}}},\n"
            f"  note    = {{{note}}}\n"
            "}")
