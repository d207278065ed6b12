"""Fixtures for every test: its own data root, a tiny random SigLIP saved like a real
checkpoint, a small synthetic rated set, the lean wheel and Chromium (helpers: support/)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, save_tiny_siglip

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach the Hub
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
os.environ.pop("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", None)  # the tests check silva's own default


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The end-to-end tests first, then the other slow ones: with -n auto the long tests start
    while the short ones can still fill in around them, so no worker is left running one alone
    at the end (the README's, one group, go first of all: --dist loadgroup)."""
    items.sort(key=lambda item: ("/e2e/" not in item.nodeid, item.get_closest_marker("slow") is None))


@pytest.fixture(autouse=True)
def silva_home(tmp_path, monkeypatch) -> Path:
    """Every test's own data root (one setting moves every file silva writes) and demo workspace.
    The variables the demo's commands set in-process are restored after each test."""
    for name in ("DAGSTER_HOME", "SILVA_SOURCE", "SILVA_LIBRARY_SOURCE", "SILVA_RATINGS", "SILVA_LIBRARY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SILVA_DEMO_HOME", str(tmp_path / "demo-home"))
    monkeypatch.setenv("SILVA_HOME", str(tmp_path / "silva-home"))
    return tmp_path / "silva-home"


@pytest.fixture(autouse=True)
def _no_leaked_tracking_uri(monkeypatch):
    """`mlflow.set_tracking_uri` also exports MLFLOW_TRACKING_URI, which the `mlflow` resource reads
    as its default: without this, one test's MLflow database would leak into the next test."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    return save_tiny_siglip(tmp_path_factory.mktemp("tiny-siglip"))


@pytest.fixture(scope="session")
def taste_data():
    from silva_model.synthetic import make_taste_dataset

    return make_taste_dataset(3000, seed=0)


@pytest.fixture(scope="session")
def lean_wheel_venv(tmp_path_factory) -> Callable[[str], Path]:
    """`pip install silva[extras]` as a user does it: the wheel built from this checkout, installed
    with the given extras ("", "[pipeline]", ...) into a clean venv. Versions are pinned to
    uv.lock, so uv serves them from its cache; each venv is made once per session."""
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is needed to build the wheel (.ci/run installs it)"
    tmp = tmp_path_factory.mktemp("wheel")
    venvs: dict[str, Path] = {}

    def run(*cmd: object) -> None:
        out = subprocess.run([str(c) for c in cmd], cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stderr[-3000:]
        return out

    def make(extras: str) -> Path:
        if not venvs:
            run(uv, "build", "--wheel", "--out-dir", tmp / "dist")
            pins = run(uv, "export", "--frozen", "--no-hashes", "--no-emit-project", "--all-extras")
            (tmp / "constraints.txt").write_text(pins.stdout)
        if extras not in venvs:
            (wheel,) = (tmp / "dist").glob("silva-*.whl")
            venv = tmp / f"venv{len(venvs)}"
            run(uv, "venv", "--python", sys.executable, venv)
            run(
                uv,
                "pip",
                "install",
                "--python",
                venv / "bin" / "python",
                "--link-mode",
                "symlink",
                f"silva{extras} @ {wheel.as_uri()}",
                "-c",
                tmp / "constraints.txt",
            )
            venvs[extras] = venv
        return venvs[extras]

    return make


@pytest.fixture
def browser():
    """Chromium through playwright (see browser_support)."""
    from browser_support import chromium
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="session")
def copies(tiny_backbone):
    """60 originals and a copy of each of every kind: {kind: (embeddings, signatures)}, and the
    originals' own under "original"."""
    from PIL import Image

    from silva_model.backbone import SiglipEmbedder
    from silva_model.copies import pixel_signature
    from silva_model.copy_kinds import COPY_KINDS
    from silva_model.drawings import illustration

    rng = np.random.default_rng(0)
    originals = [illustration(rng) for _ in range(60)]
    embedder = SiglipEmbedder(tiny_backbone, device="cpu")

    def both(images: list[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        return embedder.embed_images(images), np.stack([pixel_signature(im) for im in images])

    out = {kind: both([make(im) for im in originals]) for kind, make in COPY_KINDS.items()}
    out["original"] = both(originals)
    return out
