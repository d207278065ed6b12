"""How far blending a from-scratch head with a judge can go: an upper bound for the prior.

    uv run --group bench python -m bench judge_blend [--rho 0.6] [--sizes 250 500 1000] [--seeds 0 1]

For each family taste, a judge of relatedness rho (as in bench/judges.py) and the person's head
trained from scratch on n ratings (the same people and test images as bench/judges.py) are
blended as z(head) + w z(judge), with w chosen on the 4,000 fresh test images themselves, out of
reach of any method that sees only the ratings. What the prior reaches (bench/judges.py) is
compared with this bound: a prior above it is using the judge for more than a second opinion.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import machine, table
from bench.tastes import FRESH, SIZES, TASTES, first_ratings, person, publish_judge, standard
from silva_model.head import predict
from silva_model.metrics import spearman
from silva_model.release import load_head
from silva_model.train import train
from silva_model.train_config import TrainConfig

WEIGHTS = np.linspace(0.0, 3.0, 61)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rho", type=float, default=0.6)
    p.add_argument("--judge-ratings", type=int, default=20_000)
    p.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    a = p.parse_args(argv)
    cfg = TrainConfig(device="cpu")
    t0 = time.perf_counter()
    rows: dict[int, list[tuple[float, float, float]]] = {n: [] for n in a.sizes}
    with tempfile.TemporaryDirectory() as tmp:
        for name, taste in TASTES.items():
            judge = load_head(publish_judge(taste, a.rho, a.judge_ratings, cfg, Path(tmp) / name))[0]
            for seed in a.seeds:
                d = person(taste, seed, max(SIZES))  # judges.py's people
                xt, yt = d.embeddings[-FRESH:], d.ratings[-FRESH:]
                oracle = spearman(yt, d.taste[-FRESH:])
                j = standard(predict(judge, xt)[0])
                for n in a.sizes:
                    run = dataclasses.replace(cfg, seed=seed)
                    head = train(first_ratings(d, n), run, progress=False).head
                    s = standard(predict(head, xt)[0])
                    blend = max(spearman(yt, s + w * j) for w in WEIGHTS)
                    rows[n].append((spearman(yt, s) / oracle, spearman(yt, j) / oracle, blend / oracle))
                print(f"  {name} seed={seed}", file=sys.stderr, flush=True)
    judged = f"a rho = {a.rho} judge on {a.judge_ratings:,} ratings"
    print(f"{len(TASTES)} tastes x {len(a.seeds)} seeds, {judged}; {machine()}")
    means = {n: np.mean(v, axis=0) for n, v in rows.items()}
    header = ["ratings", "from scratch", "judge alone", "best blend (weight chosen on the test images)"]
    print(table(header, [[n, *map(float, means[n])] for n in a.sizes]))
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
