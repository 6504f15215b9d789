"""Conformance suite for a framework's own CI.

``pytest --pyargs lossref.conformance --lossref-framework keras[numpy]`` runs the golden
vectors (and optionally fresh cases) through the framework and fails one test per
(loss, dtype, output, parameters) group that has an ``inaccurate``, ``mismatch`` or
``error`` finding, with the finding's summary and reproducer as the message.
"""
