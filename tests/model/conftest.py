"""Fixtures the model tests share: an embedder on the tiny SigLIP, a release on it, a manifest,
and the real silva-scorer package."""

from __future__ import annotations

import os

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


SILVA_SCORER = "silva-scorer==0.4.0"


@pytest.fixture(scope="session")
def silva_scorer(tmp_path_factory):
    """The real `silva-scorer` package, installed beside (not into) this environment: it ships a
    console script also named `silva`, which would shadow silva's own CLI in the project's venv."""
    import shutil
    import subprocess
    import sys

    target = tmp_path_factory.mktemp("silva-scorer")
    uv = os.environ.get("UV") or shutil.which("uv")
    out = subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--no-deps",
            "--target",
            str(target),
            "--python",
            sys.executable,
            SILVA_SCORER,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    sys.path.insert(0, str(target))
    try:
        from silva.models.aesthetic import N_CAL_KNOTS, EmbeddingAestheticModel

        yield N_CAL_KNOTS, EmbeddingAestheticModel
    finally:
        sys.path.remove(str(target))
        for name in [m for m in sys.modules if m == "silva" or m.startswith("silva.")]:
            del sys.modules[name]
