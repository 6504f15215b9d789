"""Golden vectors: deterministic cases with exact expectations, in a language-neutral file.

``spec/vectors/README.md`` specifies the format. Python users read a file with
:func:`load`; ``lossref golden`` writes a set, ``lossref verify`` checks one.
"""

from .fileformat import FORMAT_VERSION, Case, VectorFile, canonical_dir, load
from .generate import fresh_specs, golden, render_file
from .manifest import manifest_hash
from .verify import verify

__all__ = ["load", "Case", "VectorFile", "canonical_dir", "golden", "render_file", "fresh_specs", "verify",
           "manifest_hash", "FORMAT_VERSION"]
