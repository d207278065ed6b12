"""Choosing what to rate: out-of-fold heads, re-rate candidates, diverse batches."""

from __future__ import annotations

import numpy as np

from silva_model import active
from silva_model.synthetic import make_taste_dataset


def test_out_of_fold_predictions_never_see_their_own_rows():
    """On ratings that are pure noise a head fitted to all rows agrees with them in-sample; out of
    fold, nothing is left to agree with."""
    from silva_model.manifest import build_manifest, to_arrays
    from silva_model.metrics import spearman
    from silva_model.train import train
    from silva_model.train_config import TrainConfig

    d = make_taste_dataset(600, dim=64, seed=3)
    noise = np.random.default_rng(0).integers(1, 6, 600)
    arrays = to_arrays(build_manifest(d.embeddings, noise, dim=64), dim=64)
    cfg = TrainConfig(
        epochs=30, hidden=(128,), batch_size=64, device="cpu", weight_decay=0.0, lr=3e-3, model="mlp"
    )
    oof = active.out_of_fold(arrays, cfg, folds=5)
    fitted = train(arrays, cfg, progress=False).head
    in_sample = active.expected_from_probs(active.class_probabilities(fitted, arrays.embeddings))
    train_rows = arrays.mask("train")
    assert spearman(noise[train_rows], in_sample[train_rows]) > 0.3
    assert abs(spearman(noise, oof.expected)) < 0.12


def test_rerate_list_finds_planted_mistakes_and_diverse_batches_avoid_copies():
    d = make_taste_dataset(3000, seed=1)
    from silva_model.manifest import build_manifest, to_arrays
    from silva_model.train_config import TrainConfig

    given = d.ratings.copy()
    rng = np.random.default_rng(0)
    planted = rng.choice(3000, 150, replace=False)
    given[planted] = np.where(given[planted] <= 3, given[planted] + 2, given[planted] - 2)
    arrays = to_arrays(build_manifest(d.embeddings, given))
    oof = active.out_of_fold(arrays, TrainConfig(epochs=8, device="cpu"), folds=5)
    listed = active.rerate_candidates(arrays.scores, oof.expected, 1.5)
    hits = np.isin(listed, planted)  # the manifest keeps the rows' order
    assert len(listed) and hits.mean() > 4 * 0.05  # four times better than picking at random

    x = np.concatenate([np.repeat(d.embeddings[:1], 30, axis=0), d.embeddings[1:200]])
    probs = np.full((len(x), 5), 0.2)
    probs[30:] = [0.1, 0.2, 0.4, 0.2, 0.1]  # the 30 copies are the most uncertain
    assert set(active.select_new("entropy", 10, probs, x)) <= set(range(30))
    assert len(set(active.select_new("entropy-diverse", 10, probs, x)) & set(range(30))) == 1


def test_the_first_batch_from_zero_covers_more_styles_than_a_random_one():
    """With nothing rated there is no head to be unsure: the first batch is spread over the
    library, so a rare style is in it more often than chance puts it there."""
    d = make_taste_dataset(4000, seed=1, n_clusters=24)
    first = active.first_batch(d.embeddings, 40, seed=0)
    assert len(np.unique(first)) == 40
    random = np.random.default_rng(0).choice(4000, 40, replace=False)
    assert len(np.unique(d.style[first])) > len(np.unique(d.style[random]))


def test_library_scoring_searches_the_rated_images_once_for_distance_and_why():
    """The out-of-domain distance and the explanation come from one search; each is what its own
    exact search gives (the rated set's own distances leave each image out)."""
    import torch

    from silva_model.explain import explain
    from silva_model.head import HeadConfig, OrdinalHead, predict

    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    head = OrdinalHead(HeadConfig(embed_dim=16, hidden=(8,)))
    x = rng.standard_normal((50, 16)).astype(np.float32)
    rated = rng.standard_normal((30, 16)).astype(np.float32)
    ratings = rng.integers(1, 6, 30)
    scored = active.score_library(head, x, rated, ratings, neighbours=7)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    cos, own = unit(x) @ unit(rated).T, unit(rated) @ unit(rated).T
    np.fill_diagonal(own, -np.inf)
    np.testing.assert_allclose(scored.ood_distance, (1 - np.sort(cos, 1)[:, -7:]).mean(1), atol=1e-5)
    own_distance = active.knn_distance(rated, rated, 7, leave_one_out=True)
    np.testing.assert_allclose(own_distance, (1 - np.sort(own, 1)[:, -7:]).mean(1), atol=1e-5)
    alone = explain(head, x, rated, ratings)
    np.testing.assert_array_equal(scored.why.neighbours, alone.neighbours)
    np.testing.assert_array_equal(scored.why.ratings, alone.ratings)
    np.testing.assert_array_equal(scored.score, predict(head, x)[0])
    assert active.score_library(head, x, rated).why is None


def test_copies_share_an_out_of_fold_fold_so_no_fold_head_trains_on_a_copy_it_scores():
    """Breaker's finding: folds by content hash put near-copies in different folds, so the fold
    head scoring an image had learned its copy; the release gate and the small-data evaluation
    read those scores as out of fold."""
    from silva_model.manifest import build_manifest, copy_groups_of, to_arrays
    from silva_model.metrics import spearman
    from silva_model.train_config import TrainConfig

    rng = np.random.default_rng(0)
    base = make_taste_dataset(200, dim=64, seed=3).embeddings
    x = np.concatenate([base, base + 1e-3 * rng.standard_normal(base.shape).astype(np.float32)])
    noise = np.tile(rng.integers(1, 6, 200), 2)  # each copy rated as its original: nothing to learn
    table = build_manifest(x, noise, dim=64)
    arrays, groups = to_arrays(table, dim=64), copy_groups_of(table, to_arrays(table, dim=64))
    folds = active.fold_of(arrays.content_hashes(), 5, groups)
    assert all(len(set(folds[groups == g])) == 1 for g in np.unique(groups))
    assert np.array_equal(active.fold_of(arrays.content_hashes(), 5), arrays.content_hashes() % 5)
    cfg = TrainConfig(
        epochs=30, hidden=(128,), batch_size=64, device="cpu", weight_decay=0.0, lr=3e-3, model="mlp"
    )
    leaky = active.out_of_fold(arrays, cfg, folds=5)
    oof = active.out_of_fold(arrays, cfg, folds=5, groups=groups)
    assert spearman(noise, leaky.expected) > 0.2  # a copy's twin in the fold head's training (0.30)
    assert abs(spearman(noise, oof.expected)) < 0.1  # (-0.01)


def test_a_fold_without_a_rating_says_nothing_the_full_training_did_not():
    """Walker's finding: `silva-run` printed a raw "train split has no examples of rating(s) [1]"
    (with a source line) though the train split held 35 of them: a fold head's training rows
    lacked them. The fold heads keep quiet; the full training warns when its split lacks one."""
    import warnings

    from silva_model.manifest import build_manifest, to_arrays
    from silva_model.train_config import TrainConfig

    d = make_taste_dataset(120, dim=32, seed=1)
    ratings = np.where(np.arange(120) == 0, 1, 2 + np.arange(120) % 4)  # one image rated 1
    arrays = to_arrays(build_manifest(d.embeddings, ratings, dim=32), dim=32)
    cfg = TrainConfig(epochs=2, hidden=(16,), device="cpu", model="mlp")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        active.out_of_fold(arrays, cfg, folds=3)
    assert not [w for w in caught if "has no examples of rating" in str(w.message)]
