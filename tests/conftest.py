"""Shared fixtures: a tiny, randomly initialised SigLIP saved like a real checkpoint, image
files (some broken), and a small synthetic rated set."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach the Hub
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

TINY_DIM = 48


def save_tiny_siglip(folder: Path, hidden_size: int = TINY_DIM, seed: int = 0) -> Path:
    """A random SigLIP with the real architecture at toy size, saved with save_pretrained so it
    loads through AutoModel / AutoImageProcessor exactly like google/siglip2-so400m-patch14-384."""
    from silva_model.backbone import save_random_siglip

    return save_random_siglip(
        folder,
        dict(
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        ),
        seed=seed,
    )


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    return save_tiny_siglip(tmp_path_factory.mktemp("tiny-siglip"))


def write_images(folder: Path, n: int, seed: int = 0, size: tuple[int, int] = (40, 56)) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"img_{seed}_{i:03d}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


@pytest.fixture(scope="session")
def taste_data():
    from silva_model.synthetic import make_taste_dataset

    return make_taste_dataset(3000, seed=0)
