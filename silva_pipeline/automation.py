"""Retraining when new ratings arrive (a sensor) and nightly (a schedule). Both start stopped
and are toggled in the UI (Automation tab); both need the daemon (`dagster dev` starts it)."""

import dagster as dg

from silva_pipeline.resources import RatingsSource

retrain_job = dg.define_asset_job(
    "retrain",
    selection=dg.AssetSelection.assets("raw_ratings").downstream(),
    description="raw_ratings and everything downstream: re-read ratings, embed, train, evaluate, release",
)


@dg.sensor(job=retrain_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.STOPPED)
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
