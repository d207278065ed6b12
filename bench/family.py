"""The family of tastes: every peer on every taste, size and seed, and the tables of fractions of
the oracle they print (also rebuilt from a log of fits)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import torch

from bench import common
from bench.common import Timer, evaluate, table
from bench.peers import (
    FAMILY_METHODS,
    make_data,
    method_fn,
)
from bench.tastes import TASTES
from silva_model.train_config import TrainConfig

# Up to 1,000 ratings the rows are scored on 4,000 fresh images of the taste instead of the test
# split (10 % of the ratings: 10 images at 100, 100 at 1,000, where chance would pick the winner).
FRESH_TEST_UPTO, FRESH_TEST = 1000, 4000


def _family_unit(
    unit: tuple[str, int, int], methods: tuple[str, ...], cfg: TrainConfig, device: str, threads: int
) -> list[tuple[str, int, int, str, float, float, float]]:
    """One (taste, size, seed): its data once, every method on it."""
    common.DEVICE = torch.device(device)
    torch.set_num_threads(threads)
    common.warm_up()
    name, n, seed = unit
    data = make_data(n, seed, fresh=FRESH_TEST if n <= FRESH_TEST_UPTO else 0, **TASTES[name])
    out = []
    for method in methods:
        with Timer() as t:
            m = evaluate(data.test[1], *method_fn(method)(data, seed, cfg))
        out.append(
            (
                name,
                n,
                seed,
                method,
                m["spearman"] / data.oracle_spearman,
                m["qwk"] / data.oracle_qwk,
                t.cpu_seconds,
            )
        )
        print(f"  {name} n={n} seed={seed} {method}: {out[-1][4:]}", file=sys.stderr, flush=True)
    return out


def family(
    sizes: list[int],
    seeds: list[int],
    cfg: TrainConfig,
    tastes: list[str],
    methods: tuple[str, ...] = FAMILY_METHODS,
    jobs: int = 1,
) -> list[tuple[str, int, int, str, float, float, float]]:
    """Every method on every taste of the family: one (taste, size, seed, method, Spearman / oracle,
    QWK / oracle, seconds) per fit, as `family_tables` and `goals` take them."""
    units = [(name, n, seed) for n in sorted(sizes) for name in tastes for seed in seeds]
    device = common.DEVICE.type
    threads = max(1, torch.get_num_threads() // jobs) if device == "cpu" else 1
    if jobs == 1:
        results = [_family_unit(u, methods, cfg, device, threads) for u in units]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            rest = [[methods] * len(units), [cfg] * len(units), [device] * len(units), [threads] * len(units)]
            results = list(pool.map(_family_unit, units, *rest))
    return [r for unit in results for r in unit]


FIT_LINE = re.compile(r"  (?P<taste>.+) n=(?P<n>\d+) seed=(?P<seed>\d+) (?P<method>\S+): \((?P<values>.+)\)$")


def fits_from_log(path: Path) -> list[tuple[str, int, int, str, float, float, float]]:
    """The per-fit lines a family run prints on stderr, read back: a run cut short by a time limit
    still yields the tables of what it finished (`--family-from-log`)."""
    fits = []
    for line in path.read_text().splitlines():
        m = FIT_LINE.match(line)
        if m and m["taste"] in TASTES:
            sp, q, sec = (float(v) for v in m["values"].split(","))
            fits.append((m["taste"], int(m["n"]), int(m["seed"]), m["method"], sp, q, sec))
    return fits


def family_tables(fits: list[tuple[str, int, int, str, float, float, float]], device: str) -> str:
    """Per size: each method's mean and worst fraction of the oracle over tastes x seeds, the rows
    it wins and loses, and its fit time; per (taste, size) row: each method's mean ± sd over seeds,
    the winner, and whether the first method is first or within one sd (the winner's) of first.
    Only (taste, size) rows that every method finished for the same seeds are counted."""
    res: dict[tuple[str, int, str], dict[int, tuple[float, float, float]]] = {}
    for name, n, seed, method, sp, q, sec in fits:
        res.setdefault((name, n, method), {})[seed] = (sp, q, sec)
    # silva's peers in their usual order, then the variants as they first appear
    methods = sorted(
        dict.fromkeys(f[3] for f in fits),
        key=lambda m: FAMILY_METHODS.index(m) if m in FAMILY_METHODS else len(FAMILY_METHODS),
    )
    sizes = sorted({f[1] for f in fits})
    tastes = [t for t in TASTES if any(f[0] == t for f in fits)]
    complete = {}
    for name in tastes:
        for n in sizes:
            seeds = [set(res.get((name, n, m), {})) for m in methods]
            common_seeds = sorted(set.intersection(*seeds)) if seeds else []
            if common_seeds:
                complete[(name, n)] = {
                    m: np.array([res[(name, n, m)][s] for s in common_seeds]) for m in methods
                }
    rows, summary = [], []
    won = {(n, m): 0 for n in sizes for m in methods}
    last = dict(won)
    for (name, n), v in complete.items():
        mean = {m: float(v[m][:, 0].mean()) for m in methods}
        best = max(mean, key=mean.get)
        won[(n, best)] += 1
        last[(n, min(mean, key=mean.get))] += 1
        close = mean[best] - mean[methods[0]] <= float(v[best][:, 0].std())
        spread = (f"{mean[m]:.3f} ± {v[m][:, 0].std():.3f}" for m in methods)
        rows.append([name, n, len(v[best]), *spread, best, "yes" if close else "no"])
    for n in sizes:
        for m in methods:
            parts = [vals[m] for (_, size), vals in complete.items() if size == n]
            if not parts:
                continue
            v = np.concatenate(parts)
            summary.append(
                [
                    n,
                    m,
                    float(v[:, 0].mean()),
                    float(v[:, 0].min()),
                    float(v[:, 1].mean()),
                    float(v[:, 1].min()),
                    won[(n, m)],
                    last[(n, m)],
                    f"{v[:, 2].mean():.1f}",
                ]
            )
    return (
        table(
            [
                "ratings",
                "method",
                "Spearman / oracle, mean",
                "worst",
                "QWK / oracle, mean",
                "worst",
                "tastes won",
                "tastes last",
                f"CPU s / fit ({device})",
            ],
            summary,
        )
        + "\n\nSpearman / oracle per taste (mean ± sd over seeds):\n\n"
        + table(["taste", "ratings", "seeds", *methods, "best", f"{methods[0]} first or within 1 sd"], rows)
    )


def goals(fits: list[tuple[str, int, int, str, float, float, float]], default: str, today: str) -> str:
    """The cold start's goals per size, from the same fits: per taste, the default's mean
    Spearman / oracle against the best peer's (the methods not named silva), and against today's
    default; whether it is first or within 0.005, its largest shortfall, whether it is the worst
    method on any taste, and its fit time against today's."""
    res: dict[tuple[str, int, str], list[tuple[float, float]]] = {}
    for name, n, _, method, sp, _, sec in fits:
        res.setdefault((name, n, method), []).append((sp, sec))
    rows = []
    for n in sorted({f[1] for f in fits}):
        gaps, to_today, worst, times = [], [], 0, {default: [], today: []}
        for name in TASTES:
            mean = {m: np.mean(v, axis=0) for (t, size, m), v in res.items() if t == name and size == n}
            peers = [m for m in mean if not m.startswith("silva")]
            if default not in mean or not peers:
                continue
            best = max(peers, key=lambda m: mean[m][0])
            gaps.append((mean[default][0] - mean[best][0], name, best))
            if today in mean:
                to_today.append(mean[default][0] - mean[today][0])
                times[today].append(mean[today][1])
            times[default].append(mean[default][1])
            worst += min(mean, key=lambda m: mean[m][0]) == default
        if not gaps:
            continue
        short = min(gaps)
        ratio = np.mean(times[default]) / np.mean(times[today]) if times[today] else float("nan")
        rows.append(
            [
                n,
                len(gaps),
                float(np.mean([g for g, *_ in gaps])),
                sum(g >= -0.005 for g, *_ in gaps),
                f"{short[0]:+.3f} ({short[1]}, {short[2]})",
                worst,
                f"{np.mean(to_today):+.3f}" if to_today else "-",
                f"{ratio:.2f}",
            ]
        )
    return table(
        [
            "ratings",
            "tastes",
            f"{default} - best peer, mean",
            "first or within 0.005",
            "largest shortfall (taste, peer)",
            "tastes where worst",
            f"- {today}, mean",
            "fit time / today's",
        ],
        rows,
    )
