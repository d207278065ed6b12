"""MLflow, in one place: the tracking resource (`resource`), the registry's release steps
(`registry`) and the released head as a pyfunc model logged as code (`pyfunc_model`,
`pyfunc_head`). Assets log through the resource and never import MLflow themselves."""

from silva_pipeline.tracking.registry import REGISTERED_MODEL
from silva_pipeline.tracking.resource import MlflowTracking

__all__ = ["REGISTERED_MODEL", "MlflowTracking"]
