"""silva_pipeline: the Dagster project from a person's ratings to a released silva head.

`defs` is importable from the package so `dagster ... -m silva_pipeline` finds it."""

from silva_pipeline.definitions import defs

__all__ = ["defs"]
