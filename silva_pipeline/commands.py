"""The pipeline's commands. `uv run silva-run`: the whole graph on the person's own sources, in
their workspace (and, run again with no variables, the retrain); `uv run silva-demo`: the same on
the built-in demo, in the demo's own workspace; `uv run silva-ui`: `dagster dev` on a workspace's
instance; `uv run silva-mlflow`: the MLflow UI on its store. Each workspace has a persistent
Dagster instance (SQLite), so its runs show up in its UI."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from silva_app.home import PROJECT_ROOT, Home, dagster_home, demo_root, silva_home, use_demo_workspace
from silva_app.setup import Setup, forget_person_settings
from silva_pipeline.instance import ensure_instance
from silva_pipeline.stopping import stoppable, supervise, until_stopped
from silva_pipeline.workspace_lock import WorkspaceBusy, workspace_lock


class NotReady(Exception):
    """The workspace cannot run as set up; the message says what to change."""


@dataclass
class Workspace:
    """Where a command runs: the data root, its Dagster instance and how it is set up."""

    home: Home
    instance: Path
    setup: Setup
    demo: bool


def _parser(prog: str) -> argparse.ArgumentParser:
    own = prog == "silva-run"
    p = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Materialize the whole graph on your workspace's sources (set them once with SILVA_SOURCE, "
            "SILVA_RATINGS, SILVA_LIBRARY_SOURCE, SILVA_LIBRARY, SILVA_BACKBONE; they are recorded, so "
            "run it again with no variables to retrain) and print a summary."
            if own
            else "Materialize the whole graph on the built-in demo data and print the evaluation."
        ),
    )
    p.add_argument("--epochs", type=int, help="this run's training epochs")
    p.add_argument("--prior", metavar="JUDGE", help="start the head from a published judge (recorded)")
    p.add_argument("--force-release", action="store_true", help="release even if worse than the last release")
    p.add_argument("--verbose", action="store_true", help="Dagster's and MLflow's own logs, and tracebacks")
    if not own:
        where = demo_root()
        p.add_argument("--reset", action="store_true", help=f"delete the demo's workspace first ({where})")
    return p


def own_workspace(a: argparse.Namespace) -> Workspace:
    """The person's workspace as recorded, with this shell's SILVA_* and the options on top,
    checked before anything is written."""
    home = silva_home()
    setup = Setup.load(home, os.environ, {"training.prior": a.prior})
    if not setup.configured:
        raise NotReady(
            "runs on your own ratings, and this workspace has none set up yet: set SILVA_SOURCE (file, "
            "folder or pictoria) and SILVA_RATINGS once (the README's 'Your own images'); "
            "`uv run silva-demo` runs the demo"
        )
    from silva_pipeline.preflight import preflight

    problems = preflight(home, setup)
    if problems:
        raise NotReady("\n".join(problems))
    return Workspace(home, dagster_home(home), setup, demo=False)


def demo_workspace(a: argparse.Namespace) -> Workspace:
    """The demo's own workspace, set up for the demo whatever the person's SILVA_* say."""
    if a.reset:
        shutil.rmtree(demo_root(), ignore_errors=True)
    use_demo_workspace()
    forget_person_settings(os.environ)
    home = silva_home()
    overrides = {"ratings.source": "demo", "library.source": "auto", "training.prior": a.prior}
    return Workspace(home, dagster_home(home), Setup.load(home, os.environ, overrides), demo=True)


def remember_instance(ws: Workspace) -> None:
    """Point plain `dagster`/`dg` commands in the project folder (`dg launch --job retrain`,
    `dagster dev`) at the workspace's instance, through the `.env` file Dagster reads there: only
    for the project's own workspace (SILVA_HOME and DAGSTER_HOME unset)."""
    if ws.demo or os.environ.get("SILVA_HOME") or ws.home.root != (PROJECT_ROOT / ".data").resolve():
        return
    env = PROJECT_ROOT / ".env"
    lines = env.read_text(encoding="utf-8").splitlines() if env.exists() else []
    lines = [line for line in lines if not line.startswith("DAGSTER_HOME=")]
    from silva_model.atomic import atomic_write_text

    atomic_write_text(env, "\n".join([*lines, f"DAGSTER_HOME={ws.instance}"]) + "\n")


def forget_setup(file: Path, before: str | None) -> None:
    """Put the workspace's setup back as it was before a run that could not read its sources."""
    from silva_model.atomic import atomic_write_text

    if before is None:
        file.unlink(missing_ok=True)
    else:
        atomic_write_text(file, before)


def _run_config(a: argparse.Namespace) -> dict:
    run_config: dict = {"ops": {}}
    if not a.verbose:  # one line per step from here, not Dagster's event stream
        run_config["loggers"] = {"console": {"config": {"log_level": "CRITICAL"}}}
    if a.epochs:
        run_config["ops"]["head"] = {"config": {"epochs": a.epochs}}
    if a.force_release:
        from silva_pipeline.release_gate import force_release  # torch: not imported for the UIs

        run_config["ops"] |= force_release()["ops"]
    return run_config


def main(argv: list[str] | None = None, prog: str = "silva-demo") -> int:
    """Everything, in order: ratings to release and the library's shards, each new shard
    embedded, the library scored and the rating queue chosen; then a summary, also on failure."""
    a = _parser(prog).parse_args(argv)
    with stoppable():  # Ctrl-C and SIGTERM interrupt, whatever the shell passed on
        try:
            return _main(a, prog)
        except KeyboardInterrupt:  # at any point: its first seconds of imports, a step, the summary
            print(f"\n{prog}: interrupted; run it again to go on from where it stopped", file=sys.stderr)
            return 130


def _main(a: argparse.Namespace, prog: str) -> int:
    started, shell = time.perf_counter(), dict(os.environ)  # the hints say what the shell set
    if not a.verbose:
        quiet_libraries()
    try:
        ws = demo_workspace(a) if prog == "silva-demo" else own_workspace(a)
    except (NotReady, ValueError) as e:
        for line in str(e).splitlines():
            print(f"{prog}: {line}", file=sys.stderr)
        return 2
    try:
        with workspace_lock(ws.home.root, prog):
            remember_instance(ws)
            before = ws.setup.file.read_text(encoding="utf-8") if ws.setup.file.exists() else None
            ws.setup.record()  # what the run's resources read (the demo's, from the file alone)
            chain = _run(ws, _run_config(a))
            if not chain.read_sources():  # a setup whose sources could not be read is not kept
                forget_setup(ws.setup.file, before)
    except WorkspaceBusy as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    from silva_pipeline.summary import print_summary

    print_summary(prog, ws, chain, a.verbose, time.perf_counter() - started, a.epochs, shell)
    from silva_pipeline.chain import INTERRUPTED

    if chain.failed is None:
        return 0
    return 130 if chain.failed.cause == INTERRUPTED else 1  # stopped inside a step, as between them


def _run(ws: Workspace, run_config: dict):
    import dagster as dg

    from silva_pipeline.chain import Runner, run_chain
    from silva_pipeline.definitions import build_definitions
    from silva_pipeline.summary import StepLines

    ensure_instance(ws.instance)
    job = build_definitions(ws.home).resolve_implicit_global_asset_job_def()
    with dg.DagsterInstance.from_config(str(ws.instance)) as instance:
        say = lambda line: print(f"  {line}", flush=True)  # noqa: E731
        return run_chain(Runner(job, instance, run_config, say, StepLines()))


def run_own(argv: list[str] | None = None) -> int:
    """`uv run silva-run`: `silva-demo`'s one command, on the person's own sources."""
    return main(argv, prog="silva-run")


def quiet_libraries() -> None:
    """MLflow's own lines off the console (database migrations, model validation, pip resolution,
    "Created version ..."), and its artifact progress bars: a failure still reaches the summary,
    as the step's cause."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _workspace(argv: list[str]) -> tuple[list[str], bool]:
    """`--demo` points at the demo's workspace (and its sources); the other arguments are passed on."""
    demo = "--demo" in argv
    if demo:
        use_demo_workspace()
        forget_person_settings(os.environ)
    return [a for a in argv if a != "--demo"], demo


def ui() -> None:
    """`dagster dev -m silva_pipeline.definitions` (webserver + daemon) on the workspace's
    instance, or with `--demo` the demo's. `--postgres`: on a PostgreSQL instance (pgserver) with
    an MLflow tracking server on the same PostgreSQL, in DAGSTER_HOME or else
    `.dagster_home_postgres`; both stop when the UI does. Ctrl-C or SIGTERM stops it at any point,
    and every process it started (`stopping`)."""
    raise SystemExit(until_stopped(_ui))


def _ui() -> int:
    argv, _ = _workspace(sys.argv[1:])
    dagster = str(Path(sys.executable).with_name("dagster"))
    command = [dagster, "dev", "-m", "silva_pipeline.definitions", *[a for a in argv if a != "--postgres"]]
    if "--postgres" not in argv:
        import dagster as dg

        from silva_pipeline.instance import ensure_gpu_pool

        home = silva_home()
        os.environ["SILVA_HOME"] = str(home.root)
        with dg.DagsterInstance.from_config(str(ensure_instance(dagster_home(home)))) as instance:
            ensure_gpu_pool(instance)
        return supervise(command)
    from silva_pipeline.local_services import run_on_postgres

    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home_postgres")
    return run_on_postgres(command, home)


def mlflow_ui() -> None:
    """`mlflow ui` on the workspace's tracking store (`--demo`: the demo's), on 127.0.0.1 with one
    worker (MLflow's default of several did not come up on a small machine); other arguments
    (`--port`, ...) are passed on. A tracking server (MLFLOW_TRACKING_URI) has its own UI."""
    raise SystemExit(until_stopped(_mlflow_ui))


def _mlflow_ui() -> int:
    argv, _ = _workspace(sys.argv[1:])
    from silva_pipeline.definitions import workspace_resources
    from silva_pipeline.local_services import mlflow_server_env
    from silva_pipeline.tracking.store import open_store

    uri = workspace_resources(silva_home())["mlflow"].uri()
    if uri.startswith(("http://", "https://")):
        raise SystemExit(f"silva-mlflow: runs are tracked on a server; open {uri}")
    open_store(uri)  # created or migrated here, under its lock, not by the UI's workers
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    command = [mlflow, "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--workers", "1", *argv]
    return supervise(command, mlflow_server_env())


if __name__ == "__main__":
    raise SystemExit(main())
