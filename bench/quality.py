"""Quality of silva's head against peer methods on synthetic personal taste.

    uv run --group bench python -m bench quality [--quick]

Every method sees the same embeddings, the same content-hashed splits, selects on val and is
reported on test, as a fraction of the oracle (the noiseless taste: Spearman of the taste
against the given ratings, QWK of the taste cut at the same bars). Torch peers get the same
input standardisation, optimiser, schedule, epochs and best-epoch selection as silva; the
weight EMA is part of silva's own recipe (see the ablation) and is not given to them.
Regression methods (ridge, LAION MLP) predict a class by rounding their output.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench import common
from bench.common import Timer, evaluate, machine, table
from bench.family import family, family_tables, fits_from_log, goals
from bench.peers import (
    COLD_METHODS,
    COLD_SIZES,
    FAMILY_METHODS,
    METHODS,
    Data,
    make_data,
    select_ridge,
    silva,
    silva_on,
)
from bench.tastes import TASTES
from silva_model.metrics import level_bias, spearman
from silva_model.pairs import Pairs
from silva_model.train_config import TrainConfig


def compare(sizes: list[int], seeds: list[int], cfg: TrainConfig, mord_max: int) -> str:
    rows = []
    for n in sizes:
        per: dict[str, list[tuple[float, float, float]]] = {}
        for seed in seeds:
            data = make_data(n, seed)
            for name, fn in METHODS.items():
                if name.startswith("mord") and n > mord_max:
                    continue
                with Timer() as t:
                    score, pred = fn(data, seed, cfg)
                m = evaluate(data.test[1], score, pred)
                per.setdefault(name, []).append(
                    (m["spearman"] / data.oracle_spearman, m["qwk"] / data.oracle_qwk, t.seconds)
                )
                print(
                    f"  n={n} seed={seed} {name}: spearman {m['spearman']:.3f} qwk {m['qwk']:.3f} "
                    f"({t.seconds:.1f}s)",
                    file=sys.stderr,
                )
        for name, vals in per.items():
            v = np.array(vals)
            rows.append(
                [
                    n,
                    name,
                    len(v),
                    float(v[:, 0].mean()),
                    float(v[:, 0].std()),
                    float(v[:, 1].mean()),
                    float(v[:, 1].std()),
                    f"{v[:, 2].mean():.1f}",
                ]
            )
    return table(
        ["ratings", "method", "seeds", "Spearman / oracle", "±sd", "QWK / oracle", "±sd", "s / fit"], rows
    )


ABLATION = [
    (
        "plain cumulative-logit MLP (batch 256)",
        dict(standardize_inputs=False, threshold_init="uniform", batch_size=256, ema_epochs=0.0),
    ),
    ("+ input standardisation", dict(batch_size=256, threshold_init="uniform", ema_epochs=0.0)),
    ("+ thresholds from the train split's class rates", dict(batch_size=256, ema_epochs=0.0)),
    ("+ batch 512", dict(ema_epochs=0.0)),
    ("+ EMA of the weights over one epoch (silva default)", dict()),
    ("+ per-threshold class balancing (optional)", dict(class_balance=True)),
]


def ablation(n: int, seeds: list[int], cfg: TrainConfig) -> str:
    rows = []
    for label, change in ABLATION:
        vals = []
        for seed in seeds:
            data = make_data(n, seed)
            m = evaluate(data.test[1], *silva(data, seed, dataclasses.replace(cfg, **change)))
            vals.append((m["spearman"] / data.oracle_spearman, m["qwk"] / data.oracle_qwk))
        v = np.array(vals)
        rows.append([label, float(v[:, 0].mean()), float(v[:, 1].mean())])
        print(f"  ablation {label}: {rows[-1][1:]}", file=sys.stderr)
    return table([f"silva head at {n} ratings", "Spearman / oracle", "QWK / oracle"], rows)


def learning_curve(sizes: list[int], seed: int, cfg: TrainConfig) -> str:
    rows = []
    for n in sizes:
        data = make_data(n, seed)
        m = evaluate(data.test[1], *silva(data, seed, cfg))
        rows.append(
            [n, len(data.train[1]), float(m["spearman"]), float(m["spearman"] / data.oracle_spearman)]
        )
        print(f"  curve n={n}: {rows[-1][2:]}", file=sys.stderr)
    return table(["ratings", "train", "test Spearman", "/ oracle"], rows)


def ceiling(sizes: list[int], seeds: list[int], cfg: TrainConfig, tastes: list[str]) -> str:
    """How far the family's goals are from what a learner can reach. The same silva head is
    given the embeddings, then the taste's own generating inputs (one-hot style and latent: what
    the embedding encodes, without the mixing and noise); a ridge fit on the exact terms the taste
    is a linear combination of is the bound of a model that knows the taste's form."""
    rows = []
    for n in sizes:
        every = []
        for name in tastes:
            vals = []
            for seed in seeds:
                data = make_data(n, seed, **TASTES[name])
                g = data.generated
                inputs = g.generating_inputs().astype(np.float32)
                on_inputs = dataclasses.replace(data.arrays, embeddings=inputs, _hashes=None)
                scores = (
                    silva(data, seed, cfg)[0],
                    silva_on(on_inputs, inputs[on_inputs.mask("test")], seed, cfg)[0],
                    select_ridge(data, g.generator_terms(), tuple(np.logspace(-1, 4, 11))),
                )
                vals.append([spearman(data.test[1], s) / data.oracle_spearman for s in scores])
                print(f"  ceiling {name} n={n} seed={seed}: {vals[-1]}", file=sys.stderr, flush=True)
            v = np.array(vals)
            every.append(v)
            rows.append([name, n, *(f"{m:.3f} ± {s:.3f}" for m, s in zip(v.mean(0), v.std(0), strict=True))])
        v = np.concatenate(every)
        rows.append(["every taste", n, *(f"{m:.3f}" for m in v.mean(0))])
    return table(
        ["taste", "ratings", "silva (embeddings)", "silva (style + latent)", "ridge, taste's own terms"], rows
    )


def simulated_pairs(data: Data, count: int, noise: float, seed: int) -> Pairs:
    """`count` judgements between random train images, made by the same rater as the ratings: each
    side is seen as taste + noise, and a difference under 0.1 is called a tie."""
    rng = np.random.default_rng([seed, count, 7])
    a, b = rng.choice(np.flatnonzero(data.arrays.mask("train")), (2, count))
    keep = a != b
    a, b = a[keep], b[keep]
    seen = data.taste[a] - data.taste[b] + noise * np.sqrt(2) * rng.standard_normal(len(a))
    return Pairs(a, b, np.where(np.abs(seen) < 0.1, 0.0, np.sign(seen)).astype(np.float32))


def pairs_gain(n: int, counts: list[int], seeds: list[int], tastes: list[str], cfg: TrainConfig) -> str:
    """Spearman / oracle with simulated pairwise judgements on top of n ratings."""
    rows = []
    every: dict[int, list[tuple[float, float]]] = {c: [] for c in counts}
    for name in tastes:
        vals: dict[int, list[tuple[float, float]]] = {c: [] for c in counts}
        for seed in seeds:
            data = make_data(n, seed, **TASTES[name])
            for c in counts:
                pairs = simulated_pairs(data, c, TASTES[name].get("noise", 0.5), seed) if c else None
                m = evaluate(data.test[1], *silva(data, seed, cfg, pairs))
                vals[c].append((m["spearman"] / data.oracle_spearman, m["qwk"] / data.oracle_qwk))
                print(f"  pairs {name} seed={seed} {c}: {vals[c][-1]}", file=sys.stderr, flush=True)
        for c in counts:
            v = np.array(vals[c])
            rows.append([name, c, float(v[:, 0].mean()), float(v[:, 0].std()), float(v[:, 1].mean())])
            every[c].extend(vals[c])
    for c in counts:
        v = np.array(every[c])
        rows.append(["every taste", c, float(v[:, 0].mean()), float(v[:, 0].std()), float(v[:, 1].mean())])
    return table(["taste", "pairs", "Spearman / oracle", "±sd", "QWK / oracle"], rows)


def per_level_bias(n: int, seed: int, cfg: TrainConfig) -> str:
    """Regression to the mean, measured: the default head's mean expected rating per given rating."""
    data = make_data(n, seed)
    score, _ = silva(data, seed, cfg)
    rows = [[c, k, mean, mean - c] for c, (k, mean) in level_bias(data.test[1], score).items()]
    return table(["given rating", "test images", "mean expected rating", "bias"], rows)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one seed, small sizes (< 2 minutes)")
    p.add_argument(
        "--family",
        action="store_true",
        help="also every method on the whole family of tastes, 1k-20k ratings, 3 seeds (hours on a CPU)",
    )
    p.add_argument("--family-only", action="store_true", help="the family section alone")
    p.add_argument(
        "--cold-start",
        action="store_true",
        help=f"the family alone at {', '.join(map(str, COLD_SIZES))} ratings with the default, today's "
        "MLP and the peers that lead there (mord, ridge, a plain cumulative MLP), and the goals",
    )
    p.add_argument(
        "--pairs-only", action="store_true", help="the pairwise-judgement section alone (3,000 ratings)"
    )
    p.add_argument(
        "--ceiling-only",
        action="store_true",
        help="the ceiling section alone: silva on embeddings vs on the taste's generating inputs",
    )
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="OPTIONS",
        help="also silva with these training options in the family, e.g. 'members=5;hidden=[512]'",
    )
    p.add_argument("--sizes", type=int, nargs="+", help="family sizes (default: 1000 3000 6000 20000)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="family seeds")
    p.add_argument(
        "--family-from-log",
        nargs="+",
        type=Path,
        metavar="LOG",
        help="print the family tables from the per-fit lines of earlier runs' stderr, and stop",
    )
    p.add_argument(
        "--methods", nargs="+", help="family methods (default: silva and its peers, then the variants)"
    )
    p.add_argument("--tastes", nargs="+", choices=list(TASTES), help="family tastes (default: all)")
    p.add_argument("--jobs", type=int, default=1, help="family units (taste, size, seed) run in parallel")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the torch methods train")
    return p


def _family_section(a: argparse.Namespace, cfg: TrainConfig) -> str:
    """The family tables (and, with silva and today's MLP among the methods, the cold start's goals)."""
    cold = a.cold_start
    if a.quick:
        sizes, seeds, tastes = [1000], [0], list(TASTES)[:2]
    else:
        sizes = a.sizes or list(COLD_SIZES if cold else (1000, 3000, 6000, 20000))
        seeds, tastes = a.seeds, a.tastes or list(TASTES)
    methods = (
        *(a.methods or (COLD_METHODS if cold else FAMILY_METHODS)),
        *(f"silva[{v}]" for v in a.variant),
    )
    fits = family(sizes, seeds, cfg, tastes, methods, a.jobs)
    out = [f"## The family of tastes ({len(tastes)} tastes, seeds {seeds})\n", family_tables(fits, a.device)]
    return "\n".join(out + _goals(fits))


def _goals(fits: list) -> list[str]:
    methods = {f[3] for f in fits}
    if not {"silva", "silva[model=mlp]"} <= methods:
        return []
    return [
        "\n### The cold start's goals (Spearman / oracle, mean over seeds per taste)\n",
        goals(fits, "silva", "silva[model=mlp]"),
    ]


def main(argv: list[str] | None = None) -> None:
    a = _parser().parse_args(argv)
    common.DEVICE = torch.device(a.device)
    if a.family_from_log:
        fits = [f for log in a.family_from_log for f in fits_from_log(log)]
        fits = [f for f in fits if not a.methods or f[3] in a.methods]
        print("\n".join([family_tables(fits, "per log"), *_goals(fits)]))
        return
    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = TrainConfig()
    t0 = time.perf_counter()
    if a.quick:
        sizes, seeds, curve, abl_n, mord_max = [1500], [0], [250, 500, 1000], 1500, 1500
        cfg = dataclasses.replace(cfg, epochs=10)
    else:
        sizes, seeds, curve, abl_n, mord_max = (
            [3000, 20000],
            [0, 1, 2],
            [250, 500, 1000, 2000, 5000, 10000],
            3000,
            3000,
        )
    print(
        f"# silva quality bench{' (quick)' if a.quick else ''}\n\nmachine: {machine()}, device {a.device}\n"
        f"head config: {cfg.to_dict()}\n"
    )
    if a.pairs_only:
        print("## Pairwise judgements on top of 3,000 ratings (simulated, same rater noise)\n")
        print(pairs_gain(3000, [0, 500, 2000], a.seeds, a.tastes or list(TASTES), cfg), "\n")
    elif a.ceiling_only:
        print("## How far a learner can go: the same head on the taste's own inputs (Spearman / oracle)\n")
        print(ceiling(a.sizes or [1000, 3000, 6000, 20000], a.seeds, cfg, a.tastes or list(TASTES)), "\n")
    else:
        only = a.family_only or a.cold_start
        if not only:
            print("## Methods (test split, fraction of the oracle; mean over seeds)\n")
            print(compare(sizes, seeds, cfg, mord_max), "\n")
        if a.quick or a.family or only:
            print(_family_section(a, cfg), "\n")
        if not only:
            print("## What each head change buys\n")
            print(ablation(abl_n, seeds, cfg), "\n")
            print(f"## Per-level bias at {abl_n} ratings (seed {seeds[0]})\n")
            print(per_level_bias(abl_n, seeds[0], cfg), "\n")
            print("## Learning curve: how many images must I rate?\n")
            print(learning_curve(curve, seeds[0], cfg), "\n")
    print(f"total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
