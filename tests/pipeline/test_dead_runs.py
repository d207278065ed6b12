"""Runs killed mid-step are reaped by the next run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psutil
import pytest
from pipeline_support import (
    FAST_HEAD,
    dagster_materialize,
    make_ratings_file,
)

from silva_pipeline.assets import MODEL_ASSETS
from silva_pipeline.dead_runs import PROCESS_TAG, process_gone, this_process
from silva_pipeline.release_transaction import JOURNAL
from silva_pipeline.tracking import REGISTERED_MODEL

CONFIG = {"ops": {**FAST_HEAD["ops"], "evaluation_beats_last_release": {"config": {"force": True}}}}


def test_a_process_is_gone_when_it_ended_or_its_pid_was_reused_never_when_on_another_host():
    assert not process_gone(this_process())
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    host = socket.gethostname()
    assert process_gone(f"{host}:{ended.pid}:{psutil.Process().create_time():.2f}")
    assert process_gone(f"{host}:{os.getpid()}:12.00")  # this pid, but a process started long ago
    assert not process_gone(f"another-host:{ended.pid}:12.00")


def _wait(what: str, ready, proc: subprocess.Popen | None = None, timeout: float = 600) -> None:
    """Poll `ready()` (never a fixed sleep) until true; fail if `proc` ended first."""
    end = time.monotonic() + timeout
    while not ready():
        assert proc is None or proc.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def _started(instance: dg.DagsterInstance, before: set[str], step: str):
    """The run id of the new run once its step `step` (prefix) has started, else None."""
    for record in instance.get_run_records(limit=5):
        if record.dagster_run.run_id in before:
            continue
        logs = instance.all_logs(record.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_START)
        if any(e.step_key.startswith(step) for e in logs):
            return record.dagster_run.run_id
    return None


@pytest.mark.slow
def test_runs_killed_inside_any_step_block_nothing_and_leave_the_releases_consistent(
    tiny_backbone, tmp_path, monkeypatch
):
    """SIGKILL `dagster asset materialize` while it holds a `gpu` pool slot (embedding), inside
    `head`, and inside `hub_release` once it has begun staging: each next run completes and
    releases, the killed runs are marked failed, and the registry, `champion` and the releases
    folder agree."""
    from silva_pipeline.instance import ensure_instance

    home = tmp_path / "silva-home"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "SILVA_HOME": str(home),
        "SILVA_SOURCE": "file",
        "SILVA_RATINGS": str(make_ratings_file(tmp_path / "rated", 300)),
        "SILVA_BACKBONE": str(tiny_backbone),
    }
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    ensure_instance(tmp_path / "dagster")
    releases = home / "releases"
    model = ",".join(MODEL_ASSETS)

    def killed(select: str, step: str, inside=lambda: True) -> str:
        with dg.DagsterInstance.get() as instance:
            before = {r.dagster_run.run_id for r in instance.get_run_records()}
            proc = dagster_materialize(env, select, CONFIG, log=tmp_path / "killed.log")
            _wait(f"step {step}", lambda: _started(instance, before, step), proc)
            _wait(f"the moment to kill inside {step}", inside, proc)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return _started(instance, before, step)

    def completes(select: str) -> None:
        proc = dagster_materialize(env, select, CONFIG, log=tmp_path / "next.log")
        try:
            assert proc.wait(timeout=600) == 0, (tmp_path / "next.log").read_text()[-3000:]
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(
                f"the run after a killed one did not finish:\n{(tmp_path / 'next.log').read_text()[-3000:]}"
            )

    def slots_held(instance) -> int:
        return len(instance.event_log_storage.get_concurrency_info("gpu").claimed_slots)

    dead = [killed(model, "image_embeddings.embed_shard")]
    with dg.DagsterInstance.get() as instance:
        assert slots_held(instance) == 1  # what used to block every later embedding step
    completes(model)
    dead.append(killed("head,out_of_fold,evaluation,hub_release", "head"))
    staged = lambda: any(releases.glob(".*.staging")) and (releases / JOURNAL).exists()  # noqa: E731
    dead.append(killed("head,out_of_fold,evaluation,hub_release", "hub_release", staged))
    assert (releases / JOURNAL).exists()
    completes("head,out_of_fold,evaluation,hub_release")

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    with dg.DagsterInstance.get() as instance:
        for run_id in dead:
            run = instance.get_run_by_id(run_id)
            assert run.status == dg.DagsterRunStatus.FAILURE and PROCESS_TAG in run.tags
        assert slots_held(instance) == 0
        records = instance.fetch_materializations(dg.AssetKey("hub_release"), limit=10).records
    released = {str(r.asset_materialization.metadata["registry_version"].value): r for r in records}
    assert len(released) == 2
    versions = {str(v.version) for v in client.search_model_versions(f"name='{REGISTERED_MODEL}'")}
    assert versions == set(released)  # no version of a killed release is left
    newest = max(records, key=lambda r: r.timestamp)
    assert str(client.get_model_version_by_alias(REGISTERED_MODEL, "champion").version) == str(
        newest.asset_materialization.metadata["registry_version"].value
    )
    folders = {p.name for p in releases.iterdir() if not p.name.startswith(".")}
    assert folders == {Path(r.asset_materialization.metadata["release"].value).name for r in records}
    assert not any(releases.glob(".*.staging")) and not (releases / JOURNAL).exists()
    for folder in folders:
        config = json.loads((releases / folder / "config.json").read_text())
        assert config["dagster_run_id"] not in dead
