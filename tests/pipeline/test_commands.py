"""silva-demo, silva-run and silva-ui."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import alive, as_a_script_backgrounds_it

from silva_pipeline.local_services import free_port, wait_for_http


def test_silva_run_refuses_the_demo_source_and_names_what_to_set(monkeypatch, capsys):
    from silva_pipeline.commands import run_own

    monkeypatch.delenv("SILVA_SOURCE", raising=False)
    assert run_own([]) == 2
    err = capsys.readouterr().err
    assert "SILVA_SOURCE" in err and "silva-demo" in err


def test_a_misspelled_path_is_refused_by_its_variable_before_anything_is_written(
    tiny_backbone, tmp_path, monkeypatch, capsys, silva_home
):
    """SILVA_LIBRARY=/nope used to train, evaluate and release, then fail on the library. Every
    path is checked first: the error names the variable and the path, and nothing is written
    (no setup recorded, no release, no run)."""
    from pipeline_support import make_ratings_file

    from silva_pipeline.commands import run_own

    monkeypatch.setenv("SILVA_SOURCE", "file")
    monkeypatch.setenv("SILVA_RATINGS", str(make_ratings_file(tmp_path / "rated", 10)))
    monkeypatch.setenv("SILVA_LIBRARY_SOURCE", "folder")
    monkeypatch.setenv("SILVA_LIBRARY", "/nope")
    monkeypatch.setenv("SILVA_BACKBONE", str(tmp_path / "no-backbone"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    assert run_own([]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "silva-run: SILVA_LIBRARY: the library folder /nope does not exist" in err
    assert f"silva-run: SILVA_BACKBONE: the backbone folder {tmp_path / 'no-backbone'} does not exist" in err
    assert not (silva_home / "setup.yaml").exists() and not (silva_home / "releases").exists()
    assert not (tmp_path / "dagster").exists()


def test_a_judge_folder_that_holds_no_head_is_refused_before_anything_is_written(
    tiny_backbone, tmp_path, monkeypatch, capsys, silva_home
):
    """SILVA_PRIOR naming a folder of images (not a head) used to stop the run at the head step,
    recorded in setup.yaml, so every later run stopped there too."""
    from pipeline_support import make_ratings_file

    from silva_pipeline.commands import run_own

    monkeypatch.setenv("SILVA_SOURCE", "file")
    monkeypatch.setenv("SILVA_RATINGS", str(make_ratings_file(tmp_path / "rated", 10)))
    monkeypatch.setenv("SILVA_BACKBONE", str(tiny_backbone))
    monkeypatch.setenv("SILVA_PRIOR", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    assert run_own([]) == 2
    err = capsys.readouterr().err
    assert f"silva-run: SILVA_PRIOR: {tmp_path} holds no silva head: expected config.json" in err
    assert not (silva_home / "setup.yaml").exists() and not (tmp_path / "dagster").exists()


def test_a_run_started_elsewhere_stops_before_its_first_step_on_a_bad_setting(
    tiny_backbone, tmp_path, monkeypatch
):
    """The same check at the start of every Dagster run (`dg launch`, the sensor, the launchpad):
    resources that cannot start stop the run before any step, by name."""
    import dagster as dg
    from pipeline_support import failure_message, make_ratings_file, resources, run

    res = resources(tiny_backbone, kind="file", path=str(make_ratings_file(tmp_path / "rated", 10)))
    monkeypatch.setenv("SILVA_LIBRARY_SOURCE", "folder")
    monkeypatch.setenv("SILVA_LIBRARY", "/nope")
    r = run(res, selection=["raw_ratings", "library"])
    assert not r.success and "SILVA_LIBRARY: the library folder /nope does not exist" in failure_message(r)
    assert not [e for e in r.all_events if e.event_type == dg.DagsterEventType.STEP_START]


def test_a_setup_whose_ratings_cannot_be_read_is_not_remembered(
    tiny_backbone, tmp_path, monkeypatch, capsys, silva_home
):
    """Breaker, round 4: an existing but empty ratings folder passed the path check, failed at
    raw_ratings, and was recorded, so every later plain `silva-run` failed the same way."""
    from silva_pipeline.commands import run_own

    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("SILVA_SOURCE", "folder")
    monkeypatch.setenv("SILVA_RATINGS", str(tmp_path / "empty"))
    monkeypatch.setenv("SILVA_LIBRARY_SOURCE", "none")
    monkeypatch.setenv("SILVA_BACKBONE", str(tiny_backbone))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    assert run_own([]) == 1
    said = f"stopped at raw_ratings: SILVA_RATINGS: {tmp_path / 'empty'} holds no usable rated images"
    assert said in capsys.readouterr().err
    assert not (silva_home / "setup.yaml").exists() and not (silva_home / "releases").exists()


def _session(leader: int) -> set[int]:
    out = subprocess.run(["pgrep", "-s", str(leader)], capture_output=True, text=True).stdout
    return set(map(int, out.split()))


@pytest.mark.slow
def test_silva_ui_backgrounded_by_a_script_stops_with_every_process_it_started(tmp_path):
    """Walkers' finding: `kill -INT` to the group of a `silva-ui` a script had started left the
    webserver, daemon and code servers running, and so did SIGTERM (`dagster dev` maps SIGTERM onto
    SIGINT's handler, and both were ignored). SIGTERM now stops it, and nothing it started is left
    (SIGINT to its group and SIGHUP: test_stopping)."""
    port = free_port()
    env = {**os.environ, "SILVA_HOME": str(tmp_path / "silva"), "DAGSTER_HOME": str(tmp_path / "dagster")}
    with (tmp_path / "ui.log").open("w") as log:
        ui = subprocess.Popen(
            [str(Path(sys.executable).with_name("silva-ui")), "-h", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=as_a_script_backgrounds_it,
        )
    started = {ui.pid}
    try:
        wait_for_http(f"http://127.0.0.1:{port}/server_info", ui, 180, "silva-ui")
        started = _session(ui.pid)
        assert len(started) >= 4, started  # silva-ui, dagster dev, its webserver and daemon, ...
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=90)
        deadline = time.monotonic() + 30
        while (left := {p for p in started if alive(p)}) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, (tmp_path / "ui.log").read_text()[-2000:]
    finally:
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _silva_run(tiny_backbone: Path, tmp_path: Path, ratings: int, **popen) -> subprocess.Popen:
    """`silva-run` on `ratings` rated images with the tiny backbone, as a person starts it."""
    from pipeline_support import make_ratings_file

    env = {
        **os.environ,
        "SILVA_HOME": str(tmp_path / "silva"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "SILVA_SOURCE": "file",
        "SILVA_RATINGS": str(make_ratings_file(tmp_path / "rated", ratings)),
        "SILVA_BACKBONE": str(tiny_backbone),
        "PYTHONUNBUFFERED": "1",
    }
    command = [str(Path(sys.executable).with_name("silva-run"))]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True, **popen
    )


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_silva_run_backgrounded_by_a_script_stops_on_either_signal_and_says_so(tiny_backbone, tmp_path, stop):
    """A script's `silva-run &` starts with SIGINT ignored: `kill -INT` did nothing while it waited
    for the `gpu` pool (or between its Dagster runs, where Dagster leaves SIGTERM with SIGINT's
    handler), and SIGTERM ended it without a word. Either now interrupts the run, which says so."""
    import dagster as dg
    from pipeline_support import held_by

    from silva_pipeline.dead_runs import this_process
    from silva_pipeline.instance import ensure_instance

    with dg.DagsterInstance.from_config(str(ensure_instance(tmp_path / "dagster"))) as instance:
        held_by(instance, this_process())  # this test, alive: the run waits for the pool
    script = as_a_script_backgrounds_it
    run = _silva_run(tiny_backbone, tmp_path, 20, stderr=subprocess.STDOUT, preexec_fn=script)
    try:
        said = []
        for line in run.stdout:
            said.append(line)
            if "waiting for run(s)" in line:
                break
        assert "waiting for run(s)" in said[-1], "".join(said)
        run.send_signal(stop)
        assert run.wait(timeout=30) == 130
        assert "silva-run: interrupted; run it again" in run.stdout.read()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)


@pytest.mark.slow
def test_silva_run_stopped_inside_a_step_exits_as_interrupted(tiny_backbone, tmp_path):
    """Walker's finding: stopped inside a step, silva-run said "interrupted" but exited 1, as for a
    failed step; between steps it exited 130. Both are 130 now."""
    run = _silva_run(tiny_backbone, tmp_path, 60, stderr=subprocess.PIPE)
    try:
        for line in run.stdout:
            if "image_embeddings.pending_shards" in line:  # the next step embeds: stop it there
                break
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=60) == 130
        err = run.stderr.read()  # stopped at a step, or between two: said either way
        assert "interrupted" in err and "run it again" in err, err
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)


def test_a_stop_in_silva_runs_first_seconds_is_said_not_a_traceback(monkeypatch, capsys):
    """Found re-walking the stops: SIGTERM 4 s after start landed in the imports that setting up
    the workspace does and ended in a traceback (exit -2); it is an interruption like any other."""
    import silva_pipeline.commands as commands

    def importing(a):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "own_workspace", importing)
    assert commands.run_own([]) == 130
    assert "silva-run: interrupted; run it again" in capsys.readouterr().err
