"""Helpers for the pipeline tests: rated image sets, a pictoria-shaped database, resources."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import numpy as np
from helpers import ROOT, TINY_DIM, write_images

from silva_pipeline.release_gate import force_release

PICTORIA_POSTS_DDL = """
CREATE TABLE posts (
    id INTEGER PRIMARY KEY, file_path TEXT NOT NULL DEFAULT '', file_name TEXT NOT NULL DEFAULT '',
    extension TEXT NOT NULL DEFAULT '', full_path TEXT NOT NULL DEFAULT '', width INTEGER, height INTEGER,
    aspect_ratio REAL, published_at TEXT, score INTEGER NOT NULL DEFAULT 0, rating INTEGER NOT NULL DEFAULT 0,
    description TEXT NOT NULL DEFAULT '', meta TEXT NOT NULL DEFAULT '', sha256 TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL DEFAULT 0, source TEXT NOT NULL DEFAULT '', caption TEXT NOT NULL DEFAULT '',
    dominant_color BLOB, arthash TEXT, canonical_post_id INTEGER REFERENCES posts(id),
    created_at TEXT NOT NULL DEFAULT '2026-01-01T00:00:00',
    updated_at TEXT NOT NULL DEFAULT '2026-01-01T00:00:00'
)"""


# pictoria's annotation tables as its migrations 0011, 0014 and 0016 leave them
PICTORIA_ANNOTATIONS_DDL = """
CREATE TABLE absolute_annotations (
    id INTEGER PRIMARY KEY, created_at TEXT NOT NULL DEFAULT (datetime('now')), post_id INTEGER NOT NULL,
    dimension TEXT NOT NULL, scale INTEGER NOT NULL CHECK (scale IN (2, 3, 5)), value INTEGER NOT NULL,
    rubric_version TEXT NOT NULL, session_id TEXT NOT NULL, elapsed_ms INTEGER, edited_at TEXT
);
CREATE TABLE pairwise_annotations (
    id INTEGER PRIMARY KEY, created_at TEXT NOT NULL DEFAULT (datetime('now')), post_a INTEGER NOT NULL,
    post_b INTEGER NOT NULL CHECK (post_b != post_a), dimension TEXT NOT NULL,
    winner TEXT NOT NULL CHECK (winner IN ('a', 'b', 'tie', 'skip')), rubric_version TEXT NOT NULL,
    session_id TEXT NOT NULL, elapsed_ms INTEGER, edited_at TEXT
);
CREATE TABLE content_flag_events (
    id INTEGER PRIMARY KEY, created_at TEXT NOT NULL DEFAULT (datetime('now')), post_id INTEGER NOT NULL,
    flag TEXT NOT NULL CHECK (flag IN ('love', 'hate', 'none')), session_id TEXT NOT NULL
);
CREATE TABLE listwise_annotations (
    id INTEGER PRIMARY KEY, created_at TEXT NOT NULL DEFAULT (datetime('now')), post_ids TEXT NOT NULL,
    ranking TEXT NOT NULL, dimension TEXT NOT NULL, rubric_version TEXT NOT NULL, session_id TEXT NOT NULL,
    elapsed_ms INTEGER, edited_at TEXT
);
"""


def annotate(db: Path, table: str, **row) -> None:
    """One annotation event as pictoria's app writes it (rubric and session filled in)."""
    import sqlite3

    if table != "content_flag_events":
        row.setdefault("rubric_version", "v1")
    row.setdefault("session_id", "s1")
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(
            f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values())
        )


def add_unrated_posts(db: Path, ids: list[int], vectors: np.ndarray | None) -> None:
    """Posts pictoria knows but nobody rated (no file needed), with vectors where given."""
    import apsw
    import sqlite_vec

    conn = apsw.Connection(str(db))
    conn.enable_load_extension(True)
    conn.load_extension(sqlite_vec.loadable_path())
    for i, post in enumerate(ids):
        conn.execute(
            "INSERT INTO posts (id, full_path, score) VALUES (?, ?, 0)", (post, f"unrated/{post}.png")
        )
        if vectors is not None:
            conn.execute(
                "INSERT INTO post_vectors_siglip2 (post_id, embedding) VALUES (?, ?)",
                (post, sqlite_vec.serialize_float32(vectors[i].tolist())),
            )
    conn.close()


def rated_images(folder: Path, n: int, seed: int = 0) -> tuple[list[Path], list[int]]:
    paths = write_images(folder, n, seed=seed)
    ratings = [1 + (i * 7 + seed) % 5 for i in range(n)]
    return paths, ratings


def write_ratings_csv(csv: Path, rows: list[tuple[str, object]]) -> Path:
    lines = ["image,rating"] + [f"{img},{r}" for img, r in rows]
    csv.write_text("\n".join(lines) + "\n")
    return csv


def make_ratings_file(root: Path, n: int, seed: int = 0) -> Path:
    paths, ratings = rated_images(root / "images", n, seed)
    return write_ratings_csv(
        root / "ratings.csv", [(p.relative_to(root), r) for p, r in zip(paths, ratings, strict=True)]
    )


def append_ratings(csv: Path, n: int, seed: int) -> None:
    root = csv.parent
    paths, ratings = rated_images(root / "images", n, seed)
    with csv.open("a") as f:
        for p, r in zip(paths, ratings, strict=True):
            f.write(f"{p.relative_to(root)},{r}\n")


def make_pictoria_db(
    root: Path, n: int, n_with_vectors: int, annotations: bool = False
) -> tuple[Path, np.ndarray]:
    """A library in pictoria's schema: rated posts, unrated posts (score 0), a duplicate post
    (canonical_post_id set), SigLIP2 vectors in a real sqlite-vec vec0 table, and, with
    `annotations`, the (empty) annotation tables."""
    import apsw
    import sqlite_vec

    lib = root / "library"
    paths, ratings = rated_images(lib / "art", n, seed=5)
    extra = write_images(lib / "unrated", 2, seed=6)
    db = root / "pictoria.db"
    conn = apsw.Connection(str(db))  # the stdlib sqlite3 may not load extensions; apsw always can
    conn.enable_load_extension(True)
    conn.load_extension(sqlite_vec.loadable_path())
    conn.execute(PICTORIA_POSTS_DDL)
    if annotations:
        conn.execute(PICTORIA_ANNOTATIONS_DDL)
    conn.execute(
        f"CREATE VIRTUAL TABLE post_vectors_siglip2 USING vec0(post_id INTEGER PRIMARY KEY, "
        f"embedding float[{TINY_DIM}])"
    )
    for i, (p, r) in enumerate(zip(paths, ratings, strict=True), 1):
        conn.execute(
            "INSERT INTO posts (id, file_path, file_name, extension, full_path, score, rating) "
            "VALUES (?, ?, ?, ?, ?, ?, 3)",
            (i, p.parent.name, p.stem, p.suffix[1:], str(p.relative_to(lib)), r),
        )
    conn.execute(
        "INSERT INTO posts (id, full_path, score) VALUES (?, ?, 0)", (n + 1, str(extra[0].relative_to(lib)))
    )
    shutil.copy(paths[0], lib / "art" / "dup.jpg")
    conn.execute(
        "INSERT INTO posts (id, full_path, score, canonical_post_id) VALUES (?, 'art/dup.jpg', 2, 1)",
        (n + 2,),
    )
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((n_with_vectors, TINY_DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    for i in range(n_with_vectors):
        conn.execute(
            "INSERT INTO post_vectors_siglip2 (post_id, embedding) VALUES (?, ?)",
            (i + 1, sqlite_vec.serialize_float32(vecs[i].tolist())),
        )
    conn.close()
    return db, vecs


def workspace():
    """The test's workspace (its SILVA_HOME) as the resources hold it."""
    from silva_app.home import silva_home
    from silva_pipeline.resources import Workspace

    return Workspace(root=str(silva_home().root))


def resources(tiny_backbone: Path, **source) -> dict:
    """The workspace's resources (as `silva_pipeline.definitions` builds them), with the ratings
    source given here and the tiny backbone."""
    from silva_app.home import silva_home
    from silva_pipeline.definitions import workspace_resources
    from silva_pipeline.resources import RatingsSource, SiglipEmbedderResource

    res = workspace_resources(silva_home())
    ws = res["workspace"]
    res["ratings_source"] = RatingsSource(workspace=ws, **source)
    res["embedder"] = SiglipEmbedderResource(
        workspace=ws, model=str(tiny_backbone), device="cpu", batch_size=4, decode_workers=2, flush_every=4
    )
    return res


def pictoria_resources(tiny_backbone: Path, db: Path) -> dict:
    """The resources for a pictoria database made by `make_pictoria_db` (its library beside it)."""
    return resources(
        tiny_backbone,
        kind="pictoria",
        path=str(db),
        library_root=str(db.parent / "library"),
        precomputed_backbone=str(tiny_backbone),
    )


FAST_HEAD = {"ops": {"head": {"config": {"epochs": 3, "hidden": [32], "batch_size": 32, "device": "cpu"}}}}
# FAST_HEAD, releasing whatever the gate finds
FORCE = {"ops": {**FAST_HEAD["ops"], **force_release()["ops"]}}


def run(res, selection=None, run_config=FAST_HEAD, instance=None, **kwargs):
    """Materialize in-process (by default the model's chain, ratings to release); op config is
    kept only for the selected assets (and their checks)."""
    import dagster as dg

    from silva_pipeline.assets import ASSET_CHECKS, ASSETS, MODEL_ASSETS

    selection = MODEL_ASSETS if selection is None else selection
    ops = {k: v for k, v in run_config.get("ops", {}).items() if any(k.startswith(s) for s in selection)}
    run_config = {**run_config, "ops": ops}
    return dg.materialize(
        ASSETS + ASSET_CHECKS,
        resources=res,
        selection=selection,
        run_config=run_config,
        raise_on_error=False,
        instance=instance or dg.DagsterInstance.ephemeral(),
        **kwargs,
    )


def dagster_materialize(
    env: dict, select: str, config: dict, *extra: str, log: Path | None = None
) -> subprocess.Popen:
    """`dagster asset materialize -m silva_pipeline.definitions` as a user (or a worker) runs it."""
    return dagster_process(
        env, config, "dagster", "asset", "materialize", "--select", select, *extra, log=log
    )


def dagster_process(
    env: dict, config: dict, program: str, *args: str, log: Path | None = None
) -> subprocess.Popen:
    """`<program> <args> -m silva_pipeline.definitions --config-json <config>` (program: `dagster` or `dg`)
    from this venv, in its own process group; output on stdout, or in the file `log` (for a run
    nobody reads until it ends, whose output would fill a pipe and stall it)."""
    return subprocess.Popen(
        [str(Path(sys.executable).with_name(program)), *args, "-m", "silva_pipeline.definitions"]
        + ["--config-json", json.dumps(config)],
        cwd=ROOT,
        env=env,
        stdout=log.open("w") if log else subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def meta(result, node, key=None, partition=None):
    mats = result.asset_materializations_for_node(node)
    m = next(x for x in mats if partition is None or x.partition == partition).metadata
    return m if key is None else m[key].value


def checks(result):
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def failure_message(result) -> str:
    """The errors of every failed step or resource, as a person reads them in the run log."""
    errors = (getattr(e.event_specific_data, "error", None) for e in result.all_events)
    return " ".join(str(err) for err in errors if err is not None)


def registry(silva_home: Path):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{silva_home / 'mlflow.db'}")
    return mlflow.MlflowClient()


def champion(silva_home: Path) -> str:
    return str(registry(silva_home).get_model_version_by_alias("silva-head", "champion").version)


def held_by(instance, process: str) -> str:
    """A started run of `process` (a `dead_runs.this_process()` string) that holds the `gpu`
    pool's one slot."""
    import dagster as dg

    from silva_pipeline.dead_runs import PROCESS_TAG

    run = instance.create_run_for_job(dg.GraphDefinition("held").to_job(), tags={PROCESS_TAG: process})
    instance.handle_run_event(run.run_id, dg.DagsterEvent("PIPELINE_START", "held"))
    instance.event_log_storage.set_concurrency_slots("gpu", 1)
    instance.event_log_storage.claim_concurrency_slot("gpu", run.run_id, "embed")
    return run.run_id
