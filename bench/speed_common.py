"""What the speed benchmarks share: SO400M's shape and this device's matmul peak."""

from __future__ import annotations

import time

import torch

from silva_model.random_siglip import SO400M_VISION_CONFIG

SO400M_LAYERS = SO400M_VISION_CONFIG["num_hidden_layers"]


def matmul_flops(
    device: torch.device, dtype: torch.dtype, n: int = 2048, reps: int = 5, trials: int = 5
) -> float:
    """The best of several timed trials: a roofline is what the machine can reach, and the first
    trials of a fresh process (thread pools, clocks) or a noisy neighbour only pull a mean down."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(trials):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0))
    return best


# The text tower of google/siglip2-so400m-patch14-384 (its config.json): what loading the whole
# model paid for and the vision tower alone does not.
SO400M_TEXT_CONFIG = dict(
    hidden_size=1152,
    intermediate_size=4304,
    num_hidden_layers=27,
    num_attention_heads=16,
    vocab_size=256000,
    max_position_embeddings=64,
)
