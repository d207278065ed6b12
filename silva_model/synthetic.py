"""Synthetic "personal taste": rated embeddings with a planted, known taste.

Used by the tests, the pipeline's demo set and bench/quality.py. The *world* (directions,
style clusters, the taste function and its cut points) is fixed by `world_seed`; samples are
drawn with `seed`, so sets of different sizes share one taste. Embeddings are unit-norm
D-d vectors with a large shared mean direction (as real SigLIP embeddings have), style
clusters and a low-rank latent. The taste is partly linear in the latent, partly
cluster-dependent (a bias and a slope per style), partly non-linear; rater noise is added and
the result is cut into an imbalanced 1..5 mix. The noiseless taste is the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_MIX = (0.07, 0.18, 0.38, 0.27, 0.10)


@dataclass
class TasteData:
    embeddings: np.ndarray  # (N, D) float32, unit norm
    ratings: np.ndarray  # (N,) int64 1..5, what the person gave (noisy)
    oracle_ratings: np.ndarray  # (N,) int64 1..5, the noiseless taste cut at the same bars
    taste: np.ndarray  # (N,) float64, the noiseless latent taste
    style: np.ndarray  # (N,) int64, each image's style cluster
    latent: np.ndarray  # (N, rank) float64, each image's low-rank latent
    _world: _World = field(repr=False)

    def _style_onehot(self) -> np.ndarray:
        return np.eye(len(self._world.cluster_p))[self.style]

    def generating_inputs(self) -> np.ndarray:
        """(N, styles + rank): one-hot style and latent, what each embedding encodes before it is
        mixed into the embedding's dimensions and noised."""
        return np.hstack([self._style_onehot(), self.latent])

    def generator_terms(self) -> np.ndarray:
        """(N, T): the terms the taste is a linear combination of (the latent, the style, style x
        latent, and the non-linear part's sin and product), so a model that knows the taste's form
        needs only a linear fit: the bench's ceiling, which no learner of embeddings can know."""
        onehot = self._style_onehot()
        cross = (onehot[:, :, None] * self.latent[:, None, :]).reshape(len(self.style), -1)
        return np.hstack([self.latent, onehot, cross, _nonlinear_terms(self._world, self.latent)])


@dataclass
class _World:
    mean_dir: np.ndarray
    centers: np.ndarray
    cluster_p: np.ndarray
    basis: np.ndarray
    v_lin: np.ndarray
    cluster_bias: np.ndarray
    cluster_slope: np.ndarray
    p_nl: np.ndarray
    q_nl: np.ndarray
    part_stats: np.ndarray
    cuts: np.ndarray
    slope: float = 0.7  # how much each style tilts the latent's linear part (0: a style is a bias)


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _latents(world: _World, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    c = rng.choice(len(world.cluster_p), size=n, p=world.cluster_p)
    z = rng.standard_normal((n, world.basis.shape[0]))
    return c, z


def _taste_parts(world: _World, c: np.ndarray, z: np.ndarray) -> np.ndarray:
    lin = z @ world.v_lin
    clus = world.cluster_bias[c] + world.slope * np.einsum("nr,nr->n", z, world.cluster_slope[c])
    nonlin = _nonlinear_terms(world, z) @ np.array([1.0, 0.5])
    return np.stack([lin, clus, nonlin], axis=1)


def _nonlinear_terms(world: _World, z: np.ndarray) -> np.ndarray:
    """(N, 2): sin(1.5 a) and a * b for two latent directions a, b."""
    a, b = z @ world.p_nl, z @ world.q_nl
    return np.stack([np.sin(1.5 * a), a * b], axis=1)


def _make_world(
    dim: int,
    world_seed: int,
    weights: tuple[float, float, float],
    noise: float,
    mix: tuple[float, ...],
    n_clusters: int,
    rank: int,
    slope: float = 0.7,
) -> _World:
    rng = np.random.default_rng(world_seed)
    cluster_p = rng.dirichlet(np.full(n_clusters, 2.0))
    w = _World(
        mean_dir=_unit(rng.standard_normal(dim)),
        centers=_unit(rng.standard_normal((n_clusters, dim))),
        cluster_p=cluster_p,
        basis=np.linalg.qr(rng.standard_normal((dim, rank)))[0].T,  # (rank, dim) orthonormal rows
        v_lin=_unit(rng.standard_normal(rank)),
        cluster_bias=rng.standard_normal(n_clusters),
        cluster_slope=_unit(rng.standard_normal((n_clusters, rank))),
        p_nl=_unit(rng.standard_normal(rank)),
        q_nl=_unit(rng.standard_normal(rank)),
        part_stats=np.zeros((2, 3)),
        cuts=np.zeros(len(mix) - 1),
        slope=slope,
    )
    c, z = _latents(w, 200_000, rng)
    parts = _taste_parts(w, c, z)
    w.part_stats = np.stack([parts.mean(0), parts.std(0)])
    taste = _combine(w, parts, weights)
    noisy = taste + noise * rng.standard_normal(taste.shape)
    w.cuts = np.quantile(noisy, np.cumsum(mix)[:-1])
    return w


def _combine(world: _World, parts: np.ndarray, weights: tuple[float, float, float]) -> np.ndarray:
    std_parts = (parts - world.part_stats[0]) / world.part_stats[1]
    wts = np.sqrt(np.asarray(weights, dtype=np.float64))  # weights are shares of variance
    return std_parts @ wts / np.sqrt(np.sum(wts**2))


def make_taste_dataset(
    n: int,
    dim: int = 1152,
    seed: int = 0,
    world_seed: int = 1234,
    noise: float = 0.5,
    weights: tuple[float, float, float] = (0.5, 0.3, 0.2),
    mix: tuple[float, ...] = DEFAULT_MIX,
    n_clusters: int = 12,
    rank: int = 32,
    slope: float = 0.7,
) -> TasteData:
    """n rated embeddings. `weights`: variance shares of the linear, cluster and non-linear
    parts of the taste; `noise`: rater noise sd relative to the taste's unit sd; `slope`: how much
    a style tilts the taste (0: the cluster part is a bias per style, and a linear model of the
    embedding can hold the whole taste when the non-linear share is 0 too)."""
    world = _make_world(dim, world_seed, weights, noise, mix, n_clusters, rank, slope)
    rng = np.random.default_rng([world_seed, seed])
    c, z = _latents(world, n, rng)
    taste = _combine(world, _taste_parts(world, c, z), weights)
    noisy = taste + noise * rng.standard_normal(n)
    emb = (
        0.75 * world.mean_dir
        + 0.35 * world.centers[c]
        + 0.45 / np.sqrt(world.basis.shape[0]) * (z @ world.basis)
        + 0.25 / np.sqrt(dim) * rng.standard_normal((n, dim))
    )
    return TasteData(
        embeddings=np.ascontiguousarray(_unit(emb), dtype=np.float32),
        ratings=(1 + np.searchsorted(world.cuts, noisy)).astype(np.int64),
        oracle_ratings=(1 + np.searchsorted(world.cuts, taste)).astype(np.int64),
        taste=taste,
        style=c,
        latent=z,
        _world=world,
    )
