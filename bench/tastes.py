"""The family of tastes every quality benchmark measures on, and the people and judges drawn
from them (bench judges, judge_blend and active share them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from silva_model.manifest import ManifestArrays, build_manifest, to_arrays
from silva_model.release import save_pretrained
from silva_model.synthetic import (
    DEFAULT_MIX,
    TasteData,
    _combine,
    _make_world,
    _taste_parts,
    make_taste_dataset,
)
from silva_model.train import train
from silva_model.train_config import TrainConfig

# The family of tastes silva must win on: rater noise 0.3-1.0, 8-24 style clusters, latent rank
# 16-64, a non-linear share of 0-50 %, styles that tilt the taste or only shift it, and balanced or
# skewed rating mixes, each in its own world.
TASTES: dict[str, dict] = {
    "default": {},
    "noisy, many styles, linear": dict(
        noise=0.8, n_clusters=24, rank=64, weights=(0.7, 0.3, 0.0), world_seed=11
    ),
    "clean, few styles, non-linear": dict(
        noise=0.3, n_clusters=8, rank=16, weights=(0.3, 0.2, 0.5), world_seed=12
    ),
    "skewed high (2/8/40/35/15)": dict(mix=(0.02, 0.08, 0.40, 0.35, 0.15), noise=0.6, world_seed=13),
    "skewed low (20/30/30/15/5)": dict(mix=(0.20, 0.30, 0.30, 0.15, 0.05), n_clusters=16, world_seed=14),
    "cluster-driven": dict(weights=(0.2, 0.6, 0.2), n_clusters=20, rank=24, noise=0.5, world_seed=15),
    # Tastes a linear model of the embedding can hold whole (no non-linear part, styles as biases):
    # where a convex linear ordinal model is hard to beat at a few hundred ratings.
    "linear, clean": dict(weights=(1.0, 0.0, 0.0), noise=0.4, rank=48, world_seed=16),
    "linear, style biases": dict(weights=(0.6, 0.4, 0.0), slope=0.0, n_clusters=16, noise=0.6, world_seed=17),
    "linear, very noisy": dict(weights=(0.8, 0.2, 0.0), slope=0.0, noise=1.0, world_seed=18),
}

# The people of the judge benchmarks: their largest training set, then FRESH test images.
SIZES = (100, 250, 500, 1000, 3000)
FRESH = 4000


def standard(v: np.ndarray) -> np.ndarray:
    return (v - v.mean()) / v.std()


def person(taste: dict, seed: int, largest: int) -> TasteData:
    """One person of the bench: `largest` ratings to train on, then FRESH test images."""
    return make_taste_dataset(largest + FRESH, seed=seed, **taste)


def first_ratings(d: TasteData, n: int) -> ManifestArrays:
    """The person's first n ratings as training arrays."""
    return to_arrays(build_manifest(d.embeddings[:n], d.ratings[:n], copy_rule=None))


def other_taste(d: TasteData, taste: dict, world_seed: int) -> np.ndarray:
    """An independent taste of the same family over the same images: another world's taste
    function (its directions, style biases and slopes, non-linear part) of each image's style
    and latent. Needs the same number of styles and latent rank as the person's world."""
    kw = {k: taste[k] for k in ("weights", "noise", "mix", "n_clusters", "rank", "slope") if k in taste}
    defaults = dict(weights=(0.5, 0.3, 0.2), noise=0.5, mix=DEFAULT_MIX, n_clusters=12, rank=32)
    world = _make_world(d.embeddings.shape[1], world_seed, **{**defaults, **kw})
    return _combine(world, _taste_parts(world, d.style, d.latent), kw.get("weights", defaults["weights"]))


def judge_ratings(d: TasteData, taste: dict, rho: float, seed: int) -> np.ndarray:
    """The second rater's 1-5 ratings: its taste (correlated rho with the person's on these images:
    the other taste's chance correlation is taken out first) plus the taste's rater noise, cut into
    the taste's rating mix."""
    t, o = standard(d.taste), standard(other_taste(d, taste, 10_000 + seed))
    o = standard(o - np.mean(o * t) * t)
    mixed = rho * t + np.sqrt(1 - rho**2) * o
    noisy = mixed + taste.get("noise", 0.5) * np.random.default_rng(seed).standard_normal(len(mixed))
    cuts = np.quantile(noisy, np.cumsum(taste.get("mix", DEFAULT_MIX))[:-1])
    return (1 + np.searchsorted(cuts, noisy)).astype(np.int64)


def publish_judge(taste: dict, rho: float, n: int, cfg: TrainConfig, folder: Path) -> Path:
    """A judge as a published head would be: silva's default on n of the second rater's ratings
    of images the person never rates (their own sample of the taste's world)."""
    d = make_taste_dataset(n, seed=500, **taste)
    y = judge_ratings(d, taste, rho, seed=int(rho * 10))
    arrays = to_arrays(build_manifest(d.embeddings, y, copy_rule=None))
    return save_pretrained(train(arrays, cfg, progress=False).head, folder)
