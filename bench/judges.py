"""A published judge as a prior, on judges of known relatedness to the person.

    uv run --group bench python -m bench judges [--quick] [--judge-ratings 20000] [--seeds 0 1]

Each family taste gets public judges: second raters whose noiseless taste correlates with the
person's at rho in {0, 0.3, 0.6, 0.9} (the person's taste mixed with an independent taste of the
same family over the same images), each trained by silva's default on that rater's ratings of
other images and released, exactly as a published head would be. The person's head is then
trained at 100 to 3,000 ratings from scratch and with the judge as `prior`, and scored on 4,000
fresh images: Spearman / oracle and QWK / oracle, mean and worst over tastes and seeds, for the
judge alone, from scratch and with the judge; then the goals of issue 24 as measured.
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
from bench.tastes import FRESH, SIZES, TASTES, first_ratings, person, publish_judge
from silva_model.head import predict
from silva_model.metrics import qwk, spearman
from silva_model.train import train
from silva_model.train_config import TrainConfig

RHOS = (0.0, 0.3, 0.6, 0.9)
KINDS = ("judge alone", "from scratch", "with the judge")


def measure(
    name: str, seed: int, judges: dict[float, Path], sizes: tuple[int, ...], cfg: TrainConfig
) -> list:
    """(taste, seed, rho, size, kind, Spearman / oracle, QWK / oracle) for one person."""
    d = person(TASTES[name], seed, max(sizes))
    test = slice(-FRESH, None)
    xt, yt = d.embeddings[test], d.ratings[test]
    oracle = spearman(yt, d.taste[test]), qwk(yt, d.oracle_ratings[test])

    def fractions(head) -> tuple[float, float]:
        score, pred = predict(head, xt)
        return spearman(yt, score) / oracle[0], qwk(yt, pred) / oracle[1]

    from silva_model.release import load_head

    rows = []
    for rho, folder in judges.items():
        rows.append((name, seed, rho, 0, KINDS[0], *fractions(load_head(folder)[0])))
    for n in sizes:
        arrays = first_ratings(d, n)
        run = dataclasses.replace(cfg, seed=seed)
        scratch = fractions(train(arrays, run, progress=False).head)
        for rho, folder in judges.items():
            rows.append((name, seed, rho, n, KINDS[1], *scratch))
            judged = train(arrays, dataclasses.replace(run, prior=str(folder)), progress=False).head
            rows.append((name, seed, rho, n, KINDS[2], *fractions(judged)))
        print(f"  {name} seed={seed} n={n}: scratch {scratch[0]:.3f}", file=sys.stderr, flush=True)
    return rows


def ratings_to_reach(curve: dict[int, float], target: float) -> float:
    """Ratings a curve needs to reach `target`, interpolated in log(ratings); inf if it never does."""
    sizes = sorted(curve)
    if curve[sizes[0]] >= target:
        return float(sizes[0])
    for a, b in zip(sizes, sizes[1:], strict=False):
        if curve[b] >= target:
            t = (target - curve[a]) / (curve[b] - curve[a])
            return float(np.exp(np.log(a) + t * (np.log(b) - np.log(a))))
    return float("inf")


def report(rows: list, sizes: tuple[int, ...]) -> str:
    r = np.array([(rho, n, KINDS.index(k), sp, q) for _, _, rho, n, k, sp, q in rows])
    out, mean = [], {}
    for rho in RHOS:
        judge = r[(r[:, 0] == rho) & (r[:, 2] == 0)]
        for n in sizes:
            line = [rho, n]
            for k in (0, 1, 2):
                v = judge if k == 0 else r[(r[:, 0] == rho) & (r[:, 1] == n) & (r[:, 2] == k)]
                mean[(rho, n, k)] = float(v[:, 3].mean())
                line += [
                    float(v[:, 3].mean()),
                    float(v[:, 3].min()),
                    float(v[:, 4].mean()),
                    float(v[:, 4].min()),
                ]
            out.append(line)
    headers = ["rho", "ratings"] + [
        f"{kind}: {m}" for kind in KINDS for m in ("Spearman/oracle", "worst", "QWK/oracle", "worst")
    ]
    goals = []
    at0 = min(mean[(0.0, n, 2)] - mean[(0.0, n, 1)] for n in sizes)
    goals.append(
        f"- rho = 0: with the judge minus from scratch, lowest over sizes: {at0:+.3f} (goal >= -0.010)"
    )
    small = [n for n in sizes if 100 <= n <= 500]
    for rho in (0.6, 0.9):
        gap = min(mean[(rho, n, 2)] - max(mean[(rho, n, 0)], mean[(rho, n, 1)]) for n in small)
        goals.append(
            f"- rho = {rho}, {small[0]}-{small[-1]} ratings: with the judge minus the better of the judge "
            f"alone and from scratch, lowest over sizes: {gap:+.3f} (goal >= +0.030)"
        )
    if 1000 in sizes:
        need = ratings_to_reach({n: mean[(0.6, n, 2)] for n in sizes}, mean[(0.6, 1000, 1)])
        goals.append(
            f"- rho = 0.6: from scratch at 1,000 ratings reaches {mean[(0.6, 1000, 1)]:.3f}; with the judge "
            f"that takes {need:.0f} ratings: {1000 / need:.2f}x label efficiency (goal 4x)"
        )
    return table(headers, out) + "\n\nSpearman / oracle, mean over tastes x seeds:\n\n" + "\n".join(goals)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="two tastes, one seed, a 5,000-rating judge")
    p.add_argument("--judge-ratings", type=int, default=20_000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--tastes", nargs="+", default=list(TASTES))
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    a = p.parse_args(argv)
    cfg = TrainConfig(device="cpu")
    tastes, seeds, judge_n = a.tastes, a.seeds, a.judge_ratings
    if a.quick:
        tastes, seeds, judge_n = tastes[:2], seeds[:1], 5000
    sizes = tuple(sorted(a.sizes))
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in tastes:
            judges = {}
            for rho in RHOS:
                judges[rho] = publish_judge(TASTES[name], rho, judge_n, cfg, Path(tmp) / f"{name}-{rho}")
                print(f"  {name}: judge rho={rho} published", file=sys.stderr, flush=True)
            for seed in seeds:
                rows += measure(name, seed, judges, sizes, cfg)
    print(f"{len(tastes)} tastes x {len(seeds)} seeds, judges on {judge_n:,} ratings; {machine()}")
    print(report(rows, sizes))
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
