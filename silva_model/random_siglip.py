"""Randomly initialised SigLIPs saved like a Hub checkpoint: `silva trial-backbone` (silva
offline, in seconds on a CPU), the tests' tiny backbone and the benchmarks' SO400M-shaped tower.

A random tower pools its tokens into nearly one direction: its outputs differ mostly along two
or three axes (the image's global colour), so distinct images look like copies of one another
(2.5 % of distinct pairs above a cosine of 0.9 with the trial tower as it comes). The trial
backbone therefore whitens its pooled output over images it draws itself (`silva_model.drawings`),
folded into the pooling head's last linear map: still a SigLIP checkpoint, loaded by the same
calls, and distinct images fall far apart while re-encodes of one image stay close
(`bench/near_duplicates.py` measures both).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from silva_model.backbone import quiet_transformers

# The vision tower of google/siglip2-so400m-patch14-384 (its config.json).
SO400M_VISION_CONFIG = dict(
    hidden_size=1152,
    intermediate_size=4304,
    num_hidden_layers=27,
    num_attention_heads=16,
    image_size=384,
    patch_size=14,
)

# A small vision tower for trying silva without downloading the real one (`silva trial-backbone`):
# every command and the pipeline run on it as on SO400M, in seconds on a CPU; its scores mean nothing.
# 4-pixel patches: 256 tokens keep more of an image than 64 did, so whitening has more to spread.
TRIAL_VISION_CONFIG = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=64,
    patch_size=4,
)

# The tests' toy tower (tests/support/helpers.py), also what bench/near_duplicates.py measures with.
TEST_VISION_CONFIG = dict(
    hidden_size=48,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=32,
    patch_size=8,
)

_TEXT_CONFIG = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=1,
    num_attention_heads=2,
    vocab_size=100,
    max_position_embeddings=16,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)
_CALIBRATION_IMAGES = 384  # drawn scenes the trial tower is whitened over: about a second to draw
_SHRINK = 1.0  # added to each variance, in units of the mean one: keeps weak axes from turning to noise


def _random_siglip(vision_config: dict, dtype: torch.dtype, seed: int):
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel

    cfg = SiglipConfig(vision_config=vision_config, text_config=_TEXT_CONFIG)
    torch.manual_seed(seed)
    size = vision_config["image_size"]
    return SiglipModel(cfg).to(dtype), SiglipImageProcessorPil(size={"height": size, "width": size})


def save_random_siglip(
    folder: str | os.PathLike[str], vision_config: dict, dtype: torch.dtype = torch.float32, seed: int = 0
) -> Path:
    """A randomly initialised SigLIP with the given vision tower (and a token text tower),
    saved with `save_pretrained` so it loads through exactly the calls a Hub checkpoint does.
    For trials, tests and benchmarks on machines that cannot download the real weights."""
    with quiet_transformers():
        model, processor = _random_siglip(vision_config, dtype, seed)
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
    return Path(folder)


def save_trial_siglip(folder: str | os.PathLike[str], seed: int = 0) -> Path:
    """`silva trial-backbone`: a random SigLIP of `TRIAL_VISION_CONFIG` whose pooled output is
    whitened over drawn scenes, so that distinct images are told apart."""
    from silva_model.drawings import scene

    rng = np.random.default_rng(seed)
    with quiet_transformers():
        model, processor = _random_siglip(TRIAL_VISION_CONFIG, torch.float32, seed)
        sides = rng.integers(64, 257, (_CALIBRATION_IMAGES, 2))  # the tower sees 64 pixels: small is enough
        images = [scene(rng, int(w), int(h)) for w, h in sides]
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        _whiten_pooling(model.vision_model, pixels)
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
    return Path(folder)


@torch.no_grad()
def _whiten_pooling(tower: torch.nn.Module, pixels: torch.Tensor) -> None:
    """Make the pooled output A (r - mean) over `pixels`, A = (cov + shrink)^-1/2: the pooling
    head's MLP gives way to a constant (its last layer's weights zero), so the output is its
    attention's out_proj, a linear map A folds into."""
    head = tower.head
    head.mlp.fc2.weight.zero_()
    head.mlp.fc2.bias.zero_()
    r = tower(pixel_values=pixels).pooler_output.double()
    mean, cov = r.mean(0), torch.cov(r.T)
    values, vectors = torch.linalg.eigh(cov)
    a = vectors @ torch.diag((values.clamp(min=0) + _SHRINK * values.mean()).rsqrt()) @ vectors.T
    out = head.attention.out_proj
    out.weight.copy_(a @ out.weight.double())
    out.bias.copy_(a @ out.bias.double())
    head.mlp.fc2.bias.copy_(-(a @ mean))
