"""silva_pipeline: the Dagster project from a person's ratings to a released silva head.

Its Definitions load from `silva_pipeline.definitions` (`dagster dev -m silva_pipeline.definitions`);
importing this package or any of its modules builds nothing and reads no setting. The package needs
the `pipeline` extra (Dagster, MLflow, polars, matplotlib); scoring with `silva_model` and the
`silva` CLI does not.
"""

from importlib.util import find_spec

_missing = [name for name in ("dagster", "mlflow", "polars", "matplotlib") if find_spec(name) is None]
if _missing:
    raise ImportError(
        f"silva_pipeline needs the 'pipeline' extra ({', '.join(_missing)} missing): "
        "pip install 'silva[pipeline]'"
    )
