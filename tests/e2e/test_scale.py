"""PostgreSQL, an MLflow server and several workers at once."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
from helpers import (
    stop_process_group,
    write_images,
)
from pipeline_support import (
    dagster_materialize,
    dagster_process,
    make_ratings_file,
    resources,
    run,
)

from silva_model.parquet import embeddings_from_arrow
from silva_pipeline.assets import library_shards
from silva_pipeline.instance import postgres_instance, size_gpu_pool, write_instance_yaml
from silva_pipeline.local_services import start_mlflow_server, start_postgres
from silva_pipeline.resources import LibrarySource, SiglipEmbedderResource

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    pg = start_postgres(tmp_path_factory.mktemp("pg"))
    yield pg
    pg.stop()


@pytest.fixture(scope="module")
def mlflow_url(postgres, tmp_path_factory):
    proc, url = start_mlflow_server(postgres.uri("mlflow"), tmp_path_factory.mktemp("mlartifacts"))
    yield url
    stop_process_group(proc)


@pytest.fixture
def pg_home(postgres, tmp_path, monkeypatch):
    """DAGSTER_HOME on PostgreSQL, in a fresh database of its own (tests never share runs)."""
    db = f"dagster_{os.getpid()}_{time.monotonic_ns()}"
    postgres.server.psql(f"CREATE DATABASE {db};")
    home = tmp_path / "dagster-home"
    write_instance_yaml(home, postgres_instance(postgres.uri(db)))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("SILVA_HOME", str(tmp_path / "silva-home"))
    return home


def test_the_pipeline_runs_on_postgres_and_an_mlflow_server(tiny_backbone, tmp_path, pg_home, mlflow_url):
    from mlflow import MlflowClient

    from silva_pipeline.tracking import MlflowTracking

    res = resources(tiny_backbone, kind="file", path=str(make_ratings_file(tmp_path / "rated", 60)))
    res["mlflow"] = MlflowTracking(workspace=res["workspace"], tracking_uri=mlflow_url)
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        result = run(res, instance=instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id).is_success
        assert instance.get_latest_materialization_event(dg.AssetKey("hub_release")) is not None
    client = MlflowClient(mlflow_url)
    versions = client.search_model_versions("name = 'silva-head'")
    assert versions and versions[0].tags["dagster_run_id"] == result.run_id
    head_runs = client.search_runs(
        [client.get_experiment_by_name("silva").experiment_id], f"tags.dagster_run_id = '{result.run_id}'"
    )
    assert head_runs and head_runs[0].info.artifact_uri.startswith("mlflow-artifacts:")  # served by it
    assert client.list_artifacts(head_runs[0].info.run_id)


EMBEDDER = {"device": "cpu", "batch_size": 2, "flush_every": 2}


# What a worker is launched with: the tiny backbone on the CPU, shards of 12 images.
WORKER_CONFIG = {
    "resources": {"embedder": {"config": EMBEDDER}, "library_source": {"config": {"shard_size": 12}}}
}


def _library_env(tmp_path: Path, tiny_backbone: Path) -> dict[str, str]:
    """A folder library of 36 images (3 shards of 12), as the workers' environment."""
    write_images(tmp_path / "lib", 36, seed=4)
    return {
        "SILVA_LIBRARY_SOURCE": "folder",
        "SILVA_LIBRARY": str(tmp_path / "lib"),
        "SILVA_BACKBONE": str(tiny_backbone),
    }


def _resources(env: dict) -> dict:
    """The same resources in this process as the workers build from `env` and `WORKER_CONFIG`."""
    rated = {"kind": "file", "path": env["SILVA_RATINGS"]} if "SILVA_RATINGS" in env else {"kind": "demo"}
    res = resources(Path(env["SILVA_BACKBONE"]), **rated)
    library = {"kind": "folder", "path": env["SILVA_LIBRARY"]} if "SILVA_LIBRARY" in env else {}
    res["library_source"] = LibrarySource(workspace=res["workspace"], **library, shard_size=12)
    res["embedder"] = SiglipEmbedderResource(
        workspace=res["workspace"], model=env["SILVA_BACKBONE"], **EMBEDDER
    )
    return res


def _worker(env: dict, shard: str) -> subprocess.Popen:
    """One worker: a `dagster asset materialize` process embedding one shard, as a run launcher
    or a backfill starts it."""
    return dagster_materialize(env, "library_embeddings", WORKER_CONFIG, "--partition", shard)


def _embed_in_workers(env: dict, shards: list[str], workers: int) -> None:
    pending, running = list(shards), []
    while pending or running:
        while pending and len(running) < workers:
            running.append(_worker(env, pending.pop(0)))
        for p in list(running):
            if p.poll() is not None:
                out = p.stdout.read()
                assert p.returncode == 0, out[-3000:]
                running.remove(p)
        time.sleep(0.2)


def _instance(postgres, tmp_path: Path, name: str, env: dict, monkeypatch) -> dg.DagsterInstance:
    db = f"dagster_{name}_{time.monotonic_ns()}"
    postgres.server.psql(f"CREATE DATABASE {db};")
    home = write_instance_yaml(tmp_path / f"home-{name}", postgres_instance(postgres.uri(db))).parent
    env.update(DAGSTER_HOME=str(home), SILVA_HOME=str(tmp_path / f"data-{name}"))
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    monkeypatch.setenv("SILVA_HOME", env["SILVA_HOME"])
    return dg.DagsterInstance.get()


def _embeddings(instance: dg.DagsterInstance, shards: list[str]) -> tuple[dict[str, bytes], int]:
    """Every shard's stored embeddings (each shard must be written exactly once), and how many
    images the runs embedded (rather than found in the cache)."""
    out, embedded = {}, 0
    for shard in shards:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(dg.AssetKey("library_embeddings"), [shard]), limit=10
        ).records
        assert len(records) == 1, f"shard {shard} written {len(records)} times"
        meta = records[0].asset_materialization.metadata
        embedded += meta["embedded"].value
        t = pq.read_table(meta["dagster/uri"].value)
        x = embeddings_from_arrow(t.column("embedding"))
        out |= {s: x[i].tobytes() for i, s in enumerate(t.column("image_sha256").to_pylist())}
    return out, embedded


def test_two_workers_embed_what_one_does_and_each_shard_once(tiny_backbone, tmp_path, postgres, monkeypatch):
    env = {**os.environ, **_library_env(tmp_path, tiny_backbone)}
    got = {}
    for workers in (1, 2):
        with _instance(postgres, tmp_path, f"w{workers}", env, monkeypatch) as instance:
            res = _resources(env)
            assert run(res, selection=["library"], instance=instance).success
            shards = sorted(instance.get_dynamic_partitions(library_shards.name))
            assert len(shards) == 3
            if workers == 1:  # one worker: this process, shard after shard
                for shard in shards:
                    assert run(
                        res, selection=["library_embeddings"], instance=instance, partition_key=shard
                    ).success
            else:  # two worker processes at once, the gpu pool sized to them
                size_gpu_pool(instance, workers)
                _embed_in_workers(env, shards, workers)
            got[workers], embedded = _embeddings(instance, shards)
            assert embedded == 36
    assert len(got[1]) == 36 and got[1] == got[2]  # byte-identical


def test_a_worker_killed_mid_shard_loses_nothing(tiny_backbone, tmp_path, postgres, monkeypatch):
    env = {**os.environ, **_library_env(tmp_path, tiny_backbone)}
    with _instance(postgres, tmp_path, "kill", env, monkeypatch) as instance:
        res = _resources(env)
        assert run(res, selection=["library"], instance=instance).success
        shards = sorted(instance.get_dynamic_partitions(library_shards.name))
        cache = tmp_path / "data-kill" / "embeddings"
        victim = _worker(env, shards[0])
        deadline = time.monotonic() + 120
        while not list(cache.glob("*/shard-*.parquet")):  # its shard's first chunk is safe
            assert victim.poll() is None and time.monotonic() < deadline, victim.stdout.read()[-3000:]
            time.sleep(0.005)
        stop_process_group(victim)  # killed mid-shard
        flushed = sum(pq.read_metadata(p).num_rows for p in cache.glob("*/shard-*.parquet"))
        assert 0 < flushed < 12
        assert not instance.get_materialized_partitions(dg.AssetKey("library_embeddings"))
        for dead in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
            instance.report_run_failed(dead)  # what run monitoring does; it frees the gpu slot too
        for shard in shards:  # the re-run
            assert run(res, selection=["library_embeddings"], instance=instance, partition_key=shard).success
        got, embedded = _embeddings(instance, shards)
    assert len(got) == 36 and embedded == 36 - flushed  # what the killed worker finished is kept


def _rated_env(tmp_path: Path, tiny_backbone: Path) -> dict[str, str]:
    """36 rated images (3 shards of 12), as the workers' environment."""
    csv = make_ratings_file(tmp_path / "rated", 36, seed=6)
    return {"SILVA_SOURCE": "file", "SILVA_RATINGS": str(csv), "SILVA_BACKBONE": str(tiny_backbone)}


def _embed_images(env: dict, workers: int) -> subprocess.Popen:
    """`dg launch --job embed_images`: one run whose shard steps the multiprocess executor starts
    as worker processes, at most `workers` at once."""
    cfg = {**WORKER_CONFIG, "execution": {"config": {"max_concurrent": workers}}}
    return dagster_process(env, cfg, "dg", "launch", "--job", "embed_images")


def _shard_steps(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float, int]]:
    """Each `embed_shard` step of a run: (start, end, worker pid)."""
    spans: dict[str, list] = {}
    for e in instance.all_logs(run_id):
        ev = e.dagster_event
        if ev is None or ".embed_shard[" not in (ev.step_key or ""):
            continue
        if ev.event_type == dg.DagsterEventType.STEP_START:
            spans[ev.step_key] = [e.timestamp, None, ev.pid]
        elif ev.event_type == dg.DagsterEventType.STEP_SUCCESS:
            spans[ev.step_key][1] = e.timestamp
    return {k: tuple(v) for k, v in spans.items()}


def test_rated_images_embed_shard_by_shard_on_two_workers(tiny_backbone, tmp_path, postgres, monkeypatch):
    env = {**os.environ, **_rated_env(tmp_path, tiny_backbone)}
    got = {}
    for workers in (1, 2):
        with _instance(postgres, tmp_path, f"rated{workers}", env, monkeypatch) as instance:
            if workers == 1:  # one worker: this process, shard after shard
                assert run(_resources(env), ["raw_ratings", "image_embeddings"], instance=instance).success
            else:  # the executor may start 3 processes, but the gpu pool has 2 slots
                size_gpu_pool(instance, workers)
                proc = _embed_images(env, 3)
                out = proc.communicate(timeout=600)[0]
                assert proc.returncode == 0, out[-3000:]
                (run_id,) = [r.run_id for r in instance.get_runs()]
                spans = _shard_steps(instance, run_id)
                assert len(spans) == 3 and all(end is not None for _, end, _ in spans.values())
                at_once = [[b for b in spans.values() if b[0] <= a[0] < b[1]] for a in spans.values()]
                assert max(map(len, at_once)) == 2  # two workers at once, never three
                assert all(len({pid for *_, pid in group}) == len(group) for group in at_once)
            event = instance.get_latest_materialization_event(dg.AssetKey("image_embeddings"))
            mat = event.asset_materialization
            assert mat.metadata["embedded"].value == 36  # each image embedded once, by one shard
            t = pq.read_table(mat.metadata["dagster/uri"].value)
            x = embeddings_from_arrow(t.column("embedding"))
            got[workers] = {s: x[i].tobytes() for i, s in enumerate(t.column("image_sha256").to_pylist())}
    assert len(got[1]) == 36 and got[1] == got[2]  # byte-identical


def test_a_rated_images_worker_killed_mid_shard_loses_nothing(tiny_backbone, tmp_path, postgres, monkeypatch):
    env = {**os.environ, **_rated_env(tmp_path, tiny_backbone)}
    with _instance(postgres, tmp_path, "ratedkill", env, monkeypatch) as instance:
        size_gpu_pool(instance, 1)
        cache = tmp_path / "data-ratedkill" / "embeddings"
        victim = _embed_images(env, 1)
        deadline = time.monotonic() + 180
        while not list(cache.glob("*/shard-*.parquet")):  # the first shard's first chunk is safe
            assert victim.poll() is None and time.monotonic() < deadline, victim.stdout.read()[-3000:]
            time.sleep(0.005)
        stop_process_group(victim)  # the run and its worker killed mid-shard
        flushed = sum(pq.read_metadata(p).num_rows for p in cache.glob("*/shard-*.parquet"))
        assert 0 < flushed < 12
        for dead in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
            instance.report_run_failed(dead)  # what run monitoring does; it frees the gpu slot too
        result = run(_resources(env), selection=["raw_ratings", "image_embeddings"], instance=instance)
        assert result.success
        mat = result.asset_materializations_for_node("image_embeddings")[0].metadata
        planned = result.output_for_node("image_embeddings.pending_shards", "shards")
    assert mat["embedded"].value == 36 - flushed and mat["dagster/row_count"].value == 36
    assert sum(t.num_rows for t in planned.values()) == 36 - flushed  # only what was missing
