"""The one Definitions object of silva_pipeline.

Resources read their defaults from the environment so that the embedded defaults need no
configuration at all: SILVA_SOURCE (demo|file|folder|pictoria), SILVA_RATINGS (path),
SILVA_LIBRARY_SOURCE (auto|none|demo|folder|list|pictoria), SILVA_LIBRARY (path),
SILVA_LIBRARY_ROOT (pictoria), SILVA_DEMO_SIZE, SILVA_DEMO_LIBRARY_SIZE, SILVA_BACKBONE,
MLFLOW_TRACKING_URI, SILVA_HUB_REPO, HF_TOKEN.
"""

from __future__ import annotations

import os

import dagster as dg

from silva_pipeline.assets import ASSET_CHECKS, ASSETS
from silva_pipeline.automation import (
    embed_images_job,
    embed_library_job,
    new_ratings_sensor,
    nightly_retrain,
    retrain_job,
)
from silva_pipeline.dead_runs import in_process_executor
from silva_pipeline.resources import (
    HubResource,
    LibrarySource,
    RatingsSource,
    SiglipEmbedderResource,
    SilvaIOManager,
)
from silva_pipeline.tracking import MlflowTracking


def default_resources() -> dict[str, object]:
    """Every setting has an environment default (see each resource's fields), so the embedded
    defaults need no configuration and partial run config keeps the rest."""
    return {
        "ratings_source": RatingsSource(),
        "library_source": LibrarySource(),
        "embedder": SiglipEmbedderResource(),
        "mlflow": MlflowTracking(),
        "hub": HubResource(token=dg.EnvVar("HF_TOKEN") if os.environ.get("HF_TOKEN") else None),
        "io_manager": SilvaIOManager(),
    }


defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=ASSET_CHECKS,
    jobs=[retrain_job, embed_images_job, embed_library_job],
    sensors=[new_ratings_sensor],
    schedules=[nightly_retrain],
    resources=default_resources(),
    # The graph is a chain sharing one GPU: running its steps in one process avoids re-importing
    # torch and reloading the backbone per step, and never puts two steps on the GPU at once.
    # `embed_images` is the exception: there the steps are shards, one worker process each.
    executor=in_process_executor,
)
