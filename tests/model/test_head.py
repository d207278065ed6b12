"""The ordinal head: thresholds, scores, members, the input projection, loading."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import (
    SMALL_TRAIN,
)

from silva_model import Scorer
from silva_model.head import HeadConfig, OrdinalHead, expected_rating, predicted_class
from silva_model.loss import CumulativeBCELoss, class_counts, cumulative_targets, threshold_weights
from silva_model.manifest import build_manifest
from silva_model.train import train
from silva_model.train_config import TrainConfig


@pytest.mark.parametrize("seed", range(5))
def test_thresholds_strictly_increasing_for_any_parameters(seed):
    head = OrdinalHead()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head.theta_first.copy_(torch.randn((), generator=g) * 50)
        head.theta_gaps.copy_(torch.randn(3, generator=g) * 50 - 40)  # very negative raw gaps too
    t = head.thresholds()
    assert torch.all(t[1:] > t[:-1])
    x = torch.randn(64, 1152, generator=g)
    p = torch.sigmoid(head(x).logits)  # P(y > k) must be non-increasing in k
    assert torch.all(p[:, 1:] <= p[:, :-1] + 1e-7)


def test_score_is_mean_of_bar_probabilities_and_maps_to_ratings():
    head = OrdinalHead(HeadConfig(embed_dim=8, hidden=(16,), dropout=0.0)).eval()
    x = torch.randn(32, 8)
    out = head(x)
    f = head.latent(x)
    manual = torch.sigmoid(f[:, None] - head.thresholds()[None, :]).mean(1)
    torch.testing.assert_close(out.score, manual)
    assert torch.all((out.score >= 0) & (out.score <= 1))
    assert expected_rating(0.0) == 1 and expected_rating(1.0) == 5
    cls = predicted_class(out.logits)
    assert torch.equal(cls, 1 + (f[:, None] > head.thresholds()).sum(1))
    assert cls.min() >= 1 and cls.max() <= 5


def test_default_head_weighs_about_7_mb():
    head = OrdinalHead()
    n = sum(p.numel() for p in head.parameters())
    assert 6.5e6 < 4 * n < 7.5e6
    assert head.mlp.out_features == [1024, 512, 1]


def test_init_thresholds_reproduces_the_train_prior():
    head = OrdinalHead(HeadConfig(embed_dim=4, hidden=(4,)))
    rates = torch.tensor([0.93, 0.75, 0.37, 0.10])
    head.init_thresholds(rates)
    torch.testing.assert_close(torch.sigmoid(-head.thresholds()), rates, atol=1e-4, rtol=0)
    head.init_thresholds(torch.tensor([1.0, 1.0, 0.4, 0.0]))  # absent classes: still finite, increasing
    t = head.thresholds()
    assert torch.isfinite(t).all() and torch.all(t[1:] > t[:-1])


def test_cumulative_targets():
    y = torch.tensor([1, 2, 3, 4, 5])
    expected = torch.tensor([[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]).float()
    assert torch.equal(cumulative_targets(y), expected)


def test_threshold_weights_follow_the_documented_formula():
    y = torch.tensor([1] * 10 + [2] * 20 + [3] * 40 + [4] * 20 + [5] * 10)
    w_pos, w_neg = threshold_weights(y)
    n_pos = torch.tensor([90.0, 70, 30, 10])
    torch.testing.assert_close(w_pos, 100 / (2 * n_pos))
    torch.testing.assert_close(w_neg, 100 / (2 * (100 - n_pos)))
    assert torch.equal(class_counts(y), torch.tensor([10, 20, 40, 20, 10]))


def test_missing_class_warns_and_still_trains_without_nan():
    y = torch.tensor([2, 3, 3, 4, 4, 4, 3, 2])  # no 1s and no 5s: two bars cannot be balanced
    with pytest.warns(UserWarning, match=r"no examples of rating\(s\) \[1, 5\]"):
        loss_fn = CumulativeBCELoss.balanced(y)
    assert torch.isfinite(loss_fn.pos_weight).all() and torch.isfinite(loss_fn.neg_weight).all()
    head = OrdinalHead(HeadConfig(embed_dim=6, hidden=(8,)))
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    x = torch.randn(8, 6)
    for _ in range(5):
        loss = loss_fn(head(x).logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert math.isfinite(loss.item())
    assert all(torch.isfinite(p).all() for p in head.parameters())


def test_members_are_independent_mlps_whose_latents_are_averaged():
    head = OrdinalHead(HeadConfig(embed_dim=6, hidden=(8, 4), dropout=0.0, members=3)).eval()
    x = torch.randn(10, 6)
    per = head.member_latents(x)
    assert per.shape == (3, 10)
    torch.testing.assert_close(head.latent(x), per.mean(0))
    xs = (torch.nn.functional.normalize(x, dim=-1) - head.input_mean) * head.input_scale
    for m in range(3):  # member m is a plain MLP on its own slice of the weights
        h = xs
        for i, (w, b) in enumerate(zip(head.mlp.weights, head.mlp.biases, strict=True)):
            h = h @ w[m] + b[m]
            h = torch.nn.functional.gelu(h) if i < 2 else h
        torch.testing.assert_close(per[m], h.squeeze(-1))
    assert not torch.allclose(per[0], per[1])  # initialised independently


def test_a_head_saved_as_a_sequential_mlp_still_loads():
    """Heads released before members existed store `mlp.<i>.weight` of nn.Linear layers."""
    head = OrdinalHead(HeadConfig(embed_dim=6, hidden=(8,), dropout=0.0)).eval()
    old = torch.nn.Sequential(
        torch.nn.Linear(6, 8), torch.nn.GELU(), torch.nn.Dropout(0.0), torch.nn.Linear(8, 1)
    )
    state = {k: v for k, v in head.state_dict().items() if not k.startswith("mlp.")}
    state |= {f"mlp.{k}": v for k, v in old.state_dict().items()}
    head.load_state_dict(state, strict=True)
    x = torch.randn(5, 6)
    xs = (torch.nn.functional.normalize(x, dim=-1) - head.input_mean) * head.input_scale
    torch.testing.assert_close(head.latent(x), old(xs).squeeze(-1))


def test_read_only_embeddings_score_without_a_torch_warning():
    """A manifest read zero-copy is a read-only array; torch warns (once per process) when asked to
    wrap one, so this runs in a fresh interpreter with warnings as errors."""
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from silva_model.active import class_probabilities\n"
        "from silva_model.head import HeadConfig, OrdinalHead, predict\n"
        "x = np.ones((3, 8), np.float32); x.flags.writeable = False\n"
        "head = OrdinalHead(HeadConfig(embed_dim=8, hidden=(4,)))\n"
        "predict(head, x); class_probabilities(head, x)\n"
    )
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_input_projection_reads_the_leading_principal_components_with_one_scale():
    """A head with `input_components` projects centred, unit-norm inputs onto the train rows'
    top principal components and scales them all by one number."""
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(24, 3, generator=g)).Q  # 3 strong directions in 24-d
    x = 5.0 + torch.randn(400, 3, generator=g) * torch.tensor([4.0, 2.0, 1.0]) @ basis.T
    x = x + 0.01 * torch.randn(400, 24, generator=g)
    head = OrdinalHead(HeadConfig(embed_dim=24, hidden=(8,), dropout=0.0, input_components=3)).eval()
    head.fit_input_projection(x)
    p = head.input_projection
    torch.testing.assert_close(p.T @ p, torch.eye(3), atol=1e-5, rtol=0)
    xn = torch.nn.functional.normalize(x, dim=-1)
    top = torch.linalg.svd(xn - xn.mean(0), full_matrices=False).Vh[:3].T
    torch.testing.assert_close((top @ top.T) @ p, p, atol=1e-4, rtol=0)  # the same subspace
    assert torch.all(head.input_scale == head.input_scale[0])
    h = (xn - head.input_mean) @ p * head.input_scale
    assert float(h.std()) == pytest.approx(1.0, rel=1e-4)
    torch.testing.assert_close(head.latent(x), head.mlp(h).mean(0))
    torch.testing.assert_close(head.latent(7.0 * x), head.latent(x))  # scale-free, as without projection


def test_input_components_cannot_exceed_the_embedding():
    with pytest.raises(ValueError, match="input_components"):
        HeadConfig(embed_dim=8, input_components=9)


def test_head_scores_any_positive_multiple_of_an_embedding_the_same(taste_data):
    """SigLIP2's pooler_output has a norm of ~15, silva's backbone gives unit norm, pictoria stores
    either: a head must not care. Before, a demo head gave 0.709 for x and 0.991 for 15·x."""
    res = train(
        build_manifest(taste_data.embeddings, taste_data.ratings), TrainConfig(**SMALL_TRAIN), progress=False
    )
    scorer = Scorer(res.head, device="cpu")
    x = taste_data.embeddings[:64]
    base = scorer.score_embeddings(x)
    assert base.std() > 0.01  # a head that scores everything alike would pass trivially
    for c in (15.0, 0.01, 3.7):
        np.testing.assert_allclose(scorer.score_embeddings(c * x), base, atol=1e-6)
