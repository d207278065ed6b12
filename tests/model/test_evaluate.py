"""Evaluating a head on a split, and its report."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    FAST_TRAIN,
)

from silva_model import Scorer
from silva_model import evaluate as evaluate_mod
from silva_model.manifest import load_manifest
from silva_model.train import train
from silva_model.train_config import TrainConfig


def test_evaluate_report_and_release_roundtrip(manifest_path, tmp_path):
    res = train(manifest_path, TrainConfig(**{**FAST_TRAIN, "epochs": 3}), progress=False)
    rep = evaluate_mod.evaluate(res.head, manifest_path, "test")
    assert np.array(rep.confusion).sum() == rep.metrics["n"] == sum(rep.class_counts.values())
    table = evaluate_mod.format_report(rep)
    assert "| spearman |" in table and "given \\ predicted" in table

    release = Scorer(res.head, device="cpu").save_pretrained(
        tmp_path / "release", metrics={"test": rep.metrics}
    )
    assert sorted(p.name for p in release.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = (release / "README.md").read_text()
    assert "library_name: silva" in card and f"| {rep.metrics['spearman']:.4f} |" in card

    scorer = Scorer.from_pretrained(release, device="cpu")
    x, _ = load_manifest(manifest_path).subset("test")
    np.testing.assert_allclose(scorer.score_embeddings(x), rep.score, rtol=1e-5, atol=1e-6)
    assert scorer.score_embeddings(x).min() >= 0 and scorer.score_embeddings(x).max() <= 1
    with pytest.raises(ValueError, match=r"shape \(N, 1152\)"):
        scorer.score_embeddings(x[:, :10])
    x_bad = x[:3].copy()
    x_bad[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"rows \[1\] contain NaN"):
        scorer.score_embeddings(x_bad)


@pytest.mark.parametrize(
    ("given", "why"),
    [([4] * 15, "all given one rating: no order to measure"), ([1, 3, 5, 4], "too few to measure")],
)
def test_a_split_that_says_nothing_gets_a_reason_not_a_table_of_zeros(given, why):
    """Walker: the evaluation report gave a test split of 5 images, all rated 4, "spearman 0.0000",
    "pearson 0.0000" and "qwk 0.0000 [0, 0]": undefined, not zero."""
    y = np.array(given)
    score = np.linspace(0.2, 0.8, len(y))
    result = evaluate_mod.evaluation_of("test", y, score, np.full(len(y), 4))
    assert result.metrics["ratings_given"] == len(set(given))
    report = evaluate_mod.format_report(result)
    assert why in report and "| spearman |" not in report
    assert "given \\ predicted" in report  # what was given and predicted is still shown
