"""Randomly initialised SigLIPs saved like a Hub checkpoint: `silva trial-backbone` (silva
offline, in seconds on a CPU), the tests' tiny backbone and the benchmarks' SO400M-shaped tower.
"""

from __future__ import annotations

import os
from pathlib import Path

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
TRIAL_VISION_CONFIG = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=64,
    patch_size=8,
)


def save_random_siglip(
    folder: str | os.PathLike[str], vision_config: dict, dtype: torch.dtype = torch.float32, seed: int = 0
) -> Path:
    """A randomly initialised SigLIP with the given vision tower (and a token text tower),
    saved with `save_pretrained` so it loads through exactly the calls a Hub checkpoint does.
    For trials, tests and benchmarks on machines that cannot download the real weights."""
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel

    text = dict(
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
    with quiet_transformers():
        cfg = SiglipConfig(vision_config=vision_config, text_config=text)
        torch.manual_seed(seed)
        SiglipModel(cfg).to(dtype).save_pretrained(folder)
        size = vision_config["image_size"]
        SiglipImageProcessorPil(size={"height": size, "width": size}).save_pretrained(folder)
    return Path(folder)
