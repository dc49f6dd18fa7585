"""The one error type of the declared models."""

from __future__ import annotations


class ModelError(RuntimeError):
    """A model, its YAML, a ref or a data test is unusable: one line naming the file and the key,
    so a broken project file reads as a message rather than a traceback from deep inside."""
