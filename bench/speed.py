"""Speed of silva against this machine's own limits, measured in one run.

    uv run --group bench python -m bench speed [--quick]

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
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.common import Timer, machine, table
from bench.embedding_speed import (
    bench_embedding,
    bench_preprocess,
    duration,
    embedding_rate,
    write_photos,
)
from bench.speed_common import SO400M_LAYERS, matmul_flops
from silva_model import HeadConfig, OrdinalHead, Scorer
from silva_model.manifest import build_manifest, load_manifest
from silva_model.parquet import write_parquet
from silva_model.random_siglip import SO400M_VISION_CONFIG
from silva_model.synthetic import make_taste_dataset
from silva_model.train import train
from silva_model.train_config import TrainConfig


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


def _timed(step: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, tuple[float, float]]:
    """(step's result, (wall seconds, CPU seconds of this process: user + system)). The CPU time
    is what other jobs on a shared machine do not stretch; the wall time is what a person waits."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = step(*args, **kwargs)
    return out, (time.perf_counter() - wall, time.process_time() - cpu)


def bench_manifest(n: int, folder: Path) -> str:
    """The numpy floor first, then silva's path: the manifest in the open layout the contract
    names (`write_parquet`), and for comparison in the same run the cache's private byte layout
    (`write_cache_parquet`, what manifests used before). The input array is freed before the
    reads so a million rows fit in this machine's memory (the comparison uses content hashes)."""
    import pyarrow.parquet as pq

    from silva_model.parquet import write_cache_parquet
    from silva_model.splits import content_hash

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 1152), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = rng.integers(1, 6, n)
    gb = x.nbytes / 1e9
    path, byte_rows = folder / "m.parquet", folder / "bytes.parquet"
    _, save = _timed(np.save, folder / "x.npy", x)
    x2, load = _timed(np.load, folder / "x.npy")
    assert np.array_equal(x2, x)
    del x2
    tab, build = _timed(build_manifest, x, y, copy_rule=None)  # I/O only: grouping is timed apart
    _, write = _timed(write_parquet, tab, path)
    _, write_b = _timed(write_cache_parquet, tab, byte_rows)
    del tab
    expected = content_hash(x)
    del x
    times = {"build": build, "write": write, "write_b": write_b, "floor": np.add(save, load)}
    for name, file in (("read", path), ("read_b", byte_rows)):
        arrays, times[name] = _timed(load_manifest, file)  # read + convert + validate
        assert np.array_equal(arrays.content_hashes(), expected)
        del arrays
    extra = _read_peak_bytes(path) / (n * 1152 * 4)
    ours = np.add(np.add(build, write), times["read"])
    bytes_total = np.add(np.add(build, write_b), times["read_b"])
    floor = times["floor"]

    def row(step: str, t: tuple[float, float], moved: float) -> list[str]:
        return [step, f"{t[0]:.2f}", f"{t[1]:.2f}", f"{moved / t[0]:.2f}"]

    rows = [
        row("build (hash splits) + validate", build, gb),
        row("write parquet (atomic)", write, gb),
        row("read + validate", times["read"], gb),
        row("**total**", ours, 3 * gb),
        row("numpy.save + numpy.load (floor)", floor, 2 * gb),
        row("byte layout: write", write_b, gb),
        row("byte layout: read + validate", times["read_b"], gb),
        row("byte layout: total", bytes_total, 3 * gb),
    ]
    return (
        f"{n:,} rows x 1152 float32 = {gb:.2f} GB; silva total / numpy floor = {ours[0] / floor[0]:.2f}x "
        f"wall, {ours[1] / floor[1]:.2f}x CPU (the byte layout: {bytes_total[0] / floor[0]:.2f}x wall, "
        f"{bytes_total[1] / floor[1]:.2f}x CPU); parquet file {path.stat().st_size / 1e9:.2f} GB, "
        f"`embedding` stored as `{pq.read_schema(path).field('embedding').type}`; peak memory of "
        f"`load_manifest` in a fresh process = {extra:.2f}x the array\n\n"
        + table(["step", "seconds", "CPU s", "GB/s"], rows)
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
    """What `library_scores` computes per library image: score, class probabilities, entropy, the
    exact k-nearest-rated distance and the nearest rated images with their ratings (one search,
    which grows with the number of rated images)."""
    from silva_model.active import score_library

    head = OrdinalHead(HeadConfig()).eval()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n_library, 1152), dtype=np.float32)
    rows = []
    for n_rated in rated:
        r = rng.standard_normal((n_rated, 1152), dtype=np.float32)
        ratings = rng.integers(1, 6, n_rated)
        score_library(head, x[:1024], r[:2048], ratings[:2048])  # warm-up
        with Timer() as t:
            score_library(head, x, r, ratings)
        rate = n_library / t.seconds
        rows.append(
            [f"{n_library:,}", f"{n_rated:,}", f"{t.seconds:.1f}", f"{rate:,.0f}", duration(1e6 / rate)]
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

    from silva_model.random_siglip import save_random_siglip

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
    paths = [str(p) for p in write_photos(folder / "photos", n_images)]
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (< 2 minutes)")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, help="run these sections only")
    a = ap.parse_args(argv)
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
                gpu_rate = embedding_rate(Path(tmp))
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
