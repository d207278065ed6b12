"""The one Definitions of silva_pipeline, built for one workspace.

Dagster loads `defs` (`dagster dev -m silva_pipeline.definitions`, `dg launch`, the daemon) when it
needs it, not at import: then the data root is read, once (SILVA_HOME, else the project's
`.data`), and handed to every resource as configuration. How the workspace is set up (its sources,
backbone, judge) is read from the workspace at run time (`silva_app.setup`), so a long-running
daemon retrains on what the latest `silva-run` recorded. `silva-demo` and `silva-run` build their
own with `build_definitions`.
"""

from __future__ import annotations

import os

import dagster as dg

from silva_app.home import Home, silva_home
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
    Workspace,
)
from silva_pipeline.tracking import MlflowTracking


def workspace_resources(home: Home) -> dict[str, object]:
    """Every resource of a run in the workspace at `home`: each holds the workspace, and a
    setting it leaves empty comes from the workspace's setup (partial run config keeps the rest)."""
    workspace = Workspace(root=str(home.root))
    token = dg.EnvVar("HF_TOKEN") if os.environ.get("HF_TOKEN") else None
    return {
        "workspace": workspace,
        "ratings_source": RatingsSource(workspace=workspace),
        "library_source": LibrarySource(workspace=workspace),
        "embedder": SiglipEmbedderResource(workspace=workspace),
        "mlflow": MlflowTracking(workspace=workspace),
        "hub": HubResource(workspace=workspace, token=token),
        "io_manager": SilvaIOManager(workspace=workspace),
    }


def build_definitions(home: Home) -> dg.Definitions:
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=ASSET_CHECKS,
        jobs=[retrain_job, embed_images_job, embed_library_job],
        sensors=[new_ratings_sensor],
        schedules=[nightly_retrain],
        resources=workspace_resources(home),
        # The graph is a chain sharing one GPU: running its steps in one process avoids re-importing
        # torch and reloading the backbone per step, and never puts two steps on the GPU at once.
        # `embed_images` is the exception: there the steps are shards, one worker process each.
        executor=in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The person's workspace (SILVA_HOME, else the project's `.data`)."""
    return build_definitions(silva_home())
