"""dagster dev: a GraphQL launch materializes the graph."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, stop_process_group

from silva_pipeline.assets import MODEL_ASSETS
from silva_pipeline.local_services import free_port, wait_for_http

pytestmark = pytest.mark.slow


@pytest.fixture
def dagster_dev(tmp_path):
    port = free_port()
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SILVA_HOME": str(tmp_path / "silva"),
        "SILVA_SOURCE": "demo",
        "SILVA_DEMO_SIZE": "600",
        "PYTHONUNBUFFERED": "1",
    }
    log = (tmp_path / "dagster-dev.log").open("w")
    dagster = Path(sys.executable).parent / "dagster"
    proc = subprocess.Popen(
        [str(dagster), "dev", "-m", "silva_pipeline.definitions", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/server_info", proc, 180, "dagster dev")
        yield port, tmp_path
    finally:
        stop_process_group(proc)
        log.close()


def test_graphql_launch_materializes_the_graph(dagster_dev):
    from dagster import DagsterRunStatus
    from dagster_graphql import DagsterGraphQLClient

    port, tmp = dagster_dev
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    run_id = client.submit_job_execution(
        "__ASSET_JOB",
        repository_location_name="silva_pipeline.definitions",
        repository_name="__repository__",
        run_config={"ops": {"head": {"config": {"epochs": 2, "hidden": [32], "device": "cpu"}}}},
        asset_selection=[[k] for k in MODEL_ASSETS],
    )
    deadline = time.monotonic() + 420
    status = client.get_run_status(run_id)
    while status not in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        time.sleep(2)
        status = client.get_run_status(run_id)
    assert status == DagsterRunStatus.SUCCESS, (tmp / "dagster-dev.log").read_text()[-3000:]
    releases = list((tmp / "silva" / "releases").glob("2*/model.safetensors"))
    assert len(releases) == 1
