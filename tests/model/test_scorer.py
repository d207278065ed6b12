"""Scorer: files scored with the head's backbone, and another backbone refused."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    TINY_DIM,
    save_tiny_siglip,
    write_images,
)

from silva_model import HeadConfig, OrdinalHead, Scorer
from silva_model.backbone import SiglipEmbedder
from silva_model.cli import main
from silva_model.drawings import illustration
from silva_model.release import save_pretrained


def test_scorer_scores_files_with_the_heads_backbone(tiny_release, tmp_path):
    scorer = Scorer.from_pretrained(tiny_release, device="cpu")
    paths = write_images(tmp_path, 3)
    batch, scores = scorer.score_paths(paths, scorer.embedder())
    assert batch.indices == [0, 1, 2] and scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))


@pytest.fixture(scope="module")
def other_backbone(tmp_path_factory):
    return save_tiny_siglip(tmp_path_factory.mktemp("other-siglip"), seed=1)


def test_silva_score_refuses_a_head_from_another_backbone_unless_told(
    tiny_backbone, other_backbone, tmp_path, capsys
):

    spec = SiglipEmbedder(tiny_backbone, device="cpu").spec
    head = save_pretrained(
        OrdinalHead(HeadConfig(embed_dim=TINY_DIM, hidden=(8,), backbone=spec)), tmp_path / "h"
    )
    img = tmp_path / "a.png"
    illustration(np.random.default_rng(0)).save(img)
    assert main(["score", str(img), "--head", str(head), "--device", "cpu"]) == 0
    capsys.readouterr()
    args = ["score", str(img), "--head", str(head), "--device", "cpu", "--backbone", str(other_backbone)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "trained on embeddings of" in err and "weights" in err and "--allow-backbone-mismatch" in err
    assert main([*args, "--allow-backbone-mismatch"]) == 0
