"""The family of tastes every quality benchmark measures on."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


# The family of tastes silva must win on: rater noise 0.3-0.8, 8-24 style clusters, latent rank
# 16-64, a non-linear share of 0-50 % and balanced or skewed rating mixes, each in its own world.
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
}
