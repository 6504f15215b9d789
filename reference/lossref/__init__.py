"""lossref: ground truth for deep-learning loss functions.

Public API::

    lossref.names()          canonical names of every loss
    lossref.get(name)        its LossDef (.per_sample, .elementwise, .exact, .params)
    lossref.reduce(...)      stage 3 with Keras semantics (and reduce.exact)
    lossref.Exact            exact results: .round(fmt), .decimal(n)
"""

from .oracle import Exact, OracleError
from .reduction import reduce
from .registry import get, names

__version__ = "0.1.0"
#: Version of the numeric spec (definitions and expected values); see spec/README.md.
SPEC_VERSION = "0.1"

__all__ = ["Exact", "OracleError", "get", "names", "reduce", "__version__", "SPEC_VERSION"]
