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
