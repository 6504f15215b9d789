"""Differential testing of real frameworks against the oracle (``lossref diff``)."""
