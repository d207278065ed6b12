"""The new-ratings sensor."""

from __future__ import annotations

import dagster as dg
from pipeline_support import (
    append_ratings,
    make_ratings_file,
    workspace,
)

from silva_app.ratings_log import RatingsLog


def _sensor(src):
    """One tick of `new_ratings_sensor` over `src` at a cursor: (what it asked for, new cursor)."""
    from silva_pipeline.automation import new_ratings_sensor

    instance = dg.DagsterInstance.ephemeral()

    def tick(cursor):
        source = {"ratings_source": src}
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources=source) as ctx:
            return new_ratings_sensor(ctx), ctx.cursor

    return tick


def test_sensor_requests_a_run_after_ratings_change_and_not_before(tmp_path):
    from silva_pipeline.resources import RatingsSource

    csv = make_ratings_file(tmp_path / "rated", 5)
    src = RatingsSource(workspace=workspace(), kind="file", path=str(csv))
    tick = _sensor(src)

    out, cursor = tick(None)
    assert isinstance(out, dg.SkipReason) and "baseline" in out.skip_message
    out, cursor2 = tick(cursor)
    assert isinstance(out, dg.SkipReason) and cursor2 == cursor
    append_ratings(csv, 1, seed=3)
    out, cursor3 = tick(cursor2)
    assert isinstance(out, dg.RunRequest) and out.run_key == cursor3 != cursor2
    out, _ = tick(cursor3)
    assert isinstance(out, dg.SkipReason)


def test_a_rating_in_the_log_reaches_the_retrain_sensor(tmp_path):
    from silva_pipeline.resources import RatingsSource

    csv = make_ratings_file(tmp_path / "rated", 5)
    src = RatingsSource(workspace=workspace(), kind="file", path=str(csv))
    tick = _sensor(src)

    out, cursor = tick(None)
    assert isinstance(out, dg.SkipReason)
    RatingsLog.default().append("d" * 64, 5, path=str(tmp_path / "anything.png"))
    out, _ = tick(cursor)
    assert isinstance(out, dg.RunRequest) and out.job_name in (None, "retrain")


def test_annotating_in_pictoria_wakes_the_sensor_with_no_other_step(tmp_path):
    from pipeline_support import annotate, make_pictoria_db

    from silva_pipeline.resources import RatingsSource

    db, _ = make_pictoria_db(tmp_path, n=3, n_with_vectors=0, annotations=True)
    src = RatingsSource(workspace=workspace(), kind="pictoria", path=str(db))
    tick = _sensor(src)

    out, cursor = tick(None)
    assert isinstance(out, dg.SkipReason)
    annotate(db, "listwise_annotations", post_ids="[1, 2, 3]", ranking="[2, 1, 3]", dimension="overall")
    out, cursor = tick(cursor)
    assert isinstance(out, dg.RunRequest)
    out, _ = tick(cursor)
    assert isinstance(out, dg.SkipReason)
