"""silva-demo, silva-run and silva-ui."""

from __future__ import annotations


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
