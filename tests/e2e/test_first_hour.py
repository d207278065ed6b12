"""The README's own-images path, walked as a person walks it: a fresh copy of the project, images
they made, a shell with nothing set; the trial backbone; the own-images command; a second run
refused while one runs; a run killed in embedding and started again; rating on the page; a retrain
from a fresh shell that uses the new ratings (`silva-run`, then `dg launch --job retrain`, with new
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
from first_hour import OWN_IMAGES, RATE, RETRAIN, TRIAL, Shell, make_images, project_copy
from helpers import stop_process_group

from silva_pipeline.local_services import free_port, wait_for_http

pytestmark = pytest.mark.slow


def _instance(project: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(project / ".data" / "dagster"))


def _wait(what: str, ready, proc, timeout: float = 900) -> None:
    end = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"it ended before {what}"
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.2)


def _embedding_started(project: Path) -> bool:
    if not (project / ".data" / "dagster" / "dagster.yaml").exists():
        return False
    with _instance(project) as instance:
        for record in instance.get_run_records(
            dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]), limit=3
        ):
            logs = instance.all_logs(record.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_START)
            if any(e.step_key.startswith("library_embeddings") for e in logs):
                return True
    return False


def _refused_then_killed(sh: Shell, project: Path, tmp_path: Path) -> None:
    """While a retrain embeds new library images (holding the `gpu` pool), a second silva-run is
    refused by name; the first is killed with SIGKILL, and the next one finishes."""
    make_images(project / "my_library" / "more", 40, seed=7, rated=False)
    first = sh.start("uv run silva-run", tmp_path / "killed.log")
    try:
        _wait("the first run to start embedding", lambda: _embedding_started(project), first)
        second = sh.run("uv run silva-run")
        assert second.returncode == 2 and "is running in this workspace" in second.stderr, second.stderr
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    out = sh.ok("uv run silva-run")
    assert "silva-run: done" in out.stdout
    with _instance(project) as instance:
        killed = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
        assert killed and "gone" in str(instance.all_logs(killed[0].dagster_run.run_id)[-1].message)
        assert not instance.event_log_storage.get_concurrency_info("gpu").claimed_slots


def _rate_on_the_page(sh: Shell, project: Path, browser) -> list[str]:
    """The README's `silva rate`, on its own port; five ratings by key. Returns the rated hashes."""
    port = free_port()
    proc = sh.start(f"{RATE} --port {port}", project / "rate.log")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/items", proc, 120, "silva rate")
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_function("document.getElementById('img').naturalWidth > 0")
        for key in "54321":
            page.keyboard.press(key)
        page.wait_for_function("document.getElementById('rated').textContent === '5'")
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

    # nothing set up yet: every entry point says what to run, none reads the demo's data
    refused = sh.run("uv run silva-run")
    assert refused.returncode == 2 and "SILVA_SOURCE" in refused.stderr, refused.stderr
    refused = sh.run("uv run dg launch --job retrain")
    assert refused.returncode != 0 and "has no ratings source yet" in refused.stdout + refused.stderr
    assert not (project / ".data" / "demo").exists()

    sh.ok(TRIAL)
    out = sh.ok(OWN_IMAGES)
    assert re.search(r"^5-fold out-of-fold: spearman", out.stdout, re.M), out.stdout  # the headline, first
    assert "library: 200 images scored" in out.stdout  # the .txt is skipped
    assert (project / ".data" / "setup.yaml").read_text().count(str(project / "my_ratings")) == 1

    _refused_then_killed(sh, project, tmp_path)
    rated_new = _rate_on_the_page(sh, project, browser)

    retrained = sh.ok(RETRAIN)  # a fresh shell: no SILVA_* variable, no DAGSTER_HOME
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
