"""Conformance suite for a framework's own CI.

``pytest --pyargs lossref.conformance --lossref-framework keras[jax]`` runs the golden
vectors through the framework (in a worker process) and has one test per (loss, format,
output, case class), e.g. ``test_conformance[mean_squared_error-float32-sum-typical]``.
A test fails when a case's value (or gradient, with ``--lossref-grad``) is beyond its
budget in ulps, is another convention, or raises; the message gives the failing cases with
their parameters and causes (:func:`lossref.diff.causes.classify`), the worst case's
reproducer, and the command that reruns that test alone.

A project chooses what it promises (case classes, budgets per loss and format) with the
``--lossref-*`` options or a ``[tool.lossref]`` table in its ``pyproject.toml``, and gates
pull requests on what changed with a committed baseline (record, check, tighten): see
:mod:`lossref.conformance.plugin` for the options and the baseline rules.
"""
