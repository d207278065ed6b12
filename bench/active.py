"""Active learning on the synthetic taste: does the rating queue beat rating at random?

    uv run --group bench python -m bench active [--quick]

A simulated rater (the planted taste plus rater noise) starts from 200 random ratings of a
20k-image pool; each round adds 100 ratings chosen by an acquisition rule (silva_model/active.py)
or at random, up to 2,000. After every round silva's default head is trained on what is rated
and scored on a fixed 5k test set, as Spearman / oracle. Label efficiency: the ratings each rule
needs to match random's quality at 2,000. Then the re-rate list: 5 % of 2,000 ratings moved by
±2, the out-of-fold disagreement list's precision at finding them, and the test gain after the
person corrects what it found.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import arrays_for, machine, table
from silva_model import active
from silva_model.head import predict
from silva_model.metrics import spearman
from silva_model.synthetic import make_taste_dataset
from silva_model.train import train
from silva_model.train_config import TrainConfig

POOL, TEST = 20_000, 5_000


@dataclasses.dataclass
class World:
    x: np.ndarray
    y: np.ndarray  # what the simulated rater gives
    x_test: np.ndarray
    y_test: np.ndarray
    oracle: float


def make_world(seed: int) -> World:
    d = make_taste_dataset(POOL + TEST, seed=seed)
    test = slice(POOL, None)
    return World(
        d.embeddings[:POOL],
        d.ratings[:POOL],
        d.embeddings[test],
        d.ratings[test],
        spearman(d.ratings[test], d.taste[test]),
    )


def fit(x: np.ndarray, y: np.ndarray, cfg: TrainConfig):
    return train(arrays_for(x, y), cfg, progress=False).head


def quality(w: World, head) -> float:
    return spearman(w.y_test, predict(head, w.x_test)[0]) / w.oracle


def run_rule(
    w: World, rule: str, seed: int, start: int, step: int, stop: int, cfg: TrainConfig
) -> list[float]:
    rng = np.random.default_rng(seed)
    rated = np.zeros(POOL, bool)
    if start:
        rated[rng.choice(POOL, start, replace=False)] = True
    else:  # from zero: the first batch has nothing to go on
        first = (
            rng.choice(POOL, step, replace=False) if rule == "random" else active.first_batch(w.x, step, seed)
        )
        rated[first] = True
    curve = []
    while True:
        idx = np.flatnonzero(rated)
        head = fit(w.x[idx], w.y[idx], cfg)
        curve.append(quality(w, head))
        if len(idx) >= stop:
            return curve
        pool = np.flatnonzero(~rated)
        probs = active.class_probabilities(head, w.x[pool])
        dis = None
        if rule == "disagreement-diverse":
            oof = active.out_of_fold(arrays_for(w.x[idx], w.y[idx]), cfg, folds=5)
            dis = active.disagreement(oof.heads, w.x[pool])
        pick = active.select_new(rule, step, probs, w.x[pool], dis, seed=seed * 1000 + len(idx))
        rated[pool[pick]] = True


def from_zero(seeds: int, step: int, stop: int, cfg: TrainConfig, rho: float, judge_n: int) -> str:
    """The queue from zero ratings, with and without a judge of relatedness rho (bench/judges.py):
    Spearman / oracle per round for random and the default rule, each from scratch and with the
    judge as prior, and the ratings each needs to match random-from-scratch at `stop`."""
    import tempfile

    from bench.tastes import TASTES, publish_judge
    from silva_model.release import load_head

    rule = active.DEFAULT_RULE
    with tempfile.TemporaryDirectory() as tmp:
        judge = publish_judge(TASTES["default"], rho, judge_n, cfg, Path(tmp) / "judge")
        with_judge = dataclasses.replace(cfg, prior=str(judge))
        runs = {
            "random": ("random", cfg),
            rule: (rule, cfg),
            "random + judge": ("random", with_judge),
            f"{rule} + judge": (rule, with_judge),
        }
        curves = {name: [] for name in runs}
        alone = []
        for s in range(seeds):
            w = make_world(s)
            alone.append(quality(w, load_head(judge)[0]))
            for name, (r, c) in runs.items():
                curves[name].append(run_rule(w, r, s, 0, step, stop, c))
                print(f"from zero, seed {s} {name}", file=sys.stderr, flush=True)
    mean = {name: np.mean(np.array(c), axis=0) for name, c in curves.items()}
    sizes = [step * (i + 1) for i in range(len(mean["random"]))]
    rows = [[n, *(float(mean[name][i]) for name in runs)] for i, n in enumerate(sizes)]
    out = [
        f"{seeds} seed(s). Judge: rho = {rho}, silva's default on {judge_n:,} of its rater's ratings; "
        f"the judge alone: {np.mean(alone):.3f} of the oracle. First batch: random, or spread over the "
        "library (k-center).\n",
        table(["ratings", *runs], rows),
    ]
    target = float(mean["random"][-1])
    need = [[name, matched_at(list(mean[name]), target, step, step)] for name in runs]
    out += [
        f"\nRatings needed to match random from scratch at {stop} (Spearman / oracle {target:.3f}):\n",
        table(
            ["rule", "ratings needed", "label efficiency"],
            [[n, v, f"{stop / int(v):.2f}x" if v.isdigit() else "< 1x"] for n, v in need],
        ),
    ]
    return "\n".join(out)


def matched_at(curve: list[float], target: float, start: int, step: int) -> str:
    for i, q in enumerate(curve):
        if q >= target:
            return str(start + i * step)
    return f"> {start + (len(curve) - 1) * step}"


def mistakes(w: World, seed: int, n: int, margin: float, cfg: TrainConfig) -> list[float]:
    """(planted, listed, precision, recall, quality before, after correcting the listed ones)."""
    rng = np.random.default_rng(seed + 7)
    idx = rng.choice(POOL, n, replace=False)
    x, true = w.x[idx], w.y[idx].copy()
    given = true.copy()
    planted = rng.choice(n, n // 20, replace=False)
    up = given[planted] + 2 <= 5
    given[planted] = np.where(up, given[planted] + 2, given[planted] - 2)
    oof = active.out_of_fold(arrays_for(x, given), cfg, folds=5)
    listed = active.rerate_candidates(given, oof.expected, margin)
    hits = np.intersect1d(listed, planted)
    before = quality(w, fit(x, given, cfg))
    fixed = given.copy()
    fixed[listed] = true[listed]  # the person looks again and gives their real rating
    after = quality(w, fit(x, fixed, cfg))
    precision = len(hits) / len(listed) if len(listed) else float("nan")
    return [len(planted), len(listed), precision, len(hits) / len(planted), before, after]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one seed, rounds to 600 (a few minutes)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--rules", nargs="+", default=list(active.RULES), choices=active.RULES)
    p.add_argument("--margin", type=float, default=1.5, help="re-rate margin (expected vs given rating)")
    p.add_argument(
        "--from-zero", action="store_true", help="only the queue from zero ratings, with and without a judge"
    )
    p.add_argument("--rho", type=float, default=0.6, help="--from-zero: the judge's relatedness")
    p.add_argument("--judge-ratings", type=int, default=20_000, help="--from-zero: the judge's ratings")
    a = p.parse_args(argv)
    if a.from_zero:
        t0 = time.perf_counter()
        stop = 500 if a.quick else 1000
        print(f"# The queue from zero ({machine()})\n")
        print(
            from_zero(1 if a.quick else a.seeds, 100, stop, TrainConfig(device="cpu"), a.rho, a.judge_ratings)
        )
        print(f"\ntotal {time.perf_counter() - t0:.0f} s")
        return
    start, step, stop = (200, 100, 600) if a.quick else (200, 100, 2000)
    seeds = 1 if a.quick else a.seeds
    cfg = TrainConfig(device="cpu")
    t0 = time.perf_counter()
    print(f"# Active learning (synthetic taste; {machine()})\n")
    curves = {r: [] for r in a.rules}
    for s in range(seeds):
        w = make_world(s)
        for r in a.rules:
            curves[r].append(run_rule(w, r, s, start, step, stop, cfg))
            print(f"seed {s} {r}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    mean = {r: np.mean(np.array(c), axis=0) for r, c in curves.items()}
    sizes = [start + i * step for i in range(len(mean[a.rules[0]]))]
    shown = [i for i, n in enumerate(sizes) if n in (200, 300, 500, 600, 800, 1000, 1500, 2000)]
    print(f"## Spearman / oracle by ratings (mean over {seeds} seed(s))\n")
    print(table(["ratings", *a.rules], [[sizes[i], *(float(mean[r][i]) for r in a.rules)] for i in shown]))
    if "random" in mean:
        target = float(mean["random"][-1])
        print(f"\n## Ratings needed to match random at {sizes[-1]} (Spearman / oracle {target:.3f})\n")
        rows = []
        for r in a.rules:
            need = matched_at(list(mean[r]), target, start, step)
            eff = f"{sizes[-1] / int(need):.2f}x" if need.isdigit() else "< 1x"
            rows.append([r, need, eff])
        print(table(["rule", "ratings needed", "label efficiency"], rows))
    n_mis = 600 if a.quick else 2000
    rows = [mistakes(make_world(s), s, n_mis, a.margin, cfg) for s in range(seeds)]
    m = np.mean(np.array(rows, dtype=float), axis=0)
    print(
        f"\n## Re-rate list: {n_mis} ratings, 5 % moved by ±2, margin {a.margin} "
        f"(mean over {seeds} seed(s))\n"
    )
    print(
        table(
            ["planted", "listed", "precision", "recall", "Spearman / oracle before", "after correcting"],
            [[int(m[0]), float(m[1]), float(m[2]), float(m[3]), float(m[4]), float(m[5])]],
        )
    )
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
