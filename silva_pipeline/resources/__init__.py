"""Dagster resources: ratings and library sources, the SigLIP2 embedder (GPU), MLflow, Hub, storage."""

from silva_pipeline.resources.embedder import SiglipEmbedderResource
from silva_pipeline.resources.hub import HubResource
from silva_pipeline.resources.io_manager import SilvaIOManager
from silva_pipeline.resources.mlflow_tracking import MlflowTracking
from silva_pipeline.resources.ratings_source import LibrarySource, RatingsSource

__all__ = [
    "HubResource",
    "LibrarySource",
    "MlflowTracking",
    "RatingsSource",
    "SiglipEmbedderResource",
    "SilvaIOManager",
]
