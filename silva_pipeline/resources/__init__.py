"""Dagster resources: ratings and library sources, the SigLIP2 embedder (GPU), the Hub, storage
(MLflow's resource lives with the rest of MLflow, in `silva_pipeline.tracking`)."""

from silva_pipeline.resources.embedder import SiglipEmbedderResource
from silva_pipeline.resources.hub import HubResource
from silva_pipeline.resources.io_manager import SilvaIOManager
from silva_pipeline.resources.sources import LibrarySource, RatingsSource
from silva_pipeline.resources.workspace import Workspace

__all__ = [
    "HubResource",
    "LibrarySource",
    "RatingsSource",
    "SiglipEmbedderResource",
    "SilvaIOManager",
    "Workspace",
]
