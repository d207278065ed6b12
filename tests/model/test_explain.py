"""Why this score: the nearest rated images, exactly, and the judge's share and shift."""

from __future__ import annotations

import copy
import json

import numpy as np
import pyarrow as pa
import pytest
import torch
from helpers import TINY_DIM, write_images

from silva_model.cli import main
from silva_model.explain import explain, nearest, neighbour_columns, read_rated
from silva_model.head import HeadConfig, OrdinalHead, predict
from silva_model.manifest import build_manifest
from silva_model.parquet import TableError, write_parquet
from silva_model.release import head_for, save_pretrained

DIM = 16


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def test_nearest_is_the_exact_cosine_top_k_nearest_first_across_blocks():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((70, DIM)).astype(np.float32)
    r = rng.standard_normal((40, DIM)).astype(np.float32)
    r *= rng.uniform(0.1, 20, (40, 1)).astype(np.float32)  # scale does not count, direction does
    idx, sim = nearest(q, r, k=5, block=16)
    cos = _cosine(q, r)
    want = np.argsort(-cos, axis=1)[:, :5]
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_allclose(sim, np.take_along_axis(cos, want, 1), atol=1e-5)
    few, few_sim = nearest(q, r[:3], k=5)
    assert few.shape == few_sim.shape == (70, 3)  # never more neighbours than rated images
    assert nearest(q, r[:0], k=5)[0].shape == (70, 0)


def test_explain_scores_as_the_head_and_names_the_ratings_of_the_neighbours():
    rng = np.random.default_rng(1)
    head = OrdinalHead(HeadConfig(embed_dim=DIM, hidden=(8,)))
    x = rng.standard_normal((30, DIM)).astype(np.float32)
    rated = rng.standard_normal((12, DIM)).astype(np.float32)
    ratings = rng.integers(1, 6, 12)
    e = explain(head, x, rated, ratings, k=4)
    np.testing.assert_array_equal(e.score, predict(head, x)[0])
    np.testing.assert_array_equal(e.ratings, ratings[e.neighbours])
    assert e.judge_share is None and e.judge_shift is None
    with pytest.raises(ValueError, match=r"rated set must be \(R, 16\)"):
        explain(head, x, rated[:, :8], ratings)


def _judged_head(weight: float) -> OrdinalHead:
    judge = HeadConfig(embed_dim=DIM, hidden=(8,)).to_dict()
    prior = {"kind": "silva", "source": "test", "revision": "", "files": {}, "config": judge}
    torch.manual_seed(0)
    head = head_for(HeadConfig(embed_dim=DIM, hidden=(8,), prior=prior)).eval()
    with torch.no_grad():
        head.judge_weight.fill_(weight)
    return head


def test_the_judge_share_and_shift_say_what_the_judge_adds():
    x = np.random.default_rng(2).standard_normal((50, DIM)).astype(np.float32)
    rated, ratings = x[:10], np.arange(10) % 5 + 1
    head = _judged_head(1.5)
    e = explain(head, x, rated, ratings, batch_size=16)
    np.testing.assert_allclose(e.score, predict(head, x)[0], atol=1e-6)
    neutral = copy.deepcopy(head)
    with torch.no_grad():
        neutral.judge_weight.zero_()  # the judge at its average opinion: the personal part alone
    np.testing.assert_allclose(e.judge_shift, 4 * (e.score - predict(neutral, x)[0]), atol=1e-5)
    assert np.abs(e.judge_shift).max() > 0.01 and ((e.judge_share > 0) & (e.judge_share < 1)).all()

    silent = explain(neutral, x, rated, ratings)
    assert np.allclose(silent.judge_share, 0) and np.allclose(silent.judge_shift, 0)
    alone = _judged_head(1.5)
    with torch.no_grad():  # the personal part sits on the middle bar: the judge alone moves it
        alone.mlp.weights[-1].zero_()
        alone.mlp.biases[-1].fill_(float(alone.thresholds().mean()))
    assert np.allclose(explain(alone, x, rated, ratings).judge_share, 1.0)


def test_neighbour_columns_are_lists_of_k_and_null_judges_without_one():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, DIM)).astype(np.float32)
    e = explain(OrdinalHead(HeadConfig(embed_dim=DIM, hidden=(8,))), x, x[:4], np.array([1, 2, 3, 5]), k=3)
    shas = pa.chunked_array([["a" * 64, "b" * 64], ["c" * 64, "d" * 64]])  # as a table column holds them
    cols = neighbour_columns(e, shas)
    assert cols["neighbours"].to_pylist()[0][0] == "a" * 64  # an image's nearest rated one is itself
    assert cols["neighbour_ratings"].to_pylist()[3] == [5, *e.ratings[3, 1:].tolist()]
    assert all(len(v) == 3 for v in cols["neighbour_similarity"].to_pylist())
    assert cols["judge_share"].null_count == 6


def test_read_rated_reads_a_manifest_and_refuses_what_is_not_one(tmp_path):
    rng = np.random.default_rng(4)
    table = build_manifest(rng.standard_normal((20, DIM)).astype(np.float32), rng.integers(1, 6, 20), dim=DIM)
    table = table.append_column("image_sha256", pa.array([f"{i:064x}" for i in range(20)]))
    rated = read_rated(write_parquet(table, tmp_path / "m.parquet"))
    assert rated.embeddings.shape == (20, DIM) and rated.ratings.dtype == np.int8
    assert rated.image_sha256[3] == f"{3:064x}" and rated.path == [None] * 20
    write_parquet(table.drop_columns(["personal_score"]), tmp_path / "bare.parquet")
    with pytest.raises(TableError, match=r"bare.parquet is not a manifest.*personal_score"):
        read_rated(tmp_path / "bare.parquet")
    bad = table.set_column(1, "personal_score", pa.array([3] * 19 + [9], pa.int64()))
    with pytest.raises(TableError, match="not a rating 1..5 at row.s. 19"):
        read_rated(write_parquet(bad, tmp_path / "bad.parquet"))


def test_silva_score_explain_names_the_nearest_rated_images_with_their_ratings(
    tiny_backbone, embedder, tmp_path, capsys
):
    images = write_images(tmp_path / "rated", 24, seed=5)
    x = embedder.embed_paths(images).embeddings  # the rated images are the very ones scored
    ratings = np.arange(24) % 5 + 1
    table = build_manifest(x, ratings, dim=TINY_DIM).append_column("path", pa.array(map(str, images)))
    manifest = write_parquet(table, tmp_path / "manifest.parquet")
    head = OrdinalHead(HeadConfig(embed_dim=TINY_DIM, hidden=(16,), backbone=str(tiny_backbone)))
    recorded = save_pretrained(head, tmp_path / "rel", extra={"data": {"manifest": str(manifest)}})
    bare = save_pretrained(head, tmp_path / "bare")
    args = ["score", *map(str, images[:3]), "--device", "cpu"]

    assert main([*args, "--head", str(recorded), "--explain", "--json"]) == 0  # data.manifest, recorded
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["neighbours"][0]["path"] for r in rows] == [str(p) for p in images[:3]]
    assert [r["neighbours"][0]["rating"] for r in rows] == [1, 2, 3]
    assert all(len(r["neighbours"]) == 5 and r["judge_share"] is None for r in rows)
    assert rows[0]["neighbours"][0]["similarity"] == pytest.approx(1.0, abs=1e-3)
    assert main([*args, "--head", str(bare), "--rated", str(manifest), "--neighbours", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 9 and lines[1] == f"  rated 1, similarity 1.000: {images[0]}", lines

    assert main([*args, "--head", str(bare), "--explain"]) == 2  # nothing says which images were rated
    assert "records no data.manifest in its config.json, so pass --rated MANIFEST" in capsys.readouterr().err
    manifest.unlink()
    assert main([*args, "--head", str(recorded), "--explain"]) == 2
    assert f"({manifest}, data.manifest in its config.json) is not on this machine" in capsys.readouterr().err
