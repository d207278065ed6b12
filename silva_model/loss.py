"""Cumulative-link loss: one binary cross-entropy per threshold on the targets y > k."""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.nn import functional as F

from silva_model.head import NUM_CLASSES


def cumulative_targets(y: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Ratings 1..K -> (B, K-1) float targets t_k = [y > k] for k = 1..K-1."""
    ks = torch.arange(1, num_classes, device=y.device)
    return (y.unsqueeze(-1) > ks).float()


def class_counts(y: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    return torch.bincount(y.long() - 1, minlength=num_classes)[:num_classes]


def warn_missing_classes(y: torch.Tensor, num_classes: int = NUM_CLASSES) -> list[int]:
    """Warn (and return) which ratings the train split lacks: training goes on regardless."""
    missing = [i + 1 for i, c in enumerate(class_counts(y, num_classes).tolist()) if c == 0]
    if missing:
        warnings.warn(
            f"train split has no examples of rating(s) {missing}; training goes on, "
            "but the head cannot learn where those bars lie",
            stacklevel=3,
        )
    return missing


def threshold_weights(y: torch.Tensor, num_classes: int = NUM_CLASSES) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-threshold class balancing weights from the train split's ratings.

    For threshold k with n_pos = #{y > k}, n_neg = #{y <= k}, n = n_pos + n_neg:

        w_pos_k = n / (2 * n_pos),   w_neg_k = n / (2 * n_neg)

    so positives and negatives of every bar carry equal total weight and the mean weight is 1
    (the loss keeps its scale). A bar with no positives or no negatives (a class missing at
    either end) cannot be balanced: it gets weight 1 on both sides and a warning, never a
    division by zero.
    """
    counts = class_counts(y, num_classes).double()
    n = counts.sum()
    n_pos = torch.flip(torch.cumsum(torch.flip(counts, [0]), 0), [0])[1:]  # #{y > k}
    n_neg = n - n_pos
    warn_missing_classes(y, num_classes)
    ok = (n_pos > 0) & (n_neg > 0)
    w_pos = torch.where(ok, n / (2 * n_pos.clamp_min(1)), torch.ones_like(n_pos))
    w_neg = torch.where(ok, n / (2 * n_neg.clamp_min(1)), torch.ones_like(n_neg))
    return w_pos.float(), w_neg.float()


class CumulativeBCELoss(nn.Module):
    """Mean over samples and thresholds of (optionally weighted) BCE(f - theta_k, [y > k])."""

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        pos_weight: torch.Tensor | None = None,
        neg_weight: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        k = num_classes - 1
        self.register_buffer("pos_weight", pos_weight if pos_weight is not None else torch.ones(k))
        self.register_buffer("neg_weight", neg_weight if neg_weight is not None else torch.ones(k))

    @classmethod
    def balanced(cls, y_train: torch.Tensor, num_classes: int = NUM_CLASSES) -> CumulativeBCELoss:
        w_pos, w_neg = threshold_weights(y_train, num_classes)
        return cls(num_classes, w_pos, w_neg)

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        t = cumulative_targets(y, self.num_classes)
        w = t * self.pos_weight + (1 - t) * self.neg_weight
        return F.binary_cross_entropy_with_logits(logits.float(), t, weight=w)
