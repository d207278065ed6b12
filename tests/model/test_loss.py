"""The cumulative-link loss: targets per bar, per-bar class balancing, what the loss averages."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from silva_model.loss import (
    CumulativeBCELoss,
    class_counts,
    cumulative_targets,
    threshold_weights,
    warn_missing_classes,
)


def _skewed(n: int = 1000, seed: int = 0) -> torch.Tensor:
    """Ratings as a person gives them: mostly 3s and 4s, few 1s and 5s."""
    g = torch.Generator().manual_seed(seed)
    return (
        torch.multinomial(torch.tensor([0.04, 0.16, 0.45, 0.3, 0.05]), n, replacement=True, generator=g) + 1
    )


def test_cumulative_targets_mark_the_bars_a_rating_clears():
    t = cumulative_targets(torch.tensor([1, 3, 5]))
    assert t.tolist() == [[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]]
    assert t.dtype == torch.float32


def test_class_counts_per_rating():
    assert class_counts(torch.tensor([1, 1, 3, 5, 5, 5])).tolist() == [2, 0, 1, 0, 3]


def test_balancing_gives_each_bar_equal_weight_on_both_sides_and_mean_weight_one():
    y = _skewed()
    w_pos, w_neg = threshold_weights(y)
    t = cumulative_targets(y)
    pos_total = (t * w_pos).sum(0)
    neg_total = ((1 - t) * w_neg).sum(0)
    torch.testing.assert_close(pos_total, neg_total)  # per bar, positives and negatives weigh the same
    torch.testing.assert_close(pos_total + neg_total, torch.full((4,), float(len(y))))  # loss keeps its scale
    assert w_pos[0] < 1 < w_pos[3]  # the rare side of each end bar is weighed up


def test_at_zero_logits_a_balanced_loss_pulls_no_bar_either_way():
    """The point of balancing: a head that has learned nothing feels no push from the class mix
    alone. Unbalanced, the skewed ratings push the end bars."""
    y = _skewed()
    for loss, balanced in ((CumulativeBCELoss.balanced(y), True), (CumulativeBCELoss(), False)):
        logits = torch.zeros(len(y), 4, requires_grad=True)
        loss(logits, y).backward()
        per_bar = logits.grad.sum(0)
        assert torch.allclose(per_bar, torch.zeros(4), atol=1e-6) is balanced


def test_a_bar_that_cannot_be_balanced_gets_weight_one_and_a_warning():
    y = torch.tensor([1, 2, 2, 3, 3, 3, 4])  # no 5: the top bar has no positives
    with pytest.warns(UserWarning, match=r"no examples of rating\(s\) \[5\]"):
        w_pos, w_neg = threshold_weights(y)
    assert (w_pos[3].item(), w_neg[3].item()) == (1.0, 1.0)
    assert torch.isfinite(w_pos).all() and torch.isfinite(w_neg).all()
    assert w_pos[0] != 1.0  # the other bars are still balanced


def test_warn_missing_classes_returns_what_it_warns_about():
    with pytest.warns(UserWarning, match=r"rating\(s\) \[2, 4\]"):
        assert warn_missing_classes(torch.tensor([1, 3, 5])) == [2, 4]


def test_the_loss_is_the_weighted_mean_over_samples_and_bars():
    y = _skewed(400, seed=1)
    logits = torch.randn(400, 4, generator=torch.Generator().manual_seed(2))
    w_pos, w_neg = threshold_weights(y)
    t = cumulative_targets(y)
    by_hand = (
        F.binary_cross_entropy_with_logits(logits, t, reduction="none") * (t * w_pos + (1 - t) * w_neg)
    ).mean()
    torch.testing.assert_close(CumulativeBCELoss(pos_weight=w_pos, neg_weight=w_neg)(logits, y), by_hand)
    plain = F.binary_cross_entropy_with_logits(logits, t)
    torch.testing.assert_close(CumulativeBCELoss()(logits, y), plain)


def test_half_precision_logits_give_a_float32_loss_and_weights_follow_the_module():
    y = torch.tensor([1, 2, 3, 4, 5])
    loss = CumulativeBCELoss.balanced(y)
    assert loss(torch.zeros(5, 4, dtype=torch.bfloat16), y).dtype == torch.float32
    assert {name for name, _ in loss.named_buffers()} == {
        "pos_weight",
        "neg_weight",
    }  # .to(device) moves them
