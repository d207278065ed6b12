"""The trial backbone: a random SigLIP that still tells distinct images apart."""

from __future__ import annotations

import numpy as np

from silva_model.backbone import SiglipEmbedder
from silva_model.copy_kinds import COPY_KINDS
from silva_model.drawings import illustration, photo, scene
from silva_model.random_siglip import TRIAL_VISION_CONFIG, save_random_siglip, save_trial_siglip


def _far_apart(embedder: SiglipEmbedder, images: list) -> float:
    """The share of distinct pairs whose cosine is above 0.9 (where the copy rule starts to listen)."""
    x = embedder.embed_images(images)
    return float(((x @ x.T)[np.triu_indices(len(x), 1)] > 0.9).mean())


def test_the_trial_backbone_tells_distinct_images_apart_and_keeps_re_encodes_together(tmp_path):
    """A random tower pooled images of every kind into nearly one direction; whitened over drawn
    scenes, it spreads families it never saw while a re-encoded or resized copy stays above 0.985."""
    rng = np.random.default_rng(1)
    distinct = [illustration(rng) for _ in range(60)] + [photo(rng) for _ in range(60)]
    distinct += [scene(rng) for _ in range(60)]
    trial = SiglipEmbedder(save_trial_siglip(tmp_path / "trial"), device="cpu")
    assert trial.embed_dim == TRIAL_VISION_CONFIG["hidden_size"]
    raw = SiglipEmbedder(save_random_siglip(tmp_path / "raw", TRIAL_VISION_CONFIG), device="cpu")
    assert _far_apart(raw, distinct) > 0.03  # the tower as it comes: 0.040
    assert _far_apart(trial, distinct) < 0.01  # measured 0.003
    originals = trial.embed_images(distinct[::3])
    for kind in ("jpeg q70", "resized 0.8x", "blur + webp q80"):
        copies = trial.embed_images([COPY_KINDS[kind](im) for im in distinct[::3]])
        assert ((originals * copies).sum(1) > 0.985).mean() >= 0.95, kind
