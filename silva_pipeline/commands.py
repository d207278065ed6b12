"""The pipeline's commands. `uv run silva-demo`: materialize the whole graph on the built-in demo
data, in the demo's own workspace, and print the evaluation; `uv run silva-run`: the same on the
person's own sources, in theirs; `uv run silva-ui`: `dagster dev` on a workspace's instance;
`uv run silva-mlflow`: the MLflow UI on its tracking store. Each workspace has a persistent
Dagster instance (SQLite under its DAGSTER_HOME), so the runs show up in its UI."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from silva_app.home import PROJECT_ROOT, demo_root, silva_home, use_demo_workspace
from silva_pipeline.instance import ensure_dagster_home
from silva_pipeline.release_gate import force_release


def main(argv: list[str] | None = None, prog: str = "silva-demo") -> int:
    """Everything, in order: ratings to release and the library's shards, each new shard
    embedded, the library scored and the rating queue chosen. `silva-demo` on the built-in demo
    set unless SILVA_* variables name other sources; `silva-run` on yours."""
    description = (
        "Materialize the whole graph on your configured sources (SILVA_SOURCE, SILVA_RATINGS, "
        "SILVA_LIBRARY_SOURCE, SILVA_LIBRARY, SILVA_BACKBONE) and print a summary."
        if prog == "silva-run"
        else "Materialize the whole graph on the built-in demo data and print the evaluation."
    )
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--epochs", type=int, help="override the head's training epochs")
    p.add_argument(
        "--prior", metavar="JUDGE", help="start the head from a published judge: a Hub id or a folder"
    )
    p.add_argument("--force-release", action="store_true", help="release even if worse than the last release")
    p.add_argument("--verbose", action="store_true", help="Dagster's and MLflow's own logs as well")
    if prog == "silva-demo":
        p.add_argument(
            "--reset", action="store_true", help=f"delete the demo's workspace first ({demo_root()})"
        )
    a = p.parse_args(argv)
    demo = prog == "silva-demo"
    if demo:
        if a.reset:
            shutil.rmtree(demo_root(), ignore_errors=True)
        use_demo_source()
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

    from silva_pipeline.assets import MODEL_ASSETS, library_shards
    from silva_pipeline.assets.evaluation import OUT_OF_FOLD, OUT_OF_FOLDS
    from silva_pipeline.definitions import defs

    run_config: dict = {"ops": {}}
    if not a.verbose:  # one line per step from here, not Dagster's event stream
        run_config["loggers"] = {"console": {"config": {"log_level": "ERROR"}}}
    head_config = {k: v for k, v in {"epochs": a.epochs, "prior": a.prior}.items() if v}
    if head_config:
        run_config["ops"]["head"] = {"config": head_config}
    if a.force_release:
        run_config["ops"] |= force_release()["ops"]
    if demo:  # the resources were built when the definitions loaded, from the person's SILVA_*
        run_config["resources"] = DEMO_RESOURCES
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
        trained = model.output_for_node("head")
        release = model.output_for_node("hub_release")
        queue = loop.output_for_node("rating_queue")
        scores = loop.output_for_node("library_scores")
    print()
    for split, m in ev.metrics.items():
        split = f"{OUT_OF_FOLDS}-fold out-of-fold" if split == OUT_OF_FOLD else split
        print(f"{split}: spearman {m['spearman']:.4f}  qwk {m['qwk']:.4f}  mae {m['mae']:.4f}  (n={m['n']})")
    print(f"\nrelease: {release.path}  (MLflow registry: silva-head v{release.registry_version})")
    print(f"library: {scores.num_rows} images scored; rating queue: {queue.num_rows} images")
    verdict = "enough" if trained.n_train >= USEFUL_RATINGS else "too few"
    useful = f"a useful head takes about {USEFUL_RATINGS} ({SMALL_DATA_DOC})"
    print(f"head: {trained.n_train:,} train ratings, {verdict}: {useful}")
    if trained.head.has_judge:
        print(f"judge: {trained.train_config.prior}, learned weight {trained.head.learned_judge_weight:.3f}")
    flag = " --demo" if demo else ""
    print(f"workspace: {silva_home().root} (Dagster: {home})")
    print(f"see it: uv run silva-ui{flag}   uv run silva-mlflow{flag}   uv run silva rate{flag}")
    return 0


# From the learning curve (docs/benchmarks.md): below this, the head recovers under half of what
# the taste allows; at 500 ratings it reaches about 0.8 of the oracle.
USEFUL_RATINGS = 500
SMALL_DATA_DOC = "docs/benchmarks.md#small-data"


# The demo's sources and tracking store, whatever the person's SILVA_* and MLFLOW_TRACKING_URI say.
DEMO_RESOURCES = {
    "ratings_source": {"config": {"kind": "demo", "path": "", "pairs": ""}},
    "library_source": {"config": {"kind": "auto", "path": ""}},
    "mlflow": {"config": {"tracking_uri": ""}},  # the SQLite file in the demo's data root
}


def use_demo_source() -> None:
    """The demo runs on the demo, in the demo's workspace, whatever the person's SILVA_* say."""
    use_demo_workspace()
    os.environ["SILVA_SOURCE"] = "demo"
    os.environ["SILVA_LIBRARY_SOURCE"] = "auto"
    for own in ("SILVA_RATINGS", "SILVA_LIBRARY", "SILVA_LIBRARY_ROOT", "SILVA_PAIRS"):
        os.environ.pop(own, None)


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


def _workspace(argv: list[str]) -> list[str]:
    """`--demo` points at the demo's workspace (and its sources); the other arguments are passed on."""
    if "--demo" in argv:
        use_demo_source()
    return [a for a in argv if a != "--demo"]


def ui() -> None:
    """`dagster dev -m silva_pipeline` (webserver + daemon) on the person's instance, or with
    `--demo` the demo's. `--postgres`: on a PostgreSQL instance (pgserver) with an MLflow tracking
    server on the same PostgreSQL, in DAGSTER_HOME or else `.dagster_home_postgres`; both stop
    when the UI does."""
    argv = _workspace(sys.argv[1:])
    dagster = str(Path(sys.executable).with_name("dagster"))
    command = [dagster, "dev", "-m", "silva_pipeline", *[a for a in argv if a != "--postgres"]]
    if "--postgres" not in argv:
        ensure_dagster_home()
        import dagster as dg

        from silva_pipeline.instance import ensure_gpu_pool

        with dg.DagsterInstance.get() as instance:
            ensure_gpu_pool(instance)
        os.execv(dagster, command)
    from silva_pipeline.local_services import run_on_postgres

    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home_postgres")
    raise SystemExit(run_on_postgres(command, home))


def mlflow_ui() -> None:
    """`mlflow ui` on the workspace's tracking store (`--demo`: the demo's), on 127.0.0.1 with one
    worker (MLflow's default of several did not come up on a small machine); other arguments
    (`--port`, ...) are passed on. A tracking server (MLFLOW_TRACKING_URI) has its own UI."""
    argv = _workspace(sys.argv[1:])
    from silva_pipeline.tracking import MlflowTracking

    uri = MlflowTracking().uri()
    if uri.startswith(("http://", "https://")):
        raise SystemExit(f"silva-mlflow: runs are tracked on a server; open {uri}")
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    os.execv(
        mlflow, [mlflow, "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--workers", "1", *argv]
    )


if __name__ == "__main__":
    raise SystemExit(main())
