"""The README's own-images path, walked as a person walks it: a fresh copy of the project, images
they made, a shell with nothing set; the trial backbone; the own-images command; a second run
refused while one runs; rating on the page; a retrain from a fresh shell killed while it embeds and
started again, which uses the new ratings (`silva-run`, then `dg launch --job retrain`, with new
library images scored); and `silva score` from another folder."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
from browser_support import rate_by_keys
from first_hour import OWN_IMAGES, RATE, RETRAIN, TRIAL, Shell, make_images, project_copy
from helpers import stop_process_group

from silva_pipeline.local_services import free_port, wait_for_http

pytestmark = pytest.mark.slow


def _instance(project: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(project / ".data" / "dagster"))


def _embedding(instance: dg.DagsterInstance) -> bool:
    """Whether a run is inside a `library_embeddings` step (holding the `gpu` pool)."""
    for record in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]), limit=3):
        logs = instance.all_logs(record.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_START)
        if any(e.step_key.startswith("library_embeddings") for e in logs):
            return True
    return False


def _one_at_a_time(sh: Shell, project: Path) -> None:
    """While the workspace is held (here by this test, as by a running silva-run), silva-run
    refuses at once, saying who holds it."""
    from silva_pipeline.workspace_lock import workspace_lock

    with workspace_lock(project / ".data", "the test's own silva-run"):
        second = sh.run("uv run silva-run")
    assert second.returncode == 2, second.stderr
    assert (
        "the test's own silva-run (pid" in second.stderr and "is running in this workspace" in second.stderr
    )


def _killed_while_embedding(sh: Shell, project: Path, tmp_path: Path) -> None:
    """SIGKILL a retrain while it embeds new library images, holding the `gpu` pool (large photos,
    so the step lasts): the next run (the caller's) reaps it, failed, its slot freed."""
    make_images(project / "my_library" / "more", 60, seed=7, rated=False, size=(1600, 2400))
    first = sh.start(RETRAIN, tmp_path / "killed.log")
    with _instance(project) as instance:
        end = time.monotonic() + 900
        while not _embedding(instance):
            assert first.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
            assert time.monotonic() < end, "timed out waiting for the run to embed"
            time.sleep(0.1)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        assert instance.event_log_storage.get_concurrency_info("gpu").claimed_slots  # left held


def _reaped(project: Path) -> None:
    with _instance(project) as instance:
        killed = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
        assert len(killed) == 1 and "gone" in str(instance.all_logs(killed[0].dagster_run.run_id)[-1].message)
        assert not instance.event_log_storage.get_concurrency_info("gpu").claimed_slots


def _rate_on_the_page(sh: Shell, project: Path, browser) -> list[str]:
    """The README's `silva rate`, on its own port; five ratings by key. Returns the rated hashes."""
    port = free_port()
    proc = sh.start(f"{RATE} --port {port}", project / "rate.log")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/items", proc, 120, "silva rate")
        rate_by_keys(browser, f"http://127.0.0.1:{port}/")
    finally:
        stop_process_group(proc)
    queue = pq.read_table(project / ".data" / "latest" / "rating_queue.parquet").to_pylist()
    return [q["image_sha256"] for q in queue[:5] if q["kind"] == "new"]


def test_the_readme_own_images_path_from_a_fresh_clone(tmp_path, browser):
    project = project_copy(tmp_path / "silva")
    sh = Shell(project)
    made = make_images(project / "my_ratings", 60, seed=1, rated=True)
    make_images(project / "my_library", 200, seed=2, rated=False)
    (project / "my_library" / "notes.txt").write_text("not an image")
    (project / "my_library" / "broken.jpg").write_text("not an image either")

    # nothing set up yet: every entry point says what to run, none reads the demo's data
    refused = sh.run("uv run silva-run")
    assert refused.returncode == 2 and "SILVA_SOURCE" in refused.stderr, refused.stderr
    refused = sh.run("uv run dg launch --job retrain")
    assert refused.returncode != 0 and "has no ratings source yet" in refused.stdout + refused.stderr
    assert not (project / ".data" / "demo").exists()

    sh.ok(TRIAL)
    out = sh.ok(OWN_IMAGES)
    assert re.search(r"^5-fold out-of-fold: spearman", out.stdout, re.M), out.stdout  # the headline, first
    # the .txt is skipped and the .jpg cannot be decoded: the summary counts both, never in silence
    assert "library: 1 file(s) in the library skipped" in out.stdout
    assert "library_embeddings: 1 library image(s) could not be decoded (first: " in out.stdout
    assert "library: 200 images scored (1 of 201 could not be read)" in out.stdout
    assert (project / ".data" / "setup.yaml").read_text().count(str(project / "my_ratings")) == 1

    _one_at_a_time(sh, project)
    rated_new = _rate_on_the_page(sh, project, browser)
    _killed_while_embedding(sh, project, tmp_path)

    retrained = sh.ok(RETRAIN)  # a fresh shell: no SILVA_* variable, no DAGSTER_HOME
    assert "silva-run: done" in retrained.stdout
    _reaped(project)
    manifest = pq.read_table(project / ".data" / "latest" / "manifest.parquet", columns=["image_sha256"])
    assert manifest.num_rows == len(made) + len(rated_new), retrained.stdout
    assert set(rated_new) <= set(manifest.column("image_sha256").to_pylist())

    make_images(project / "my_library" / "new", 12, seed=9, rated=False)
    sh.ok("uv run dg launch --job retrain")
    assert not list(project.glob(".tmp_dagster_home_*"))  # the workspace's instance, not a temporary one
    scores = pq.read_table(project / ".data" / "latest" / "library_scores.parquet", columns=["path"])
    assert sum("/new/" in p for p in scores.column("path").to_pylist()) == 12

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    release = max((project / ".data" / "releases").glob("2*"))
    scored = sh.ok(f"uv run --project {project} silva score {made[0]} --head {release}", cwd=elsewhere)
    assert re.fullmatch(r"0\.\d{4}\t[1-5]\.\d\d\t.+\n", scored.stdout), scored.stdout
