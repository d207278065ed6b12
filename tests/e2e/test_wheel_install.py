"""The lean wheel scores without the pipeline's dependencies."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    TINY_DIM,
    write_images,
)

from silva_model.backbone import SiglipEmbedder
from silva_model.head import HeadConfig, OrdinalHead
from silva_model.manifest import build_manifest
from silva_model.parquet import write_parquet
from silva_model.release import save_pretrained

pytestmark = pytest.mark.slow


def _run(*cmd: str | Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)


def test_the_lean_wheel_scores_a_local_release(lean_wheel_venv, tiny_backbone, tmp_path):
    venv = lean_wheel_venv("")
    py, silva = venv / "bin" / "python", venv / "bin" / "silva"
    for absent in ("dagster", "mlflow", "polars", "matplotlib"):
        probe = _run(
            py, "-c", f"import importlib.util as u; raise SystemExit(u.find_spec('{absent}') is not None)"
        )
        assert probe.returncode == 0, f"{absent} was installed without the pipeline extra"

    spec = SiglipEmbedder(tiny_backbone, device="cpu").spec
    release = save_pretrained(
        OrdinalHead(HeadConfig(embed_dim=TINY_DIM, hidden=(8,), backbone=spec)), tmp_path / "r"
    )
    rng = np.random.default_rng(0)
    manifest = write_parquet(
        build_manifest(
            rng.standard_normal((200, TINY_DIM)).astype(np.float32), rng.integers(1, 6, 200), dim=TINY_DIM
        ),
        tmp_path / "m.parquet",
    )
    scored = _run(silva, "score-manifest", manifest, "--head", release, "--json", cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    assert '"n": 200' in scored.stdout
    imgs = write_images(tmp_path / "imgs", 3)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    scored = _run(
        silva, "score", tmp_path / "imgs", "--head", release, "--device", "cpu", cwd=tmp_path, env=env
    )
    assert scored.returncode == 0, scored.stderr
    assert len(scored.stdout.splitlines()) == len(imgs)

    pipeline = _run(py, "-c", "import silva_pipeline", cwd=tmp_path)
    assert pipeline.returncode != 0
    assert "pip install 'silva[pipeline]'" in pipeline.stderr
