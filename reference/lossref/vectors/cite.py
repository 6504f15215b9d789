"""``lossref cite``: how to cite lossref and a golden-vector set.

The facts (title, authors, licence) are kept here and in ``CITATION.cff`` at the top of
the source tree; the version and the spec version come from the package, and a test
checks that ``CITATION.cff`` agrees.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Tuple

from .. import SPEC_VERSION, __version__

__all__ = ["TITLE", "AUTHORS", "LICENSE", "citation", "bibtex", "vector_set_citation", "set_versions"]

TITLE = "lossref: ground truth for deep-learning loss functions"
#: As in CITATION.cff (an entity, not a list of people).
AUTHORS = "The lossref contributors"
LICENSE = "Apache-2.0"


def set_versions(root: Path) -> Tuple[str, str]:
    """``(lossref version, spec version)`` that made the files of a set, from their
    provenance records (``"mixed"`` where the files disagree)."""
    from .manifest import read_manifest

    made = set()
    for rel in read_manifest(Path(root)):
        with open(Path(root) / rel, "rb") as f:
            prov = json.loads(f.readline())["provenance"]
        made.add((prov["lossref"], prov["spec"]))
    if len(made) == 1:
        return next(iter(made))
    return ("mixed", "mixed") if made else (__version__, SPEC_VERSION)


def vector_set_citation(root: Path) -> str:
    """One line naming a vector set exactly: the lossref and spec versions that made it
    and the SHA-256 of its ``MANIFEST.sha256``."""
    from .manifest import manifest_hash

    version, spec = set_versions(root)
    return (f"Golden vectors of lossref {version} (numeric spec {spec}), "
            f"MANIFEST.sha256 SHA-256 {manifest_hash(Path(root))}")


def citation(vectors: Optional[Path] = None) -> str:
    """Plain-text citation; with `vectors`, a second line naming that vector set."""
    text = (f"{AUTHORS}. {TITLE}. Software, version {__version__} (numeric spec version "
            f"{SPEC_VERSION}). License {LICENSE}.")
    if vectors is not None:
        text += "\n" + vector_set_citation(vectors) + "."
    return text


def bibtex(vectors: Optional[Path] = None) -> str:
    """BibTeX ``@software`` entry; with `vectors`, the vector set in its note."""
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
