"""Speed of silva against this machine's own limits, measured in one run.

    uv run python bench/speed.py [--quick]

- training: samples/s of a head epoch vs. the matmul FLOP/s torch reaches here (a head step
  costs about 6 x parameters FLOPs per sample), and wall time of a full default training;
- manifest: build + validate + write + read of 1M rows vs. numpy.save / numpy.load of the
  same array (the floor for moving those bytes);
- scoring: embeddings scored per second by `Scorer`;
- embedding: images/s of the SigLIP2-SO400M-384 tower (bf16 on CUDA, fp32 on the CPU) with real
  decoding of 1-2 MP JPEG/PNG files, vs. its forward-only rate on pre-decoded tensors (the
  ceiling), and the decode + preprocess rate alone. `--quick` on a CPU runs a 2-layer tower.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Timer, machine, table  # noqa: E402

from silva_model import HeadConfig, OrdinalHead, Scorer  # noqa: E402
from silva_model.backbone import SO400M_VISION_CONFIG  # noqa: E402
from silva_model.manifest import build_manifest, load_manifest, write_manifest  # noqa: E402
from silva_model.synthetic import make_taste_dataset  # noqa: E402
from silva_model.train import TrainConfig, train  # noqa: E402

SO400M_LAYERS = SO400M_VISION_CONFIG["num_hidden_layers"]


def matmul_flops(
    device: torch.device, dtype: torch.dtype, n: int = 2048, reps: int = 5, trials: int = 5
) -> float:
    """The best of several timed trials: a roofline is what the machine can reach, and the first
    trials of a fresh process (thread pools, clocks) or a noisy neighbour only pull a mean down."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(trials):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0))
    return best


def bench_training(sizes: list[int], epochs: int, device: torch.device) -> str:
    peak = matmul_flops(device, torch.float32)
    rows = []
    for n in sizes:
        d = make_taste_dataset(n, seed=0)
        arrays = load_manifest(build_manifest(d.embeddings, d.ratings))
        cfg = dataclasses.replace(TrainConfig(), epochs=epochs, device=device.type)
        res = train(arrays, cfg, progress=False)
        n_train = int(arrays.mask("train").sum())
        # per-epoch training time: total minus the per-epoch validation pass, measured separately
        with Timer() as t_val:
            from silva_model.head import predict

            predict(res.head, arrays.subset("val")[0])
        train_s = res.seconds - epochs * t_val.seconds
        sps = n_train * epochs / train_s
        # the head's size depends on the data (TrainConfig.input_components)
        params = sum(p.numel() for p in res.head.parameters())
        rows.append(
            [
                n,
                n_train,
                res.head.config.mlp_inputs,
                f"{params:,}",
                epochs,
                f"{res.seconds:.1f}",
                f"{sps:,.0f}",
                f"{6 * params * sps / 1e9:.1f}",
                f"{6 * params * sps / peak:.2f}",
            ]
        )
    head = (
        f"matmul roofline here: {peak / 1e9:.1f} GFLOP/s ({device.type}, fp32, 2048^3); "
        "a training sample costs 6 FLOP per head parameter\n\n"
    )
    return head + table(
        [
            "ratings",
            "train rows",
            "MLP inputs",
            "head parameters",
            "epochs",
            "wall s (full train)",
            "samples/s",
            "GFLOP/s",
            "fraction of roofline",
        ],
        rows,
    )


def bench_manifest(n: int, folder: Path) -> str:
    """The numpy floor first, then silva's path; the input array is freed before the read so a
    million rows fit in this machine's memory (the comparison uses content hashes)."""
    from silva_model.splits import content_hash

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 1152), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = rng.integers(1, 6, n)
    gb = x.nbytes / 1e9
    with Timer() as t_save:
        np.save(folder / "x.npy", x)
    with Timer() as t_load:
        x2 = np.load(folder / "x.npy")
    assert np.array_equal(x2, x)
    del x2
    with Timer() as t_build:
        tab = build_manifest(x, y, copy_rule=None)  # I/O only: grouping is timed apart
    with Timer() as t_write:
        write_manifest(tab, folder / "m.parquet")
    del tab
    expected = content_hash(x)
    del x
    with Timer() as t_read:
        arrays = load_manifest(folder / "m.parquet")  # read + convert + validate
    assert np.array_equal(arrays.content_hashes(), expected)
    del arrays
    extra = _read_peak_bytes(folder / "m.parquet") / (n * 1152 * 4)
    ours = t_build.seconds + t_write.seconds + t_read.seconds
    floor = t_save.seconds + t_load.seconds
    rows = [
        ["build (hash splits) + validate", f"{t_build.seconds:.2f}", f"{gb / t_build.seconds:.2f}"],
        ["write parquet (atomic)", f"{t_write.seconds:.2f}", f"{gb / t_write.seconds:.2f}"],
        ["read + validate", f"{t_read.seconds:.2f}", f"{gb / t_read.seconds:.2f}"],
        ["**total**", f"{ours:.2f}", f"{3 * gb / ours:.2f}"],
        ["numpy.save + numpy.load (floor)", f"{floor:.2f}", f"{2 * gb / floor:.2f}"],
    ]
    return (
        f"{n:,} rows x 1152 float32 = {gb:.2f} GB; silva total / numpy floor = {ours / floor:.2f}x; "
        f"parquet file {(folder / 'm.parquet').stat().st_size / 1e9:.2f} GB; peak memory of "
        f"`load_manifest` in a fresh process = {extra:.2f}x the array\n\n"
        + table(["step", "seconds", "GB/s"], rows)
    )


def _read_peak_bytes(path: Path) -> float:
    """Peak resident memory that `load_manifest` adds in a fresh process: VmHWM after the read
    minus VmRSS before it (not ru_maxrss, which a child inherits from this large parent)."""
    code = (
        "import sys\n"
        "from silva_model.manifest import load_manifest\n"
        "def kb(key):\n"
        "    line = next(x for x in open('/proc/self/status') if x.startswith(key))\n"
        "    return int(line.split()[1]) * 1024\n"
        "before = kb('VmRSS')\n"
        "a = load_manifest(sys.argv[1])\n"
        "print(kb('VmHWM') - before)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def bench_near_duplicates(sizes: list[int]) -> str:
    """Exact all-pairs near-duplicate grouping (what the manifest asset runs before splitting)."""
    from silva_model.copies import near_duplicate_groups

    rows = []
    for n in sizes:
        x = np.random.default_rng(0).standard_normal((n, 1152), dtype=np.float32)
        with Timer() as t:
            near_duplicate_groups(x)
        rows.append([f"{n:,}", f"{t.seconds:.1f}"])
    return table(["rows", "seconds"], rows)


def bench_scoring(n: int) -> str:
    scorer = Scorer(OrdinalHead(HeadConfig()).eval(), device="auto")
    x = np.random.default_rng(0).standard_normal((n, 1152), dtype=np.float32)
    scorer.score_embeddings(x[:1024])
    with Timer() as t:
        scorer.score_embeddings(x)
    return table(
        ["embeddings", "device", "seconds", "embeddings/s"],
        [[f"{n:,}", scorer.device.type, f"{t.seconds:.3f}", f"{n / t.seconds:,.0f}"]],
    )


def bench_library_scoring(n_library: int, rated: list[int]) -> tuple[str, float]:
    """What `library_scores` computes per library image: score, class probabilities, entropy, and
    the exact k-nearest-rated distance (which grows with the number of rated images)."""
    from silva_model.active import score_library

    head = OrdinalHead(HeadConfig()).eval()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n_library, 1152), dtype=np.float32)
    rows = []
    for n_rated in rated:
        r = rng.standard_normal((n_rated, 1152), dtype=np.float32)
        score_library(head, x[:1024], r[:2048])  # warm-up
        with Timer() as t:
            score_library(head, x, r)
        rate = n_library / t.seconds
        rows.append(
            [f"{n_library:,}", f"{n_rated:,}", f"{t.seconds:.1f}", f"{rate:,.0f}", _duration(1e6 / rate)]
        )
    first = n_library / float(rows[0][2])
    return table(["library images", "rated images", "seconds", "images/s", "1M images in"], rows), first


_WORKER = """
import json, sys, time
import torch
from silva_model.backbone import SiglipEmbedder
model, paths = sys.argv[1], json.loads(sys.argv[2])
torch.set_num_threads(int(sys.argv[3]))  # the cores shared out: workers must not oversubscribe
emb = SiglipEmbedder(model, device="auto", batch_size=16, num_workers=1)
emb.embed_paths(paths[:16])  # warm-up, outside the clock
t0 = time.time()
res = emb.embed_paths(paths)
print(json.dumps([t0, time.time(), len(res.indices)]))
"""


def bench_workers(
    n_images: int, n_shards: int, workers: list[int], folder: Path
) -> tuple[str, dict[int, float]]:
    """Embedding throughput against the number of worker processes, each taking whole shards of
    the same files (a small tower at the SO400M input size, so decode and preprocessing weigh as
    they do for real). Clocked from the first worker's start to the last one's end, after each
    has loaded its model: process start-up is not throughput."""
    import json

    from silva_model.backbone import save_random_siglip

    tower = save_random_siglip(
        folder / "small",
        {
            **SO400M_VISION_CONFIG,
            "num_hidden_layers": 2,
            "hidden_size": 256,
            "intermediate_size": 512,
            "num_attention_heads": 4,
        },
    )
    paths = [str(p) for p in _write_photos(folder / "photos", n_images)]
    shards = [paths[i::n_shards] for i in range(n_shards)]
    rates, rows = {}, []
    for w in workers:
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _WORKER,
                    str(tower),
                    json.dumps([p for s in shards[i::w] for p in s]),
                    str(max(1, (os.cpu_count() or 1) // w)),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(w)
        ]
        stamps = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        wall = max(e for _, e, _ in stamps) - min(t for t, _, _ in stamps)
        rates[w] = sum(n for *_, n in stamps) / wall
        rows.append([w, f"{wall:.1f}", f"{rates[w]:.1f}", f"{rates[w] / rates[workers[0]]:.2f}x"])
    head = f"{n_images} files in {n_shards} shards, {os.cpu_count()} CPU cores\n\n"
    return head + table(["workers", "seconds", "images/s", "speed-up"], rows), rates


def plan(per_gpu_rate: float | None, score_rate: float) -> str:
    """Hours to embed and score a library with G GPUs: embedding from the per-GPU rate of the full
    tower (measured only on a CUDA host), scoring from `library_scores`' measured rate."""
    rows = []
    for n in (1_000_000, 10_000_000):
        for g in (1, 4, 8):
            embed = f"{n / (g * per_gpu_rate) / 3600:.1f} h" if per_gpu_rate else "not measured (no GPU)"
            rows.append([f"{n:,}", g, embed, f"{n / score_rate / 3600:.2f} h"])
    return table(["images", "GPUs", "embed", "score (this machine's CPU)"], rows)


def _write_photos(folder: Path, n: int) -> list[Path]:
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


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def bench_embedding(n_images: int, batch_size: int, workers: int, layers: int, folder: Path) -> str:
    """Files end to end vs. the tower alone on pre-decoded tensors, plus the decode side alone:
    a GPU host needs `ceiling / per-thread decode rate` threads to keep the tower busy."""
    from concurrent.futures import ThreadPoolExecutor

    from silva_model.backbone import SiglipEmbedder, save_random_siglip

    cuda = torch.cuda.is_available()
    model_dir = save_random_siglip(
        folder / "so400m",
        {**SO400M_VISION_CONFIG, "num_hidden_layers": layers},
        dtype=torch.bfloat16 if cuda else torch.float32,
    )
    paths = [str(p) for p in _write_photos(folder / "photos", n_images)]
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
        ["decode + preprocess only, 1 thread", f"{decode_1:.1f}", _duration(1e4 / decode_1)],
        [f"decode + preprocess only, {workers} threads", f"{decode_n:.1f}", _duration(1e4 / decode_n)],
        ["forward only, pre-decoded tensors (ceiling)", f"{fwd:.2f}", _duration(1e4 / fwd)],
        ["files: decode + preprocess + forward", f"{e2e:.2f}", _duration(1e4 / e2e)],
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


# The text tower of google/siglip2-so400m-patch14-384 (its config.json): what loading the whole
# model paid for and the vision tower alone does not.
SO400M_TEXT_CONFIG = dict(
    hidden_size=1152,
    intermediate_size=4304,
    num_hidden_layers=27,
    num_attention_heads=16,
    vocab_size=256000,
    max_position_embeddings=64,
)


def _decode_with(pixels, path: str, draft: tuple[int, int] | None = None) -> np.ndarray:
    """Decode + preprocess + pixel signature, as the embedder's decode workers do."""
    from silva_model.backbone import load_rgb
    from silva_model.copies import pixel_signature

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


def bench_preprocess(n_images: int, folder: Path) -> str:
    """The CPU side that feeds the tower: decode + preprocess per core for today's path (the
    image processor), the exact fast path and the JPEG draft variant; threads against processes
    at 1 and 2 workers; the draft variant's agreement with the exact path; and the memory and
    load time of the whole model against the vision tower alone."""
    from functools import partial

    from transformers import SiglipConfig, SiglipModel, SiglipVisionModel

    from silva_model.backbone import SiglipEmbedder, load_rgb, save_random_siglip

    model_dir = save_random_siglip(folder / "one-layer", {**SO400M_VISION_CONFIG, "num_hidden_layers": 1})
    exact = SiglipEmbedder(model_dir, device="cpu")
    draft = SiglipEmbedder(model_dir, device="cpu", preprocess="draft")
    paths = [str(p) for p in _write_photos(folder / "photos", n_images)]
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


def _embedding_rate(folder: Path) -> float:
    """Files per second through the full SO400M tower on this CUDA device (bf16, 256 files)."""
    from silva_model.backbone import SiglipEmbedder, save_random_siglip

    model = save_random_siglip(folder / "so400m", SO400M_VISION_CONFIG, dtype=torch.bfloat16)
    paths = [str(p) for p in _write_photos(folder / "photos", 256)]
    emb = SiglipEmbedder(model, device="cuda", batch_size=64, num_workers=min(16, os.cpu_count() or 1))
    emb.embed_paths(paths[:64])
    with Timer() as t:
        emb.embed_paths(paths)
    return len(paths) / t.seconds


def _pixel_count(p: Path) -> int:
    from PIL import Image

    with Image.open(p) as im:
        return im.width * im.height


SECTIONS = (
    "training",
    "scoring",
    "library",
    "workers",
    "plan",
    "near-duplicates",
    "preprocess",
    "embedding",
    "manifest",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (< 2 minutes)")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, help="run these sections only")
    a = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    print(f"# silva speed bench{' (quick)' if a.quick else ''}\n\nmachine: {machine()}\n")
    only = set(a.only or SECTIONS)
    if "training" in only:
        print("## Training the head\n")
        print(
            bench_training(
                [5000] if a.quick else [20000, 100000], 2 if a.quick else TrainConfig().epochs, device
            ),
            "\n",
        )
    if "scoring" in only:
        print("## Scoring\n")
        print(bench_scoring(100_000 if a.quick else 1_000_000), "\n")
    score_rate = None
    if "library" in only:
        print("## Scoring the library (library_scores)\n")
        sizes = (20_000, [4_000]) if a.quick else (100_000, [4_000, 20_000])
        text, score_rate = bench_library_scoring(*sizes)
        print(text, "\n")
    if "workers" in only:
        print("## Embedding by number of workers (the same shards)\n")
        with tempfile.TemporaryDirectory() as tmp:
            text, _ = bench_workers(16 if a.quick else 64, 8, [1, 2], Path(tmp))
        print(text, "\n")
    if "plan" in only:
        score_rate = score_rate or bench_library_scoring(20_000, [4_000])[1]
        gpu_rate = None
        if device.type == "cuda":
            with tempfile.TemporaryDirectory() as tmp:
                gpu_rate = _embedding_rate(Path(tmp))
        print("## Plan: a whole library (scoring against 4,000 rated images)\n")
        print(plan(gpu_rate, score_rate), "\n")
    if "near-duplicates" in only:
        print("## Near-duplicate grouping\n")
        print(bench_near_duplicates([5_000] if a.quick else [20_000, 50_000]), "\n")
    if "preprocess" in only:
        print("## Feeding the tower: decode and preprocess on the CPU\n")
        with tempfile.TemporaryDirectory() as tmp:
            print(bench_preprocess(8 if a.quick else 32, Path(tmp)), "\n")
    if "embedding" in only:
        print("## Embedding (SigLIP2-SO400M-384 tower)\n")
        with tempfile.TemporaryDirectory() as tmp:
            if device.type == "cuda":
                args = (256, 64, min(16, os.cpu_count() or 1), SO400M_LAYERS)
            else:  # the full tower runs at well under 1 image/s on a few cores; --quick only checks the path
                args = (8, 4, os.cpu_count() or 1, 2 if a.quick else SO400M_LAYERS)
            print(bench_embedding(*args, Path(tmp)), "\n")
    if "manifest" in only:
        with tempfile.TemporaryDirectory() as tmp:
            print("## Manifest I/O (last: it needs the most memory)\n")
            print(bench_manifest(100_000 if a.quick else 1_000_000, Path(tmp)), "\n")
    print(f"total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
