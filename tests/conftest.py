"""Shared fixtures: a tiny, randomly initialised SigLIP saved like a real checkpoint, image
files (some broken), and a small synthetic rated set."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach the Hub
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

TINY_DIM = 48


def save_tiny_siglip(folder: Path, hidden_size: int = TINY_DIM, seed: int = 0) -> Path:
    """A random SigLIP with the real architecture at toy size, saved with save_pretrained so it
    loads through AutoModel / AutoImageProcessor exactly like google/siglip2-so400m-patch14-384."""
    from silva_model.backbone import save_random_siglip

    return save_random_siglip(
        folder,
        dict(
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        ),
        seed=seed,
    )


@pytest.fixture(autouse=True)
def _no_leaked_tracking_uri(monkeypatch):
    """`mlflow.set_tracking_uri` also exports MLFLOW_TRACKING_URI, which the `mlflow` resource reads
    as its default: without this, one test's MLflow database would leak into the next test."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    return save_tiny_siglip(tmp_path_factory.mktemp("tiny-siglip"))


def write_images(folder: Path, n: int, seed: int = 0, size: tuple[int, int] = (40, 56)) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"img_{seed}_{i:03d}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


@pytest.fixture(scope="session")
def taste_data():
    from silva_model.synthetic import make_taste_dataset

    return make_taste_dataset(3000, seed=0)


ROOT = Path(__file__).resolve().parent.parent


def stop_process_group(proc: subprocess.Popen) -> None:
    """End a server started with `start_new_session=True`, and every process it spawned."""
    import signal

    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


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
