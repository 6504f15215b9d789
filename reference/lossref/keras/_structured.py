"""Keras dialect functions and classes of one loss family (filled in by its issue)."""

__all__: list = []
