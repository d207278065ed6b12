"""The MLflow resource fails fast on a server that does not answer."""

from __future__ import annotations

import time

from pipeline_support import (
    failure_message,
    make_ratings_file,
    resources,
    run,
)


def test_an_unreachable_tracking_server_fails_in_seconds_naming_it(tiny_backbone, tmp_path):
    from silva_pipeline.tracking import MlflowTracking

    res = resources(tiny_backbone, kind="file", path=str(make_ratings_file(tmp_path / "rated", 30)))
    res["mlflow"] = MlflowTracking(workspace=res["workspace"], tracking_uri="http://127.0.0.1:9")
    t0 = time.monotonic()
    r = run(res)
    assert not r.success and time.monotonic() - t0 < 60
    assert "http://127.0.0.1:9" in failure_message(r) and "does not answer" in failure_message(r)
