"""Helpers every test directory uses: the tiny SigLIP, image files, quick training settings,
images in every mode, and stopping a server's process group."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
TINY_DIM = 48
# Training settings small enough for a test: one for learning checks, one for contract checks.
FAST_TRAIN = dict(epochs=6, batch_size=128, hidden=(128, 64), seed=3, device="cpu")
SMALL_TRAIN = dict(epochs=4, hidden=(64,), batch_size=128, device="cpu")


def save_tiny_siglip(folder: Path, hidden_size: int = TINY_DIM, seed: int = 0) -> Path:
    """A random SigLIP with the real architecture at toy size, saved with save_pretrained so it
    loads through AutoModel / AutoImageProcessor exactly like google/siglip2-so400m-patch14-384."""
    from silva_model.random_siglip import TEST_VISION_CONFIG, save_random_siglip

    config = {**TEST_VISION_CONFIG, "hidden_size": hidden_size, "intermediate_size": 2 * hidden_size}
    return save_random_siglip(folder, config, seed=seed)


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


def stop_process_group(proc: subprocess.Popen) -> None:
    """End a server started with `start_new_session=True`, and every process it spawned."""
    from silva_pipeline.stopping import stop_group

    stop_group(proc.pid, 30)
    proc.wait()


def descendants(pid: int) -> list[str]:
    """The command lines of the running processes `pid` started, and those they started."""
    import psutil

    commands = []
    for process in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if process.status() != psutil.STATUS_ZOMBIE:
                commands.append(" ".join(process.cmdline()))
    return commands


def mlflow_job_runners(pid: int) -> list[str]:
    """MLflow's job runner and huey consumers among what `pid` started (silva's servers have none)."""
    return [c for c in descendants(pid) if "huey" in c or "_job_runner" in c]


def as_a_script_backgrounds_it() -> None:
    """A `preexec_fn`: `command &` in a script, where a shell without job control starts background
    commands with Ctrl-C's signal ignored (and a child inherits that)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def alive(pid: int) -> bool:
    """A process that has neither ended nor become a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def image_modes(tmp_path: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """Files in each mode, with the RGB pixels they must decode to."""
    rng = np.random.default_rng(0)
    gray16 = rng.integers(0, 256, (48, 40)).astype(np.uint16) * 257
    rgb = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (48, 40), dtype=np.uint8)
    out = {}
    Image.fromarray(gray16).save(tmp_path / "gray16.png")
    out["I;16"] = (tmp_path / "gray16.png", np.repeat((gray16 >> 8).astype(np.uint8)[..., None], 3, 2))
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "rgba.png")
    out["RGBA"] = (tmp_path / "rgba.png", rgb)
    Image.fromarray(np.dstack([rgb[..., 0], alpha]), "LA").save(tmp_path / "la.png")
    out["LA"] = (tmp_path / "la.png", np.repeat(rgb[..., :1], 3, 2))
    pal = Image.fromarray(rgb).quantize(16)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "palette.png", transparency=0)
    out["P"] = (tmp_path / "palette.png", np.asarray(pal.convert("RGB")))
    return out


def populate_hub_cache(cache, repo_id, src, commit="0123456789abcdef0123456789abcdef01234567"):
    """The huggingface_hub cache layout: models--org--name/{refs/main, snapshots/<commit>/...}."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in src.iterdir():
        (snap / f.name).write_bytes(f.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


# Folders a checkout has besides what silva writes: tools and caches.
IGNORED = {".git", ".venv", ".pytest_cache", ".ruff_cache", "__pycache__", "node_modules"}


def files_under(root: Path) -> set[Path]:
    out = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in IGNORED]
        out.update(Path(folder, f) for f in files)
    return out


def decompression_bomb(path: Path, side: int = 20_000) -> Path:
    """A small PNG whose header says side x side pixels: above Pillow's decompression-bomb limit,
    which Pillow refuses with DecompressionBombError (no OSError) before decoding anything."""
    import io
    import struct
    import zlib

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    png = bytearray(buf.getvalue())
    png[16:24] = struct.pack(">II", side, side)  # IHDR's width and height
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))  # and its checksum
    path.write_bytes(bytes(png))
    return path
