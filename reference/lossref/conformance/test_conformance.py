"""One test per (loss, format, output, case class) of the selected vectors.

Run it with ``pytest --pyargs lossref.conformance --lossref-framework FRAMEWORK``; the
options and the baseline rules are described in :mod:`lossref.conformance`.
"""

from __future__ import annotations

import pytest

from lossref.conformance.plugin import SUITE, USAGE, ConformanceError
from lossref.conformance.suite import suite_of


def pytest_generate_tests(metafunc) -> None:
    if "lossref_test" not in metafunc.fixturenames:
        return
    try:
        tests = sorted(suite_of(metafunc.config).tests)
    except ConformanceError as e:  # reported as one line once collection ends (plugin)
        metafunc.config.stash[USAGE] = str(e)
        tests = []
    metafunc.parametrize("lossref_test", tests, ids=tests)


@pytest.fixture(scope="session")
def lossref_suite(request):
    """The suite, its selected tests' cases run through the framework once."""
    suite = request.config.stash[SUITE]
    wanted = [item.callspec.params["lossref_test"] for item in request.session.items
              if "lossref_test" in getattr(getattr(item, "callspec", None), "params", {})]
    try:
        suite.run(wanted)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    return suite


def test_conformance(lossref_suite, lossref_test):
    verdict, message = lossref_suite.judge(lossref_test)
    if verdict == "fail":
        pytest.fail(message, pytrace=False)
    if verdict == "xfail":
        pytest.xfail(message)
