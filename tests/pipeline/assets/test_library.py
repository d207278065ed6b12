"""The library chain: shards, embedding once, rescoring, pictoria's library."""

from __future__ import annotations

import json
import os
import sqlite3

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import (
    ROOT,
    files_under,
    write_images,
)
from pipeline_support import (
    FAST_HEAD,
    make_pictoria_db,
    make_ratings_file,
    meta,
    resources,
    run,
)

from silva_app import home as layout
from silva_app.library_scores import SCORED_BY_KEY
from silva_app.ratings_log import RatingsLog
from silva_pipeline.assets import MODEL_ASSETS, library_shards
from silva_pipeline.embedding import assign_shards


def embed_shards(res, instance, only=None) -> dict[str, dict]:
    """Each (or each given) shard embedded in its own run, as a backfill of `embed_library` does."""
    out = {}
    for shard in only or instance.get_dynamic_partitions(library_shards.name):
        r = run(res, selection=["library_embeddings"], instance=instance, partition_key=shard)
        assert r.success
        out[shard] = meta(r, "library_embeddings")
    return out


def test_shards_keep_their_images_and_new_images_fill_new_shards():
    shas = [f"{i:064x}" for i in range(10)]
    first, keys = assign_shards(shas, {}, 4)
    assert len(keys) == 3 and sorted(set(first)) == sorted(keys)
    again, none = assign_shards(shas, dict(zip(shas, first, strict=True)), 4)
    assert again == first and none == []
    grown = shas + [f"{i:064x}" for i in range(100, 105)]
    shards, new = assign_shards(grown, dict(zip(shas, first, strict=True)), 4)
    assert shards[:10] == first and len(new) == 2 and set(shards[10:]) == set(new)


@pytest.mark.slow
def test_library_embeds_each_image_once_and_a_new_head_rescores_without_embedding(
    tiny_backbone, tmp_path, silva_home
):
    from silva_pipeline.resources import LibrarySource

    before = files_under(ROOT)  # and every file it writes lands under SILVA_HOME
    csv = make_ratings_file(tmp_path / "rated", 30)
    lib = tmp_path / "lib"
    write_images(lib, 20, seed=9)
    res = resources(tiny_backbone, kind="file", path=str(csv))
    res["library_source"] = LibrarySource(
        workspace=res["workspace"],
        kind="folder",
        path=f"{tmp_path / 'rated' / 'images'}{os.pathsep}{lib}",
        shard_size=16,
    )
    instance = dg.DagsterInstance.ephemeral()
    assert run(res, selection=[*MODEL_ASSETS, "library"], instance=instance).success
    shards = instance.get_dynamic_partitions(library_shards.name)
    assert len(shards) == 4  # 50 images, 16 a shard
    embedded = embed_shards(res, instance)
    assert sum(m["embedded"].value for m in embedded.values()) == 20  # the 30 rated came from the cache
    assert sum(m["reused_from_cache"].value for m in embedded.values()) == 30

    queue_cfg = {"ops": {**FAST_HEAD["ops"], "rating_queue": {"config": {"size": 12}}}}
    scored = run(res, selection=["library_scores", "rating_queue"], instance=instance, run_config=queue_cfg)
    assert scored.success
    scores = pq.read_table(meta(scored, "library_scores", "dagster/uri")).to_pydict()
    assert len(scores["image_sha256"]) == 50 and sum(scores["rated"]) == 30
    probs = np.array([scores[f"p{k}"] for k in range(1, 6)]).T
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(scores["expected_rating"], 1 + 4 * np.array(scores["score"]), atol=1e-5)
    assert "top 24" in meta(scored, "library_scores", "best")
    rated = {s for s, r in zip(scores["image_sha256"], scores["rated"], strict=True) if r}
    assert all(len(n) == 5 and set(n) <= rated for n in scores["neighbours"])  # why: rated neighbours
    for sha, near, sim in zip(
        scores["image_sha256"], scores["neighbours"], scores["neighbour_similarity"], strict=True
    ):
        assert sha not in rated or (near[0] == sha and sim[0] > 0.999)  # a rated image's nearest: itself
    assert scores["judge_share"] == [None] * 50  # a head without a judge
    scored_by = json.loads(
        pq.read_schema(meta(scored, "library_scores", "dagster/uri")).metadata[SCORED_BY_KEY]
    )
    assert scored_by["mlflow_run_id"] and scored_by["dagster_run_id"] == scored.run_id
    queue = pq.read_table(meta(scored, "rating_queue", "dagster/uri")).to_pydict()
    assert len(queue["kind"]) == 12 and all(queue["reason"])
    new_reasons = [r for r, k in zip(queue["reason"], queue["kind"], strict=True) if k == "new"]
    assert all("disagree about it by" in r for r in new_reasons)  # the default rule says what it measured
    assert all(sd is not None and 0 <= sd <= 2 for sd in queue["rating_sd"])  # what comparisons are chosen by
    new = [s for s, k in zip(queue["image_sha256"], queue["kind"], strict=True) if k == "new"]
    assert new and not set(new) & rated  # new images are never ones already rated

    write_images(lib / "more", 5, seed=10)  # the library grows: one new shard, embedded alone
    grown = run(res, selection=["library"], instance=instance)
    assert meta(grown, "library", "new_shards") == 1 and meta(grown, "library", "new_images") == 5
    fresh = sorted(set(instance.get_dynamic_partitions(library_shards.name)) - set(shards))
    assert len(fresh) == 1
    assert embed_shards(res, instance, fresh)[fresh[0]]["embedded"].value == 5

    n_embeds = len(instance.fetch_materializations(dg.AssetKey("library_embeddings"), limit=100).records)
    reseeded = {"ops": {"head": {"config": {**FAST_HEAD["ops"]["head"]["config"], "seed": 7}}}}
    again = run(res, selection=["head", "library_scores"], instance=instance, run_config=reseeded)
    assert again.success and meta(again, "library_scores", "scored") == 55
    assert (
        len(instance.fetch_materializations(dg.AssetKey("library_embeddings"), limit=100).records) == n_embeds
    )
    # a new shard of files that cannot be decoded (breaker, round 4): it embeds nothing, names them,
    # and the library is scored as before, instead of every later run failing on an empty shard
    (lib / "broken").mkdir()
    (lib / "broken" / "text.jpg").write_text("not an image")
    (lib / "broken" / "cut.png").write_bytes((lib / "more").glob("*.png").__next__().read_bytes()[:60])
    assert run(res, selection=["library"], instance=instance).success
    broken = sorted(set(instance.get_dynamic_partitions(library_shards.name)) - set(shards) - set(fresh))
    assert len(broken) == 1
    unreadable = embed_shards(res, instance, broken)[broken[0]]
    assert unreadable["embedded"].value == 0 and "text.jpg" in unreadable["failures"].value
    assert unreadable["failed"].value == 2 and unreadable["first_failure"].value
    after = run(res, selection=["library_scores"], instance=instance)
    assert after.success and meta(after, "library_scores", "scored") == 55

    RatingsLog.default().append("a" * 64, 4, None, None)
    home = layout.silva_home()
    assert home.root == silva_home.resolve()
    for folder in (home.asset("rating_queue"), home.embeddings, home.releases, home.mlflow_artifacts):
        assert any(folder.iterdir()), folder
    assert home.ratings_log.is_file() and home.mlflow_db.is_file()
    assert files_under(ROOT) == before  # nothing written into the project (no .data, mlruns, ...)


@pytest.mark.slow
def test_pictoria_library_and_the_opt_in_export_touch_only_silvas_rows(tiny_backbone, tmp_path, silva_home):
    db, _ = make_pictoria_db(tmp_path, 60, 60)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE post_aesthetic_scores (post_id INTEGER NOT NULL, scorer TEXT NOT NULL, "
            "score REAL NOT NULL, PRIMARY KEY (post_id, scorer), "
            "FOREIGN KEY (post_id) REFERENCES posts(id) ON DELETE CASCADE)"
        )
        conn.execute("INSERT INTO post_aesthetic_scores VALUES (1, 'other', 0.25), (2, 'silva', 9.0)")
        posts_before = conn.execute("SELECT * FROM posts ORDER BY id").fetchall()
        tables_before = conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
    res = resources(  # the library is `auto`: it follows the ratings source to the same database
        tiny_backbone,
        kind="pictoria",
        path=str(db),
        library_root=str(tmp_path / "library"),
        precomputed_backbone=str(tiny_backbone),
    )
    instance = dg.DagsterInstance.ephemeral()
    first = run(res, selection=[*MODEL_ASSETS, "library"], instance=instance)
    assert first.success
    assert meta(first, "library", "dagster/row_count") == 61  # 60 rated + 1 unrated; not the duplicate
    embedded = embed_shards(res, instance)
    assert sum(m["embedded"].value for m in embedded.values()) == 1  # only the post without a vector

    export = {"ops": {**FAST_HEAD["ops"], "library_scores": {"config": {"export_to_pictoria": True}}}}
    scored = run(res, selection=["library_scores"], instance=instance, run_config=export)
    assert scored.success and meta(scored, "library_scores", "exported_to_pictoria") == 61
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT * FROM posts ORDER BY id").fetchall() == posts_before
        assert conn.execute("SELECT score FROM post_aesthetic_scores WHERE scorer = 'other'").fetchall() == [
            (0.25,)
        ]
        silva = dict(conn.execute("SELECT post_id, score FROM post_aesthetic_scores WHERE scorer = 'silva'"))
        assert conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall() == tables_before
    assert sorted(silva) == list(range(1, 62)) and silva[2] != 9.0
    assert all(0 <= s <= 1 for s in silva.values())
