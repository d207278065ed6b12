"""The run's closing summary: what it says of each split."""

import shlex
from pathlib import Path

from silva_pipeline.summary import command, forced, gate_line


def test_the_gate_line_says_its_verdict_before_its_numbers():
    """Walker's finding: "difference -0.0011, 95 % CI [-0.0079, +0.0000]" and no word of the verdict."""
    why = "spearman 0.7847 vs released head 0.7859 ...: difference -0.0011, 95 % CI [-0.0079, +0.0000]"
    assert gate_line(True, why) == f"release gate: passed, {why}"
    # walker's: the README promised how to force it
    refused = gate_line(False, why, "uv run silva-demo --force-release")
    assert refused == f"release gate: refused, {why}; to release it anyway: uv run silva-demo --force-release"


def test_the_hints_reach_the_workspace_the_run_used(tmp_path):
    """Walker's finding: a run on SILVA_HOME=/tmp/x printed `uv run silva-ui`, which opens `.data`."""
    from silva_app.home import PROJECT_ROOT

    assert command("silva-ui", PROJECT_ROOT / ".data", demo=False, env={}) == "uv run silva-ui"
    elsewhere = command("silva rate", tmp_path / "a b", demo=False, env={})
    assert elsewhere == f"SILVA_HOME='{tmp_path}/a b' uv run silva rate"
    assert command("silva-ui", tmp_path, demo=True, env={}) == "uv run silva-ui --demo"
    assert command("silva-demo", tmp_path, demo=True, env={}) == "uv run silva-demo"  # its own: no flag


def test_the_hints_name_the_instance_and_the_demo_workspace_the_shell_set(tmp_path):
    """Breaker's finding: with DAGSTER_HOME or SILVA_DEMO_HOME set, the printed `silva-ui` opened
    another instance or the project's `.demo` once pasted into a fresh shell."""
    from silva_app.home import PROJECT_ROOT

    own = command("silva-ui", PROJECT_ROOT / ".data", demo=False, env={"DAGSTER_HOME": str(tmp_path / "d")})
    assert own == f"DAGSTER_HOME={tmp_path / 'd'} uv run silva-ui"
    demo = command("silva-ui", tmp_path / "data", demo=True, env={"SILVA_DEMO_HOME": "~/x y"})
    assert demo == f"SILVA_DEMO_HOME='{Path('~/x y').expanduser()}' uv run silva-ui --demo"
    # the demo's own DAGSTER_HOME (use_demo_workspace sets it) follows from SILVA_DEMO_HOME: not repeated
    own_instance = {"DAGSTER_HOME": "/elsewhere"}
    assert command("silva-demo", tmp_path, demo=True, env=own_instance) == "uv run silva-demo"


def test_a_forced_release_trains_the_head_that_was_refused():
    """Breaker's finding: `--force-release` as printed retrained without the run's own training
    variables and --epochs, so it could release another head than the one refused."""
    again = "SILVA_HOME=/w uv run silva-run"
    line = forced(again, {"lr": "0.01", "hidden": "[64]"}, epochs=3)
    variables = "SILVA_HIDDEN='[64]' SILVA_LR=0.01"
    assert line == f"{variables} SILVA_HOME=/w uv run silva-run --epochs 3 --force-release"
    assert forced("uv run silva-demo", {}, None) == "uv run silva-demo --force-release"


def test_the_hints_say_what_the_shell_set_not_what_the_run_set(tmp_path, monkeypatch, capsys):
    """Breaker's findings: the run sets DAGSTER_HOME itself (ensure_instance), so every hint
    carried it though the shell never set it; and a forced run re-emitted SILVA_PRIOR, which the
    workspace records, so `--prior B` over `SILVA_PRIOR=A` was forced with A."""
    from types import SimpleNamespace

    import dagster as dg

    from silva_app.home import Home
    from silva_pipeline import summary

    root = tmp_path / "ws"
    shell = {"SILVA_HOME": str(root)}
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))  # as the run itself sets it
    setup = SimpleNamespace(training_env={"prior": "A", "lr": "0.01"})
    ws = SimpleNamespace(home=Home(root), demo=False, setup=setup, instance=root / "dagster")
    chain = SimpleNamespace(model=None, shards=[], loop=None, failed=None)
    monkeypatch.setattr(dg.DagsterInstance, "from_config", lambda *a: _NoInstance())
    monkeypatch.setattr(summary, "_in_force", lambda instance: "none yet")
    summary.print_summary("silva-run", ws, chain, False, 1.0, shell=shell)
    out = capsys.readouterr().out
    assert f"see it: SILVA_HOME={root} uv run silva-ui" in out and "DAGSTER_HOME=" not in out
    forced_line = summary.forced("uv run silva-run", summary.per_run(setup.training_env), None)
    assert forced_line == "SILVA_LR=0.01 uv run silva-run --force-release"


class _NoInstance:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_the_hints_name_the_project_when_the_run_was_started_from_another_folder(tmp_path):
    """Walker's finding: `uv run --project ~/silva silva-run` from another folder printed
    `uv run silva-ui`, which uv cannot run there (no project)."""
    from silva_app.home import PROJECT_ROOT

    hint = command("silva-ui", PROJECT_ROOT / ".data", demo=False, env={}, cwd=tmp_path)
    assert hint == f"uv run --project {shlex.quote(str(PROJECT_ROOT))} silva-ui"
    assert command("silva-ui", PROJECT_ROOT / ".data", demo=False, env={}, cwd=PROJECT_ROOT / "docs") == (
        "uv run silva-ui"  # inside the project, uv finds it
    )


def test_the_hints_survive_a_deleted_working_folder_and_an_installed_silva(tmp_path, monkeypatch):
    """Breaker's findings: a run whose working folder was deleted meanwhile ended its summary in a
    traceback (Path.cwd()); installed from a wheel, the hint named site-packages as the project."""
    import os

    import silva_pipeline.summary as summary
    from silva_app.home import PROJECT_ROOT

    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    project = shlex.quote(str(PROJECT_ROOT))
    hint = command("silva-ui", PROJECT_ROOT / ".data", demo=False, env={})
    assert hint == f"uv run --project {project} silva-ui"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(summary, "PROJECT_ROOT", tmp_path / "site-packages")  # no pyproject.toml there
    assert command("silva-ui", tmp_path / "data", demo=False, env={}).endswith(" uv run silva-ui")
    assert os.getcwd() == str(tmp_path)
