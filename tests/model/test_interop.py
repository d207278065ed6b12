"""silva-scorer heads load and score like silva-scorer's own code."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from silva_model import Scorer


@pytest.mark.parametrize("calibrated", [False, True])
def test_scorer_loads_a_silva_scorer_head_and_scores_like_its_own_code(tmp_path, calibrated, silva_scorer):
    N_CAL_KNOTS, EmbeddingAestheticModel = silva_scorer  # noqa: N806 - silva-scorer's own names

    torch.manual_seed(0)
    theirs = EmbeddingAestheticModel(1152, dropout=0.3, hidden_dims=[1024, 512, 256], n_residual_blocks=1)
    with torch.no_grad():
        theirs.head.base_threshold.fill_(-1.0)  # non-trivial thresholds, not the zeros of a fresh model
        theirs.head.raw_deltas.normal_()
    if calibrated:
        theirs.set_calibration(torch.linspace(-3, 3, N_CAL_KNOTS), torch.linspace(0, 1, N_CAL_KNOTS) ** 2)
    theirs.save_pretrained(tmp_path / "published")
    assert json.loads((tmp_path / "published" / "config.json").read_text())["hidden_dims"] == [1024, 512, 256]

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1152)).astype(np.float32)
    x *= 15.0 / np.linalg.norm(x, axis=1, keepdims=True)  # raw pooler_output scale
    with torch.no_grad():
        expected = theirs.eval()(torch.from_numpy(x))["calibrated_score"].numpy()

    scorer = Scorer.from_pretrained(tmp_path / "published", device="cpu")
    got = scorer.score_embeddings(x)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert got.std() > 1e-3
    np.testing.assert_allclose(scorer.score_embeddings(x / 15.0), got, atol=1e-5)  # unit-norm input too
    assert scorer.config.backbone.model == "google/siglip2-so400m-patch14-384"
    assert set(np.unique(scorer.predict(x)[1])) <= set(range(1, 6))
