"""Heads published by `silva-scorer` (PyPI; import name `silva`), the project silva grew out of.

Its `EmbeddingAestheticModel` is saved by `PyTorchModelHubMixin` as `config.json` (the
constructor's arguments: `embedding_dim`, `dropout`, `hidden_dims`, `n_residual_blocks`) plus
`model.safetensors`. This module rebuilds the same network with the same parameter names, so
the file loads with `strict=True` and scores exactly as silva-scorer's own code: LayerNorm ->
Dropout -> [Linear, GELU, Dropout] per hidden width -> pre-norm residual blocks -> ordinal
head (`latent - (base + cumsum(softplus(deltas)))`), and the baked latent -> score calibration
table when the head carries one. The score is its `calibrated_score`, what `SilvaScorer` returns.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from silva_model.head import NUM_CLASSES, HeadConfig, HeadOutput, interpolate
from silva_model.provenance import DEFAULT_BACKBONE, BackboneSpec

SILVA_SCORER = "silva-scorer"  # the kind of judge a silva-scorer head is (`HeadConfig.prior`)
N_CAL_KNOTS = 512
# SigLIP2-SO400M's pooler_output, which these heads were trained on, has a norm of about 15.
# Inputs are rescaled to it so that c·x scores exactly as x (the LayerNorm alone is invariant
# only up to its epsilon, which matters for unit-norm inputs).
REFERENCE_NORM = 15.0


def is_silva_scorer_config(config: dict[str, Any]) -> bool:
    return "embedding_dim" in config and "format" not in config


class _ResidualBlock(nn.Module):
    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop(self.fc2(self.drop(self.act(self.fc1(self.norm(x))))))


class _Ordinal(nn.Module):
    def __init__(self, hidden: int, num_thresholds: int = NUM_CLASSES - 1) -> None:
        super().__init__()
        self.latent = nn.Linear(hidden, 1)
        self.base_threshold = nn.Parameter(torch.zeros(()))
        self.raw_deltas = nn.Parameter(torch.zeros(num_thresholds))

    def thresholds(self) -> torch.Tensor:
        return self.base_threshold + torch.cumsum(F.softplus(self.raw_deltas), dim=0)


class SilvaScorerHead(nn.Module):
    """A silva-scorer head behind silva's head interface (`forward` -> `HeadOutput`)."""

    def __init__(self, hub_config: dict[str, Any]) -> None:
        super().__init__()
        dim = int(hub_config["embedding_dim"])
        dropout = float(hub_config.get("dropout", 0.1))
        hidden = [int(h) for h in hub_config.get("hidden_dims") or []]
        self.config = HeadConfig(
            embed_dim=dim,
            hidden=tuple(hidden),
            dropout=dropout,
            backbone=BackboneSpec(model=DEFAULT_BACKBONE, pooling="pooler_output"),
        )
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        trunk: list[nn.Module] = []
        width = dim
        for h in hidden:
            trunk += [nn.Linear(width, h), nn.GELU(), nn.Dropout(dropout)]
            width = h
        trunk += [_ResidualBlock(width, dropout) for _ in range(int(hub_config.get("n_residual_blocks", 0)))]
        self.trunk = nn.Sequential(*trunk)
        self.head = _Ordinal(width)
        self.register_buffer("cal_lat_knots", torch.zeros(N_CAL_KNOTS))
        self.register_buffer("cal_score_knots", torch.zeros(N_CAL_KNOTS))
        self.register_buffer("cal_fitted", torch.zeros((), dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> HeadOutput:
        x = F.normalize(x.float(), dim=-1) * REFERENCE_NORM
        h = self.trunk(self.dropout(self.norm(x)))
        latent = self.head.latent(h).squeeze(-1)
        logits = latent.unsqueeze(-1) - self.head.thresholds().unsqueeze(0)
        score = torch.sigmoid(logits).mean(-1)
        if bool(self.cal_fitted):
            score = interpolate(latent, self.cal_lat_knots, self.cal_score_knots)
        return HeadOutput(latent=latent, logits=logits, score=score)
