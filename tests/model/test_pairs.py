"""Pairwise judgements: reading a pairs file and the pair losses."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from silva_model import train as train_mod
from silva_model.manifest import ManifestArrays, build_manifest, load_manifest
from silva_model.metrics import spearman
from silva_model.pairs import (
    Pairs,
    PairsError,
    clear_of,
    manifest_keys,
    pair_loss,
    rank_loss,
    ranking_pairs,
    read_pairs,
)
from silva_model.parquet import write_parquet
from silva_model.synthetic import make_taste_dataset
from silva_model.train import train
from silva_model.train_config import TrainConfig

KEYS = {
    "image_sha256": pa.array(["h0", "h1", "h2", "h3"]),
    "path": pa.array(["/photos/a.png", "/photos/b.png", "/photos/c.png", "/photos/d.png"]),
    "post_id": pa.array([10, 11, 12, 13], pa.int64()),
}


def _csv(tmp_path, text: str):
    p = tmp_path / "pairs.csv"
    p.write_text(text)
    return p


def test_pairs_name_images_by_post_id_path_or_hash(tmp_path):
    by_id = read_pairs(_csv(tmp_path, "a,b,winner\n10,11,a\n13,12,B\n11,12, tie\n"), KEYS)
    np.testing.assert_array_equal(by_id.a, [0, 3, 1])
    np.testing.assert_array_equal(by_id.b, [1, 2, 2])
    np.testing.assert_array_equal(by_id.outcome, [1, -1, 0])
    by_path = read_pairs(_csv(tmp_path, "a,b,winner\n/photos/d.png,/photos/a.png,b\n"), KEYS)
    assert (by_path.a[0], by_path.b[0], by_path.outcome[0]) == (3, 0, -1)
    pq_path = tmp_path / "pairs.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": ["h2"], "b": ["h0"], "winner": ["a"]}), pq_path)
    assert (read_pairs(pq_path, KEYS).a[0], read_pairs(pq_path, KEYS).b[0]) == (2, 0)


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b,winner\n10,11,a\n10,99,b\n", "line 3: image b=99 is not rated"),
        ("a,b,winner\n10,11,a\n10,11,maybe\n", "line 3: winner 'maybe' is not a, b or tie"),
        ("a,b,winner\n12,12,a\n", "line 2: an image is paired with itself"),
        ("a,b\n10,11\n", "missing column(s) ['winner']"),
    ],
)
def test_a_bad_pairs_row_is_named(tmp_path, text, message):
    with pytest.raises(PairsError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        read_pairs(_csv(tmp_path, text), KEYS)


def test_only_pairs_inside_the_train_split_are_kept_and_reindexed():
    p = Pairs(np.array([0, 2, 5, 7]), np.array([2, 5, 1, 9]), np.array([1, -1, 0, 1], np.float32))
    q = p.within(np.array([0, 2, 5, 9]), 10)  # rows 1 and 7 are not train
    np.testing.assert_array_equal(q.a, [0, 1])
    np.testing.assert_array_equal(q.b, [1, 2])
    np.testing.assert_array_equal(q.outcome, [1, -1])
    np.testing.assert_array_equal(q.weight, [1, 1])  # unweighted judgements count one each
    weighted = Pairs(p.a, p.b, p.outcome, weight=np.array([0.5, 1, 2, 3]))
    np.testing.assert_array_equal(weighted.within(np.array([0, 2, 5, 9]), 10).weight, [0.5, 1])
    np.testing.assert_array_equal(weighted.plus(p, 10).weight, [0.5, 1, 2, 3, 1, 1, 1, 1])


def test_extra_images_follow_the_train_rows_and_drop_with_their_pairs():
    """Indices from N on name extras (judged images no rating has): they stay after the train rows
    whatever the split, and dropping an extra drops exactly the pairs that name it."""
    extra = np.arange(9, dtype=np.float32).reshape(3, 3)
    p = Pairs(
        np.array([0, 4, 5, 6, 1]), np.array([4, 6, 2, 5, 6]), np.array([1, -1, 0, 1, 1], np.float32), extra
    )
    q = p.within(np.array([0, 2]), 4)  # 4 manifest rows, rows 1 and 3 not train; extras 4, 5, 6
    np.testing.assert_array_equal(q.a, [0, 2, 3, 4])
    np.testing.assert_array_equal(q.b, [2, 4, 1, 3])
    kept = p.keep_extras(np.array([True, False, True]), 4)  # extra 5 goes
    np.testing.assert_array_equal(kept.a, [0, 4, 1])
    np.testing.assert_array_equal(kept.b, [4, 5, 5])
    assert kept.weight.dtype == np.float32 and len(kept.weight) == 3
    np.testing.assert_array_equal(kept.extra, extra[[0, 2]])
    assert p.keep_extras(np.zeros(3, bool), 4).extra is None
    both = kept.plus(p, 4)  # the second set's extras come after the first's
    np.testing.assert_array_equal(both.a[3:], [0, 6, 7, 8, 1])
    np.testing.assert_array_equal(both.extra, np.concatenate([extra[[0, 2]], extra]))


def test_an_extra_that_copies_a_held_out_image_is_not_clear_whatever_its_norm():
    rng = np.random.default_rng(0)
    held_out = rng.standard_normal((50, 16)).astype(np.float32)
    extra = np.concatenate([15 * held_out[:1] / np.linalg.norm(held_out[0]), rng.standard_normal((3, 16))])
    np.testing.assert_array_equal(
        clear_of(extra.astype(np.float32), held_out, 0.98), [False, True, True, True]
    )


def test_a_ranking_orders_every_pair_and_counts_as_one_judgement_less_than_its_size():
    pairs = ranking_pairs(["best", "mid", "low", "worst"])
    assert [(a, b) for a, b, _ in pairs] == [
        ("best", "mid"),
        ("best", "low"),
        ("best", "worst"),
        ("mid", "low"),
        ("mid", "worst"),
        ("low", "worst"),
    ]
    assert sum(w for *_, w in pairs) == pytest.approx(3)  # n - 1
    assert ranking_pairs(["a", "b"]) == [("a", "b", 1.0)]  # a ranked pair is one plain judgement
    assert ranking_pairs([]) == [] and ranking_pairs(["alone"]) == []  # skipped: nothing to learn


def test_pair_loss_prefers_the_winner_and_pulls_ties_together():
    d = torch.linspace(-3, 3, 7)
    win = pair_loss(d, torch.zeros(7), torch.ones(7).reshape(1, -1)[0])
    assert all(torch.diff(torch.stack([pair_loss(x, torch.zeros(()), torch.ones(())) for x in d])) < 0)
    ties = torch.stack([pair_loss(x, torch.zeros(()), torch.zeros(())) for x in d])
    assert int(ties.argmin()) == 3 and torch.allclose(ties, ties.flip(0))
    assert win.ndim == 0
    half = torch.full((7,), 0.5)
    assert torch.allclose(pair_loss(d, torch.zeros(7), torch.ones(7), half), win / 2)  # weighted


def test_judgements_teach_the_head_where_ratings_are_noisy():
    """Very noisy ratings plus clean judgements from the same taste beat the ratings alone (Spearman
    with the planted taste on test); judgements that touch a val or test image never reach training."""
    d = make_taste_dataset(1200, seed=4, noise=3.0)
    manifest = build_manifest(d.embeddings, d.ratings)
    arrays = load_manifest(manifest)
    rng = np.random.default_rng(0)
    a, b = rng.choice(np.flatnonzero(arrays.mask("train")), (2, 4000))
    a, b = a[a != b], b[a != b]
    pairs = Pairs(a, b, np.sign(d.taste[a] - d.taste[b]).astype(np.float32))
    cfg = TrainConfig(epochs=15, batch_size=128, hidden=(64,), seed=0, device="cpu", calibrate=False)
    test = arrays.mask("test")

    def taste_spearman(p: Pairs | None) -> float:
        head = train(arrays, cfg, progress=False, pairs=p).head
        return spearman(
            d.taste[test], head.latent(torch.from_numpy(arrays.embeddings[test])).detach().numpy()
        )

    alone, with_pairs = taste_spearman(None), taste_spearman(pairs)
    assert with_pairs > alone + 0.1, (alone, with_pairs)
    # judgements between images that no rating has (only their embeddings) teach too
    train_rows = np.flatnonzero(arrays.mask("train"))
    judged, rated = train_rows[:400], train_rows[400:]
    ja, jb = rng.choice(judged, (2, 3000))
    ja, jb = ja[ja != jb], jb[ja != jb]
    keep = np.sort(np.concatenate([rated, np.flatnonzero(~arrays.mask("train"))]))
    few = ManifestArrays(
        np.ascontiguousarray(arrays.embeddings[keep]), arrays.scores[keep], arrays.split_codes[keep]
    )
    where = np.searchsorted(judged, np.stack([ja, jb]))  # judged is sorted
    unrated = Pairs(
        len(few) + where[0],
        len(few) + where[1],
        np.sign(d.taste[ja] - d.taste[jb]).astype(np.float32),
        arrays.embeddings[judged],
    )

    def few_spearman(p: Pairs | None) -> float:
        head = train(few, cfg, progress=False, pairs=p).head
        t = few.mask("test")
        return spearman(d.taste[keep][t], head.latent(torch.from_numpy(few.embeddings[t])).detach().numpy())

    assert few_spearman(unrated) > few_spearman(None) + 0.05
    outside = np.flatnonzero(~arrays.mask("train"))[:2]
    with pytest.warns(UserWarning, match="none of the 1 pairs"):
        only_outside = Pairs(outside[:1], outside[1:], np.ones(1, np.float32))
        train(arrays, TrainConfig(epochs=1, hidden=(8,), device="cpu"), progress=False, pairs=only_outside)


def test_train_cli_reads_pairs_and_names_a_bad_row(tmp_path, capsys):
    d = make_taste_dataset(300, seed=1)
    table = build_manifest(d.embeddings, d.ratings, post_id=np.arange(300) + 1000)
    m = write_parquet(table, tmp_path / "m.parquet")
    assert set(manifest_keys(m)) == {"post_id"}
    train_ids = 1000 + np.flatnonzero(load_manifest(m).mask("train"))
    good = _csv(
        tmp_path,
        "a,b,winner\n"
        + "".join(f"{x},{y},a\n" for x, y in zip(train_ids[:20], train_ids[20:40], strict=True)),
    )
    out = tmp_path / "run"
    args = ["--manifest", str(m), "--out", str(out), "--epochs", "1", "--device", "cpu", "--quiet"]
    assert train_mod.main([*args, "--pairs", str(good)]) == 0
    assert (out / "best.safetensors").is_file()
    bad = _csv(tmp_path, "a,b,winner\n1000,1001,a\n1000,77,a\n")
    assert train_mod.main([*args, "--pairs", str(bad)]) == 2
    assert "line 3: image b=77 is not rated (post_id)" in capsys.readouterr().err


def test_rank_loss_rewards_the_ratings_order_only():
    y = torch.tensor([1, 2, 3, 3, 5])
    ordered = torch.tensor([[0.0, 1.0, 2.0, 2.5, 4.0]])
    assert rank_loss(ordered, y) < rank_loss(-ordered, y)
    # equal ratings are no pair: swapping the two 3s changes nothing
    swapped = ordered[:, [0, 1, 3, 2, 4]]
    torch.testing.assert_close(rank_loss(ordered, y), rank_loss(swapped, y))


def test_an_ensemble_head_trains_and_round_trips_through_a_release(tmp_path):
    from silva_model import Scorer

    d = make_taste_dataset(600, seed=2)
    arrays = load_manifest(build_manifest(d.embeddings, d.ratings))
    cfg = TrainConfig(
        epochs=3, batch_size=64, hidden=(32,), members=3, rank_weight=0.5, model="mlp", device="cpu"
    )
    head = train(arrays, cfg, progress=False).head
    assert head.config.members == 3 and head.mlp.weights[0].shape == (3, 1152, 32)
    release = Scorer(head, device="cpu").save_pretrained(tmp_path / "r")
    x = arrays.subset("test")[0]
    np.testing.assert_allclose(
        Scorer.from_pretrained(release, device="cpu").score_embeddings(x),
        Scorer(head, device="cpu").score_embeddings(x),
        rtol=1e-6,
        atol=1e-6,
    )
