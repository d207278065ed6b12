"""`uv run silva-demo`: materialize the whole graph on the embedded defaults and print the
evaluation. `uv run silva-ui`: `dagster dev` on the same instance. Both use a persistent
Dagster instance (SQLite under DAGSTER_HOME, by default the project-local `.dagster_home`),
so the demo's runs show up in the UI."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from silva_model.paths import PROJECT_ROOT

# SQLite storage under DAGSTER_HOME (Dagster's default). Run monitoring (the daemon, under
# `silva-ui`) marks a launched run whose process died as failed and frees its pool slots; CLI runs
# are reaped by the next run (silva_pipeline.dead_runs). Pools hold one step at a time (`gpu`:
# one GPU here).
INSTANCE_YAML = """\
telemetry:
  enabled: false
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  poll_interval_seconds: 30
  free_slots_after_run_end_seconds: 30
concurrency:
  pools:
    default_limit: 1
"""


def ensure_dagster_home() -> str:
    home = os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster_home"))
    os.makedirs(home, exist_ok=True)
    cfg = os.path.join(home, "dagster.yaml")
    if not os.path.exists(cfg):
        with open(cfg, "w", encoding="utf-8") as f:
            f.write(INSTANCE_YAML)
    return home


def main(argv: list[str] | None = None, prog: str = "silva-demo") -> int:
    """Everything, in order: ratings to release and the library's shards, each new shard
    embedded, the library scored and the rating queue chosen. `silva-demo` on the built-in demo
    set unless SILVA_* variables name other sources; `silva-run` on yours."""
    description = (
        "Materialize the whole graph on your configured sources (SILVA_SOURCE, SILVA_RATINGS, "
        "SILVA_LIBRARY_SOURCE, SILVA_LIBRARY, SILVA_BACKBONE) and print a summary."
        if prog == "silva-run"
        else __doc__.split("\n\n")[0]
    )
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--epochs", type=int, help="override the head's training epochs")
    p.add_argument("--force-release", action="store_true", help="release even if worse than the last release")
    p.add_argument("--verbose", action="store_true", help="Dagster's and MLflow's own logs as well")
    a = p.parse_args(argv)
    if prog == "silva-run" and os.environ.get("SILVA_SOURCE", "demo") == "demo":
        print(
            "silva-run: runs on your own ratings: set SILVA_SOURCE (file, folder or pictoria) and "
            "SILVA_RATINGS (see the README's 'Your own images'); `uv run silva-demo` runs the demo",
            file=sys.stderr,
        )
        return 2
    home = ensure_dagster_home()
    if not a.verbose:
        quiet_libraries()
    import dagster as dg

    from silva_model.paths import data_dir
    from silva_pipeline.assets import MODEL_ASSETS, library_shards
    from silva_pipeline.definitions import defs

    run_config: dict = {"ops": {}}
    if not a.verbose:  # one line per step from here, not Dagster's event stream
        run_config["loggers"] = {"console": {"config": {"log_level": "ERROR"}}}
    if a.epochs:
        run_config["ops"]["head"] = {"config": {"epochs": a.epochs}}
    if a.force_release:
        run_config["ops"]["evaluation_beats_last_release"] = {"config": {"force": True}}
    with dg.DagsterInstance.get() as instance:
        job = defs.resolve_implicit_global_asset_job_def()

        def run(keys: list[str], **kwargs) -> dg.ExecuteInProcessResult | None:
            result = job.execute_in_process(
                instance=instance,
                run_config=run_config,
                raise_on_error=False,
                asset_selection=[dg.AssetKey(k) for k in keys],
                **kwargs,
            )
            for e in result.get_asset_check_evaluations():
                if not e.passed:
                    print(
                        f"check {e.asset_key.to_user_string()}:{e.check_name} failed: {e.description}",
                        file=sys.stderr,
                    )
            if not result.success:
                print(
                    f"{prog}: run {result.run_id} failed; see `dagster dev` (DAGSTER_HOME={home})",
                    file=sys.stderr,
                )
                return None
            if "partition_key" not in kwargs:
                print_steps(result)
            return result

        # 1. ratings -> release, and the library's shards; 2. each new shard embedded (in the UI:
        # a backfill of `embed_library`); 3. the library scored and the rating queue chosen.
        model = run([*MODEL_ASSETS, "library"])
        if model is None:
            return 1
        done = instance.get_materialized_partitions(dg.AssetKey("library_embeddings"))
        todo = [s for s in instance.get_dynamic_partitions(library_shards.name) if s not in done]
        started = time.perf_counter()
        for shard in todo:
            if run(["library_embeddings"], partition_key=shard) is None:
                return 1
        print(f"  {'library_embeddings':<32}{time.perf_counter() - started:7.1f} s  {len(todo)} new shard(s)")
        loop = run(["library_scores", "rating_queue"])
        if loop is None:
            return 1
        ev = model.output_for_node("evaluation")
        release = model.output_for_node("hub_release")
        queue = loop.output_for_node("rating_queue")
        scores = loop.output_for_node("library_scores")
    print()
    for split, m in ev.metrics.items():
        print(f"{split}: spearman {m['spearman']:.4f}  qwk {m['qwk']:.4f}  mae {m['mae']:.4f}  (n={m['n']})")
    print(f"\nrelease: {release.path}  (MLflow registry: silva-head v{release.registry_version})")
    print(
        f"library: {scores.num_rows} images scored; rating queue: {queue.num_rows} images (uv run silva rate)"
    )
    print(f"data: {data_dir()}   Dagster runs: DAGSTER_HOME={home}   UI: uv run silva-ui")
    return 0


def run_own(argv: list[str] | None = None) -> int:
    """`uv run silva-run`: `silva-demo`'s one command, on the person's own sources."""
    return main(argv, prog="silva-run")


def quiet_libraries() -> None:
    """MLflow's INFO lines (database migrations, model validation) and its artifact progress bars
    off the console; set before MLflow is imported, which reads them then."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def print_steps(result) -> None:
    """One line per step of a finished run: its name, its time and its row count when it has one."""
    import dagster as dg

    rows = {}
    for e in result.all_events:
        if e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            meta = e.event_specific_data.materialization.metadata
            if "dagster/row_count" in meta:
                rows[e.step_key] = meta["dagster/row_count"].value
    for e in result.all_events:
        if e.event_type == dg.DagsterEventType.STEP_SUCCESS:
            count = f"  {rows[e.step_key]:,} rows" if e.step_key in rows else ""
            print(f"  {e.step_key:<32}{e.event_specific_data.duration_ms / 1000:7.1f} s{count}")


def ui() -> None:
    """`dagster dev -m silva_pipeline` (webserver + daemon) on the project-local instance.
    `--postgres`: on a PostgreSQL instance (pgserver) with an MLflow tracking server on the same
    PostgreSQL, in DAGSTER_HOME or else `.dagster_home_postgres`; both stop when the UI does."""
    argv = sys.argv[1:]
    dagster = str(Path(sys.executable).with_name("dagster"))
    command = [dagster, "dev", "-m", "silva_pipeline", *[a for a in argv if a != "--postgres"]]
    if "--postgres" not in argv:
        ensure_dagster_home()
        import dagster as dg

        from silva_pipeline.postgres import ensure_gpu_pool

        with dg.DagsterInstance.get() as instance:
            ensure_gpu_pool(instance)
        os.execv(dagster, command)
    from silva_pipeline.postgres import run_on_postgres

    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home_postgres")
    raise SystemExit(run_on_postgres(command, home))


if __name__ == "__main__":
    raise SystemExit(main())
