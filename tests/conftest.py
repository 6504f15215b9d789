"""Shared fixtures. Keras runs on its NumPy backend; the variable must be set before import."""

import os

# the comparisons with real Keras pin its NumPy backend (other backends run in subprocesses)
os.environ["KERAS_BACKEND"] = "numpy"

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def keras():
    """Real Keras 3 on the NumPy backend, or a skip that says why."""
    k = pytest.importorskip("keras", reason="keras is not installed (pip install -e '.[test]')")
    if k.backend.backend() != "numpy":
        pytest.skip(f"keras backend is {k.backend.backend()!r}; these checks pin the numpy backend")
    return k
