"""Fixtures the model tests share: an embedder on the tiny SigLIP, a release on it, a manifest."""

from __future__ import annotations

import pytest
from helpers import TINY_DIM

from silva_model.head import HeadConfig, OrdinalHead
from silva_model.manifest import build_manifest
from silva_model.parquet import write_parquet
from silva_model.release import save_pretrained


@pytest.fixture(scope="module")
def embedder(tiny_backbone):
    from silva_model.backbone import SiglipEmbedder

    return SiglipEmbedder(tiny_backbone, device="cpu", batch_size=3, num_workers=2)


@pytest.fixture(scope="module")
def tiny_release(tiny_backbone, tmp_path_factory):
    head = OrdinalHead(HeadConfig(embed_dim=TINY_DIM, hidden=(16,), backbone=str(tiny_backbone)))
    return save_pretrained(head, tmp_path_factory.mktemp("rel") / "head")


@pytest.fixture(scope="module")
def manifest_path(taste_data, tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "manifest.parquet"
    return write_parquet(build_manifest(taste_data.embeddings, taste_data.ratings), path)
