"""The loop: demo, rate on the page, the sensor retrains."""

from __future__ import annotations

import dagster as dg
import pyarrow.parquet as pq
import pytest
from browser_support import rate_by_keys, start_page
from helpers import (
    stop_process_group,
)

from silva_app.queue import latest_queue
from silva_app.ratings_log import RatingsLog


@pytest.mark.slow
def test_rate_in_the_browser_then_the_sensor_retrains_on_it(tmp_path, monkeypatch, browser):
    monkeypatch.setenv("SILVA_HOME", str(tmp_path / "silva-home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster-home"))
    monkeypatch.setenv("SILVA_DEMO_HOME", str(tmp_path / "demo-home"))
    monkeypatch.setenv("SILVA_DEMO_SIZE", "800")
    monkeypatch.setenv("SILVA_DEMO_LIBRARY_SIZE", "2000")
    from silva_app.home import silva_home
    from silva_pipeline.automation import new_ratings_sensor
    from silva_pipeline.commands import main
    from silva_pipeline.definitions import build_definitions

    # The demo, as `uv run silva-demo --reset` runs it: the person's own sources and tracking
    # server set (pointing nowhere) change nothing, and its workspace is made anew.
    monkeypatch.setenv("SILVA_SOURCE", "folder")
    monkeypatch.setenv("SILVA_RATINGS", str(tmp_path / "nowhere"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    demo = tmp_path / "demo-home"
    (demo / "data").mkdir(parents=True)
    (demo / "data" / "left-over").write_text("from an earlier demo")
    assert main(["--reset", "--epochs", "3"]) == 0
    assert not (demo / "data" / "left-over").exists() and not (tmp_path / "silva-home" / "releases").exists()
    assert len(list((demo / "data" / "releases").glob("2*/model.safetensors"))) == 1

    defs = build_definitions(silva_home())  # the demo's workspace: silva-demo pointed this process there
    queue = pq.read_table(latest_queue()).to_pylist()
    assert len(queue) == 200 and {q["kind"] for q in queue} == {"new", "rerate"}

    with dg.DagsterInstance.get() as instance:

        def tick(cursor):
            source = {"ratings_source": defs.resources["ratings_source"]}
            with dg.build_sensor_context(instance=instance, cursor=cursor, resources=source) as ctx:
                return new_ratings_sensor(ctx), ctx.cursor

        out, cursor = tick(None)  # the baseline, before any rating
        assert isinstance(out, dg.SkipReason)

        proc, url = start_page(latest_queue(), RatingsLog.default().path)
        try:
            rate_by_keys(browser, url)
        finally:
            stop_process_group(proc)
        logged = RatingsLog.default().entries().to_pylist()
        assert [r["rating"] for r in logged] == [5, 4, 3, 2, 1]
        assert [r["image_sha256"] for r in logged] == [q["image_sha256"] for q in queue[:5]]
        new_ones = sum(q["kind"] == "new" for q in queue[:5])
        assert new_ones >= 3  # every fourth is a re-rate

        request, _ = tick(cursor)
        assert isinstance(request, dg.RunRequest)
        job = defs.resolve_job_def("retrain")
        result = job.execute_in_process(
            instance=instance,
            run_config={"ops": {"head": {"config": {"epochs": 3}}}},
            tags=request.tags,
            raise_on_error=False,
        )
        assert result.success
        raw = result.asset_materializations_for_node("raw_ratings")[0].metadata
        assert raw["dagster/row_count"].value == 800 + new_ones  # library images rated in the page
        rows = pq.read_table(raw["dagster/uri"].value).to_pydict()
        rating = dict(zip(rows["image_sha256"], rows["rating"], strict=True))
        assert [rating[q["image_sha256"]] for q in queue[:5]] == [5, 4, 3, 2, 1]
        manifest = result.asset_materializations_for_node("manifest")[0].metadata
        assert manifest["dagster/row_count"].value == 800 + new_ones
        assert result.asset_materializations_for_node("rating_queue")  # and a fresh queue
