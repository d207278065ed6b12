"""Retraining when new ratings arrive (a sensor) and nightly (a schedule). Both start stopped
and are toggled in the UI (Automation tab); both need the daemon (`dagster dev` starts it)."""

import dagster as dg

from silva_pipeline.assets import library_shards
from silva_pipeline.dead_runs import multiprocess_executor
from silva_pipeline.resources import RatingsSource

# Everything but the per-shard library embeddings (a partitioned asset runs per shard:
# `embed_library`, or on its own when the daemon sees new shards).
retrain_job = dg.define_asset_job(
    "retrain",
    selection=dg.AssetSelection.assets("raw_ratings", "library").downstream()
    - dg.AssetSelection.assets("library_embeddings"),
    description="re-read ratings and library, embed, train, evaluate, release, re-score, re-queue",
)

embed_library_job = dg.define_asset_job(
    "embed_library",
    selection=dg.AssetSelection.assets("library_embeddings"),
    partitions_def=library_shards,
    description="embed library shards (one run per shard; launch a backfill for many)",
)

# The rated images, shard by shard, one worker process per shard at once (as many as the `gpu`
# pool has slots, each process on its own GPU); then `retrain` finds them all in the cache.
embed_images_job = dg.define_asset_job(
    "embed_images",
    selection=dg.AssetSelection.assets("raw_ratings", "image_embeddings"),
    executor_def=multiprocess_executor,
    description="re-read the ratings and embed the rated images, one worker process per shard",
)


@dg.sensor(
    job=retrain_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="retrains (job `retrain`) when the ratings change: source, ratings log or pairs file",
)
def new_ratings_sensor(context: dg.SensorEvaluationContext, ratings_source: RatingsSource):
    """Requests `raw_ratings+` when the ratings source's fingerprint changes. The first tick
    records the current fingerprint as the baseline."""
    fp = ratings_source.fingerprint()
    if context.cursor is None:
        context.update_cursor(fp)
        return dg.SkipReason(f"baseline recorded: {fp[:24]}")
    if fp == context.cursor:
        return dg.SkipReason("ratings unchanged")
    context.update_cursor(fp)
    return dg.RunRequest(run_key=fp, tags={"silva/trigger": "new-ratings"})


nightly_retrain = dg.ScheduleDefinition(
    name="nightly_retrain",
    job=retrain_job,
    cron_schedule="0 3 * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="retrain every night at 03:00",
)
