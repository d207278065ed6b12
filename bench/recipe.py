"""The training recipe published with `silva-scorer` (its training code is not published; the losses
are written from its description), as a peer in the quality bench.

Architecture: silva-scorer's own (LayerNorm -> Dropout -> [1024, 512, 256] Linear/GELU/Dropout 0.3
-> ordinal head with `base + cumsum(softplus(deltas))` thresholds), rebuilt by
`silva_model.interop.SilvaScorerHead` with the same parameter names. Loss: ordinal BCE with
per-threshold `pos_weight = #neg/#pos` and label smoothing 0.2, + 1.0 x RankNet over in-batch pairs,
+ 0.5 x soft-Spearman (tau = 1), + 1.0 x a differentiable QWK loss on the class probabilities.
AdamW lr 1.5e-3, weight decay 0.05, batch 256, 40 epochs, 3 % warmup then cosine, gradient
clipping 1.0, best epoch by val Spearman.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from bench.common import tensor
from silva_model.head import predicted_class
from silva_model.interop import SilvaScorerHead
from silva_model.pairs import rank_loss

K = 5
SMOOTHING = 0.2
EPOCHS, LR, WEIGHT_DECAY, BATCH, WARMUP, CLIP = 40, 1.5e-3, 0.05, 256, 0.03, 1.0


def _class_probs(logits: torch.Tensor) -> torch.Tensor:
    """(B, K-1) cumulative logits -> (B, K) class probabilities: P(y = c) = P(y > c-1) - P(y > c)."""
    above = torch.sigmoid(logits)
    ones, zeros = torch.ones_like(above[:, :1]), torch.zeros_like(above[:, :1])
    return (torch.cat([ones, above], 1) - torch.cat([above, zeros], 1)).clamp_min(0)


def _qwk_loss(probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Observed over expected quadratic disagreement (1 - kappa), with soft predictions."""
    onehot = F.one_hot(y - 1, K).to(probs.dtype)
    grid = torch.arange(K, dtype=probs.dtype, device=probs.device)
    w = (grid[:, None] - grid[None, :]) ** 2 / (K - 1) ** 2
    observed = (onehot.T @ probs) / len(y)
    expected = torch.outer(onehot.mean(0), probs.mean(0))
    return (w * observed).sum() / (w * expected).sum().clamp_min(1e-8)


def _soft_spearman(s: torch.Tensor, y: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    soft_rank = torch.sigmoid((s[:, None] - s[None, :]) / tau).sum(1)
    ranks = torch.argsort(torch.argsort(y.to(s.dtype))).to(s.dtype)
    a, b = soft_rank - soft_rank.mean(), ranks - ranks.mean()
    return 1 - (a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-8)


def recipe_loss(pos_weight: torch.Tensor):
    def loss(out, y: torch.Tensor) -> torch.Tensor:
        targets = (y[:, None] > torch.arange(1, K, device=y.device)).float() * (1 - SMOOTHING) + SMOOTHING / 2
        bce = F.binary_cross_entropy_with_logits(out.logits, targets, pos_weight=pos_weight.to(y.device))
        return (
            bce
            + 1.0 * rank_loss(out.latent[None], y, scale=1.0)  # plain RankNet, as the recipe says
            + 0.5 * _soft_spearman(out.latent, y)
            + 1.0 * _qwk_loss(_class_probs(out.logits), y)
        )

    return loss


def build(dim: int, y_train: np.ndarray) -> tuple[SilvaScorerHead, object]:
    model = SilvaScorerHead({"embedding_dim": dim, "dropout": 0.3, "hidden_dims": [1024, 512, 256]})
    pos = np.array([(y_train > k).sum() for k in range(1, K)], dtype=np.float64)
    pos_weight = torch.tensor((len(y_train) - pos) / np.maximum(pos, 1), dtype=torch.float32)
    return model, recipe_loss(pos_weight)


@torch.no_grad()
def predict(model: SilvaScorerHead, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = model(tensor(x))
    return out.score.cpu().numpy(), predicted_class(out.logits).cpu().numpy()
