"""How well does a small test split measure a head, against K-fold out-of-fold metrics?

    uv run --group bench python -m bench small_data [--quick]

For each family taste, size and seed: silva's default head is trained on n ratings (80/10/10
content-hashed splits) and scored on 4,000 fresh images of the same taste: that Spearman is the
truth. Its estimates: the test split's Spearman (about n/10 images) and the 5-fold out-of-fold
Spearman over all n ratings (`silva_model.active.out_of_fold`). Prints, per size, the mean and
worst absolute error of each estimate. Below the size where the test split's error falls under
the out-of-fold's, the evaluation report and the gate use the out-of-fold metrics.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from bench.common import table
from bench.tastes import TASTES
from silva_model.active import out_of_fold
from silva_model.head import predict
from silva_model.manifest import build_manifest, to_arrays
from silva_model.metrics import spearman
from silva_model.synthetic import make_taste_dataset
from silva_model.train import train
from silva_model.train_config import TrainConfig

FRESH = 4000


def one(n: int, seed: int, taste: dict) -> tuple[float, float, float, int]:
    """(truth, test-split estimate, out-of-fold estimate, test images)."""
    d = make_taste_dataset(n + FRESH, seed=seed, **taste)
    arrays = to_arrays(build_manifest(d.embeddings[:n], d.ratings[:n]))
    cfg = TrainConfig(device="cpu", seed=seed)
    head = train(arrays, cfg, progress=False).head
    truth = spearman(d.ratings[n:], predict(head, d.embeddings[n:])[0])
    x, y = arrays.subset("test")
    test = spearman(y, predict(head, x)[0]) if len(y) > 2 else float("nan")
    oof = out_of_fold(arrays, cfg, 5)
    return truth, test, spearman(arrays.scores, oof.score), len(y)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 tastes, 1 seed")
    p.add_argument("--sizes", type=int, nargs="+", default=[60, 120, 250, 500, 1000])
    a = p.parse_args(argv)
    tastes = dict(list(TASTES.items())[:2]) if a.quick else TASTES
    seeds = [0] if a.quick else [0, 1]
    started = time.perf_counter()
    rows = []
    for n in a.sizes:
        errs = {"test": [], "oof": []}
        test_rows = []
        for taste in tastes.values():
            for seed in seeds:
                truth, test, oof, n_test = one(n, seed, taste)
                errs["test"].append(abs(test - truth) if np.isfinite(test) else 1.0)
                errs["oof"].append(abs(oof - truth))
                test_rows.append(n_test)
        rows.append(
            (
                n,
                f"{np.mean(test_rows):.0f}",
                f"{np.mean(errs['test']):.3f}",
                f"{np.max(errs['test']):.3f}",
                f"{np.mean(errs['oof']):.3f}",
                f"{np.max(errs['oof']):.3f}",
            )
        )
        print(f"  n={n} done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    print(f"{len(tastes)} tastes x {len(seeds)} seeds; |estimate - Spearman on {FRESH:,} fresh images|\n")
    print(
        table(
            ["ratings", "test images", "test split: mean", "worst", "5-fold out-of-fold: mean", "worst"], rows
        )
    )
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
