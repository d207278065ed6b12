"""Embedding speed: decode + preprocess per core, worker scaling, embedder memory and load time,
and on CUDA the tower's ceiling by batch size and the end-to-end rate."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from bench.common import Timer, table
from bench.speed_common import SO400M_LAYERS, SO400M_TEXT_CONFIG, matmul_flops
from silva_model.random_siglip import SO400M_VISION_CONFIG


def write_photos(folder: Path, n: int) -> list[Path]:
    """1-2 MP JPEG and PNG files with smooth structure plus noise (not trivially compressible)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        w, h = (1280, 1024) if i % 2 else (1600, 1200)
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(xx * (i + 1)) % 256, (yy * 3) % 256, ((xx + yy) // 4) % 256], -1)
        img = (base + rng.integers(0, 40, (h, w, 3))).clip(0, 255).astype(np.uint8)
        p = folder / f"img{i:04d}.{'jpg' if i % 2 else 'png'}"
        Image.fromarray(img).save(p, quality=92) if p.suffix == ".jpg" else Image.fromarray(img).save(p)
        paths.append(p)
    return paths


def duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def bench_embedding(n_images: int, batch_size: int, workers: int, layers: int, folder: Path) -> str:
    """Files end to end vs. the tower alone on pre-decoded tensors, plus the decode side alone:
    a GPU host needs `ceiling / per-thread decode rate` threads to keep the tower busy."""
    from concurrent.futures import ThreadPoolExecutor

    from silva_model.backbone import SiglipEmbedder
    from silva_model.random_siglip import save_random_siglip

    cuda = torch.cuda.is_available()
    model_dir = save_random_siglip(
        folder / "so400m",
        {**SO400M_VISION_CONFIG, "num_hidden_layers": layers},
        dtype=torch.bfloat16 if cuda else torch.float32,
    )
    paths = [str(p) for p in write_photos(folder / "photos", n_images)]
    emb = SiglipEmbedder(model_dir, device="auto", batch_size=batch_size, num_workers=workers)

    def decode_rate(threads: int, reps: int = 3) -> float:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(emb._load_pixels, paths[:threads]))  # warm-up
            with Timer() as t:
                for _ in range(reps):
                    list(pool.map(emb._load_pixels, paths))
        return reps * len(paths) / t.seconds

    decode_1, decode_n = decode_rate(1), decode_rate(workers)
    px = torch.randn(batch_size, 3, 384, 384)
    emb.embed_pixels(px)  # warm-up (kernels, allocator)
    reps = max(1, n_images // batch_size)
    with Timer() as t_fwd:
        for _ in range(reps):
            emb.embed_pixels(px)  # returns host numpy: each call waits for the device
    fwd = reps * batch_size / t_fwd.seconds
    emb.embed_paths(paths[:batch_size])  # warm the decode path
    with Timer() as t_e2e:
        res = emb.embed_paths(paths)
    assert not res.failures
    e2e = len(paths) / t_e2e.seconds
    mp = sum(_pixel_count(p) for p in paths) / len(paths) / 1e6
    tower = "the full tower" if layers == SO400M_LAYERS else "a code-path check"
    ceiling = (
        _ceiling_by_batch(emb, layers)
        if cuda
        else "tower ceiling by batch size: not measured (no CUDA device)"
    )
    rows = [
        ["decode + preprocess only, 1 thread", f"{decode_1:.1f}", duration(1e4 / decode_1)],
        [f"decode + preprocess only, {workers} threads", f"{decode_n:.1f}", duration(1e4 / decode_n)],
        ["forward only, pre-decoded tensors (ceiling)", f"{fwd:.2f}", duration(1e4 / fwd)],
        ["files: decode + preprocess + forward", f"{e2e:.2f}", duration(1e4 / e2e)],
    ]
    return (
        f"device {emb.device.type}, {emb.dtype}, {layers} of {SO400M_LAYERS} layers ({tower}), "
        f"batch {batch_size}, {workers} decode threads, "
        f"{len(paths)} files (JPEG and PNG) of {mp:.1f} MP on average\n\n"
        + table(["path", "images/s", "10k images in"], rows)
        + f"\n\nfiles / ceiling = {e2e / fwd:.2f}; "
        f"decode threads needed to keep up with the ceiling: {math.ceil(fwd / decode_1)}\n\n{ceiling}"
    )


def _image_flops(layers: int) -> float:
    """Forward FLOPs of one 384 px image through `layers` SO400M layers (plus the pooling head's
    share, ignored): 2 x weights x tokens for the matmuls, plus attention's two token x token ones."""
    c = SO400M_VISION_CONFIG
    tokens = (c["image_size"] // c["patch_size"]) ** 2
    d, mlp = c["hidden_size"], c["intermediate_size"]
    per_layer = 2 * tokens * (4 * d * d + 2 * d * mlp) + 4 * tokens * tokens * d
    return layers * per_layer


def _ceiling_by_batch(emb, layers: int) -> str:
    """On CUDA: the tower's images/s on pre-decoded tensors by batch size, and its share of the
    bf16 matmul rate this device reaches (the practical peak)."""
    peak = matmul_flops(emb.device, torch.bfloat16, n=8192)
    rows = []
    for batch in (16, 32, 64, 128, 256):
        px = torch.randn(batch, 3, 384, 384)
        emb.embed_pixels(px)
        with Timer() as t:
            for _ in range(4):
                emb.embed_pixels(px)
        rate = 4 * batch / t.seconds
        rows.append([str(batch), f"{rate:.0f}", f"{rate * _image_flops(layers) / peak:.2f}"])
    return f"bf16 matmul peak reached here: {peak / 1e12:.0f} TFLOP/s\n\n" + table(
        ["batch", "tower images/s", "share of the bf16 peak"], rows
    )


def _decode_with(pixels, path: str, draft: tuple[int, int] | None = None) -> np.ndarray:
    """Decode + preprocess + pixel signature, as the embedder's decode workers do."""
    from silva_model.copies import pixel_signature
    from silva_model.images import load_rgb

    image = load_rgb(path, draft)
    pixel_signature(image)
    return pixels(image)


def _rate(fn, paths: list[str], workers: int = 1, processes: bool = False, trials: int = 3) -> float:
    """Files/s through `fn` on `workers` threads or processes: the best of `trials` passes (what
    the machine can do; a noisy neighbour only pulls a mean down)."""
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    pool_type = ProcessPoolExecutor if processes else ThreadPoolExecutor
    best = 0.0
    with pool_type(workers) as pool:
        list(pool.map(fn, paths[: workers * 2]))  # warm-up (and process start)
        for _ in range(trials):
            with Timer() as t:
                list(pool.map(fn, paths))
            best = max(best, len(paths) / t.seconds)
    return best


def _load_cost(model_dir: Path, vision_only: bool) -> tuple[float, float]:
    """(seconds, MB of resident memory added) to load the model, in a fresh process; every weight
    is read once, so weights memory-mapped from the file count too."""
    code = (
        "import time, psutil, torch\n"
        "from transformers import AutoModel\n"
        "from silva_model.backbone import _load_vision_tower\n"
        "import transformers.models.siglip.modeling_siglip  # imports are not the load\n"
        "rss = psutil.Process().memory_info().rss; t = time.perf_counter()\n"
        + (
            f"m = _load_vision_tower({str(model_dir)!r}, torch.float32)\n"
            if vision_only
            else f"m = AutoModel.from_pretrained({str(model_dir)!r}, attn_implementation='sdpa')\n"
        )
        + "seconds = time.perf_counter() - t\n"
        + "sum(float(p.float().sum()) for p in m.state_dict().values())\n"
        + "print(seconds, (psutil.Process().memory_info().rss - rss) / 2**20)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, mb = out.stdout.split()[-2:]
    return float(seconds), float(mb)


def _tower_memory(folder: Path) -> list[list[str]]:
    """Parameters, load time and resident memory of the whole SigLIP against its vision tower alone."""
    from transformers import SiglipConfig, SiglipModel, SiglipVisionModel

    layers = 4  # of 27 per tower, at the real widths and vocabulary: a checkpoint this machine can write fast
    real = SiglipConfig(
        vision_config={**SO400M_VISION_CONFIG, "num_hidden_layers": layers},
        text_config={**SO400M_TEXT_CONFIG, "num_hidden_layers": layers},
    )
    SiglipModel(real).save_pretrained(folder / "two-towers")
    load_whole, load_vision = (
        _load_cost(folder / "two-towers", False),
        _load_cost(folder / "two-towers", True),
    )
    full = SiglipConfig(vision_config=SO400M_VISION_CONFIG, text_config=SO400M_TEXT_CONFIG)
    with torch.device("meta"):
        whole_params = sum(p.numel() for p in SiglipModel(full).parameters())
        vision_params = sum(p.numel() for p in SiglipVisionModel(full.vision_config).parameters())
    memory = [
        [
            "parameters, full SO400M (bf16 GB)",
            f"{whole_params * 2 / 1e9:.2f}",
            f"{vision_params * 2 / 1e9:.2f}",
            f"{vision_params / whole_params:.2f}",
        ],
        [
            f"load time, {layers}-layer towers (s)",
            f"{load_whole[0]:.2f}",
            f"{load_vision[0]:.2f}",
            f"{load_vision[0] / load_whole[0]:.2f}",
        ],
        [
            f"resident memory added, {layers}-layer towers fp32 (MB)",
            f"{load_whole[1]:.0f}",
            f"{load_vision[1]:.0f}",
            f"{load_vision[1] / load_whole[1]:.2f}",
        ],
    ]
    return memory


def bench_preprocess(n_images: int, folder: Path) -> str:
    """The CPU side that feeds the tower: decode + preprocess per core for today's path (the
    image processor), the exact fast path and the JPEG draft variant; threads against processes
    at 1 and 2 workers; the draft variant's agreement with the exact path; and the memory and
    load time of the whole model against the vision tower alone."""
    from functools import partial

    from silva_model.backbone import SiglipEmbedder
    from silva_model.images import load_rgb
    from silva_model.random_siglip import save_random_siglip

    model_dir = save_random_siglip(folder / "one-layer", {**SO400M_VISION_CONFIG, "num_hidden_layers": 1})
    exact = SiglipEmbedder(model_dir, device="cpu")
    draft = SiglipEmbedder(model_dir, device="cpu", preprocess="draft")
    paths = [str(p) for p in write_photos(folder / "photos", n_images)]
    jpegs = [p for p in paths if p.endswith(".jpg")]

    def processor(image):
        return exact.processor(images=image, return_tensors="np")["pixel_values"][0]

    today = partial(_decode_with, processor)
    fast = partial(_decode_with, exact.fast_pixels)
    drafted = partial(_decode_with, exact.fast_pixels, draft=draft.draft)
    r_today, r_fast = _rate(today, paths), _rate(fast, paths)
    r_today_j, r_fast_j, r_draft_j = _rate(today, jpegs), _rate(fast, jpegs), _rate(drafted, jpegs)
    r_decode, r_decode_j = _rate(load_rgb, paths), _rate(load_rgb, jpegs)
    rows = [
        ["decode alone (the floor of any exact path)", f"{r_decode:.1f}", f"{r_decode_j:.1f}", "-"],
        ["today: the image processor", f"{r_today:.1f}", f"{r_today_j:.1f}", "1.00"],
        [
            "exact: one PIL resize + NumPy (the same pixels)",
            f"{r_fast:.1f}",
            f"{r_fast_j:.1f}",
            f"{r_fast / r_today:.2f}",
        ],
        [
            "draft (opt-in): JPEG decoded at 1/2-1/8 scale",
            "-",
            f"{r_draft_j:.1f}",
            f"{r_draft_j / r_today_j:.2f} (JPEG)",
        ],
    ]
    scaling = []
    for processes in (False, True):
        one, two = _rate(fast, paths, 1, processes), _rate(fast, paths, 2, processes)
        scaling.append(
            ["processes" if processes else "threads", f"{one:.1f}", f"{two:.1f}", f"{two / one:.2f}"]
        )
    px_exact = np.stack([exact._load_pixels(p) for p in jpegs])
    px_draft = np.stack([draft._load_pixels(p) for p in jpegs])
    cos = (exact.embed_pixels(px_exact) * exact.embed_pixels(px_draft)).sum(1)
    diff = np.abs(px_draft - px_exact)
    agreement = (
        f"draft vs exact on {len(jpegs)} JPEGs: mean |pixel difference| {diff.mean():.4f} (pixels in "
        f"[-1, 1]), max {diff.max():.3f}; embedding cosine through a random 1-layer SO400M tower min "
        f"{cos.min():.4f}, mean {cos.mean():.4f} (a random tower says little about the real one: measure "
        "on your own images before opting in)"
    )

    memory = _tower_memory(folder)
    mp = sum(_pixel_count(Path(p)) for p in paths) / len(paths) / 1e6
    return (
        f"{len(paths)} files (JPEG and PNG) of {mp:.1f} MP on average; decode + preprocess + pixel "
        "signature, one core\n\n"
        + table(["path", "images/s, all files", "images/s, JPEG", "vs today"], rows)
        + "\n\nworkers (exact path, all files)\n\n"
        + table(["workers are", "1 worker", "2 workers", "2 / 1"], scaling)
        + f"\n\n{agreement}\n\nthe embedder's model: the whole SigLIP against the vision tower alone\n\n"
        + table(["", "whole model", "vision tower", "tower / whole"], memory)
    )


def embedding_rate(folder: Path) -> float:
    """Files per second through the full SO400M tower on this CUDA device (bf16, 256 files)."""
    from silva_model.backbone import SiglipEmbedder
    from silva_model.random_siglip import save_random_siglip

    model = save_random_siglip(folder / "so400m", SO400M_VISION_CONFIG, dtype=torch.bfloat16)
    paths = [str(p) for p in write_photos(folder / "photos", 256)]
    emb = SiglipEmbedder(model, device="cuda", batch_size=64, num_workers=min(16, os.cpu_count() or 1))
    emb.embed_paths(paths[:64])
    with Timer() as t:
        emb.embed_paths(paths)
    return len(paths) / t.seconds


def _pixel_count(p: Path) -> int:
    from PIL import Image

    with Image.open(p) as im:
        return im.width * im.height
