"""Quality of silva's head against peer methods on synthetic personal taste.

    uv run --group bench python bench/quality.py [--quick]

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
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import recipe  # noqa: E402
from common import Timer, evaluate, fit_torch, machine, mlp, table, tensor  # noqa: E402

from silva_model.head import predict  # noqa: E402
from silva_model.manifest import ManifestArrays, build_manifest, to_arrays  # noqa: E402
from silva_model.metrics import level_bias, qwk, spearman  # noqa: E402
from silva_model.pairs import Pairs  # noqa: E402
from silva_model.synthetic import TasteData, make_taste_dataset  # noqa: E402
from silva_model.train import TrainConfig, train  # noqa: E402

Split = tuple[np.ndarray, np.ndarray]


@dataclasses.dataclass
class Data:
    train: Split
    val: Split
    test: Split
    oracle_spearman: float
    oracle_qwk: float
    arrays: ManifestArrays  # all rows, in the taste's order
    generated: TasteData  # what the taste was made of: its noiseless value, styles and latents

    @property
    def taste(self) -> np.ndarray:
        return self.generated.taste


# The family of tastes silva must win on: rater noise 0.3-0.8, 8-24 style clusters, latent rank
# 16-64, a non-linear share of 0-50 % and balanced or skewed rating mixes, each in its own world.
TASTES: dict[str, dict] = {
    "default": {},
    "noisy, many styles, linear": dict(
        noise=0.8, n_clusters=24, rank=64, weights=(0.7, 0.3, 0.0), world_seed=11
    ),
    "clean, few styles, non-linear": dict(
        noise=0.3, n_clusters=8, rank=16, weights=(0.3, 0.2, 0.5), world_seed=12
    ),
    "skewed high (2/8/40/35/15)": dict(mix=(0.02, 0.08, 0.40, 0.35, 0.15), noise=0.6, world_seed=13),
    "skewed low (20/30/30/15/5)": dict(mix=(0.20, 0.30, 0.30, 0.15, 0.05), n_clusters=16, world_seed=14),
    "cluster-driven": dict(weights=(0.2, 0.6, 0.2), n_clusters=20, rank=24, noise=0.5, world_seed=15),
}


def make_data(n: int, seed: int, **taste) -> Data:
    d = make_taste_dataset(n, seed=seed, **taste)
    a = to_arrays(build_manifest(d.embeddings, d.ratings))
    test = a.mask("test")
    return Data(
        a.subset("train"),
        a.subset("val"),
        a.subset("test"),
        spearman(d.ratings[test], d.taste[test]),
        qwk(d.ratings[test], d.oracle_ratings[test]),
        a,
        d,
    )


# --- methods: each returns (test score, test predicted class) ---------------------------------


def silva(
    data: Data, seed: int, cfg: TrainConfig, pairs: Pairs | None = None
) -> tuple[np.ndarray, np.ndarray]:
    return silva_on(data.arrays, data.test[0], seed, cfg, pairs)


def silva_on(
    arrays: ManifestArrays, x_test: np.ndarray, seed: int, cfg: TrainConfig, pairs: Pairs | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """silva trained on these rows, scoring x_test."""
    run_cfg = dataclasses.replace(cfg, seed=seed, device=common.DEVICE.type)
    return predict(train(arrays, run_cfg, progress=False, pairs=pairs).head, x_test)


def _standardize(data: Data, features: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train, val and test rows of `features` (one row per manifest row; the embeddings by
    default), standardised with train statistics."""
    f = data.arrays.embeddings if features is None else features
    tr, va, te = (f[data.arrays.mask(s)] for s in ("train", "val", "test"))
    mu, sd = tr.mean(0), tr.std(0) + 1e-6
    return tuple(((x - mu) / sd).astype(np.float32) for x in (tr, va, te))


def _regression_classes(pred: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(pred), 1, 5).astype(np.int64)


def _select_ridge(data: Data, features: np.ndarray, alphas: tuple[float, ...]) -> np.ndarray:
    """Test predictions of a ridge fit on standardised train features (one row per manifest row),
    its alpha picked by val Spearman."""
    from sklearn.linear_model import Ridge

    xtr, xva, xte = _standardize(data, features)
    fits = [Ridge(alpha=a).fit(xtr, data.train[1]) for a in alphas]
    return max(fits, key=lambda m: spearman(data.val[1], m.predict(xva))).predict(xte)


def ridge(data: Data, seed: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    p = _select_ridge(data, data.arrays.embeddings, (1.0, 10.0, 100.0, 1000.0, 10000.0))
    return p, _regression_classes(p)


def _torch_peer(
    data: Data, seed: int, cfg: TrainConfig, model: torch.nn.Module, loss_fn: Callable, predict_fn: Callable
) -> tuple[np.ndarray, np.ndarray]:
    xtr, xva, xte = _standardize(data)
    fit_torch(
        model,
        loss_fn,
        predict_fn,
        xtr,
        data.train[1],
        xva,
        data.val[1],
        cfg.epochs,
        cfg.lr,
        cfg.weight_decay,
        cfg.batch_size,
        seed,
    )
    return predict_fn(model, xte)


def laion_mlp(data: Data, seed: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """The LAION aesthetic predictor's MLP (1024-128-64-16-1, dropout) trained with MSE."""
    torch.manual_seed(seed)
    m = torch.nn.Sequential(
        torch.nn.Linear(data.train[0].shape[1], 1024),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(1024, 128),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(128, 64),
        torch.nn.Dropout(0.1),
        torch.nn.Linear(64, 16),
        torch.nn.Linear(16, 1),
    )

    @torch.no_grad()
    def pred(model, x):
        p = model(tensor(x)).squeeze(-1).cpu().numpy()
        return p, _regression_classes(p)

    return _torch_peer(
        data, seed, cfg, m, lambda out, y: torch.nn.functional.mse_loss(out.squeeze(-1), y.float()), pred
    )


def coral(data: Data, seed: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    from coral_pytorch.dataset import proba_to_label
    from coral_pytorch.layers import CoralLayer
    from coral_pytorch.losses import coral_loss

    torch.manual_seed(seed)
    m = torch.nn.Sequential(
        mlp(data.train[0].shape[1], cfg.hidden[:-1], cfg.hidden[-1], cfg.dropout),
        torch.nn.GELU(),
        CoralLayer(cfg.hidden[-1], 5),
    )

    @torch.no_grad()
    def pred(model, x):
        p = torch.sigmoid(model(tensor(x))).cpu()
        return p.mean(1).numpy(), (proba_to_label(p) + 1).numpy()

    return _torch_peer(
        data,
        seed,
        cfg,
        m,
        # the levels [y > k], as coral_pytorch's levels_from_labelbatch builds them row by row in Python
        lambda out, y: coral_loss(out, (y[:, None] > torch.arange(1, 5, device=y.device)).float()),
        pred,
    )


def corn(data: Data, seed: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    from coral_pytorch.dataset import corn_label_from_logits
    from coral_pytorch.losses import corn_loss

    torch.manual_seed(seed)
    m = mlp(data.train[0].shape[1], cfg.hidden, 4, cfg.dropout)

    @torch.no_grad()
    def pred(model, x):
        logits = model(tensor(x)).cpu()
        cum = torch.cumprod(torch.sigmoid(logits), dim=1)  # P(y > k)
        return cum.mean(1).numpy(), (corn_label_from_logits(logits) + 1).numpy()

    return _torch_peer(data, seed, cfg, m, lambda out, y: corn_loss(out, y - 1, num_classes=5), pred)


def mord_at(data: Data, seed: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    import mord

    xtr, xva, xte = _standardize(data)
    best = max(
        (spearman(data.val[1], mord.LogisticAT(alpha=a).fit(xtr, data.train[1]).predict(xva)), a)
        for a in (10.0, 100.0, 1000.0)
    )
    m = mord.LogisticAT(alpha=best[1]).fit(xtr, data.train[1])
    return xte @ m.coef_, m.predict(xte)


def silva_scorer_recipe(data: Data, seed: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """The recipe published with silva-scorer (bench/recipe.py), on its own raw inputs: its
    LayerNorm does the input scaling."""
    torch.manual_seed(seed)
    model, loss = recipe.build(data.train[0].shape[1], data.train[1])
    fit_torch(
        model,
        loss,
        recipe.predict,
        data.train[0],
        data.train[1],
        data.val[0],
        data.val[1],
        recipe.EPOCHS if cfg.epochs >= 20 else cfg.epochs * 2,  # --quick halves every method
        recipe.LR,
        recipe.WEIGHT_DECAY,
        recipe.BATCH,
        seed,
        warmup_fraction=recipe.WARMUP,
        clip=recipe.CLIP,
    )
    return recipe.predict(model, data.test[0])


METHODS: dict[str, Callable] = {
    "silva": silva,
    "silva_scorer_recipe": silva_scorer_recipe,
    "ridge": ridge,
    "laion_mlp": laion_mlp,
    "coral": coral,
    "corn": corn,
    "mord_logistic_at": mord_at,
}


FAMILY_METHODS = ("silva", "silva_scorer_recipe", "coral", "corn")


def method_fn(name: str) -> Callable:
    """A method by name; `silva[members=5;hidden=[512]]` is silva with those training options
    (values read as YAML), so one run can compare the default with candidate defaults."""
    if not name.startswith("silva["):
        return METHODS[name]
    change = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in name[6:-1].split(";"))}
    TrainConfig.from_dict(change)  # unknown options fail here, not hours later

    def variant(data: Data, seed: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
        return silva(data, seed, dataclasses.replace(cfg, **change))

    return variant


def _family_unit(
    unit: tuple[str, int, int], methods: tuple[str, ...], cfg: TrainConfig, device: str, threads: int
) -> list[tuple[str, int, int, str, float, float, float]]:
    """One (taste, size, seed): its data once, every method on it."""
    common.DEVICE = torch.device(device)
    torch.set_num_threads(threads)
    name, n, seed = unit
    data = make_data(n, seed, **TASTES[name])
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
                t.seconds,
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
) -> str:
    """Every method on every taste of the family. Per size: the mean and the worst fraction of the
    oracle over tastes x seeds, the rows each method wins and loses, and its fit time; per
    (taste, size) row: each method's mean +- sd over seeds, the winner, and whether silva's default
    is first or within one sd (of the winner's seeds) of first."""
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
    return family_tables([r for unit in results for r in unit], device)


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
                f"s / fit ({device})",
            ],
            summary,
        )
        + "\n\nSpearman / oracle per taste (mean ± sd over seeds):\n\n"
        + table(["taste", "ratings", "seeds", *methods, "best", f"{methods[0]} first or within 1 sd"], rows)
    )


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
    ("+ thresholds from the train prior", dict(batch_size=256, ema_epochs=0.0)),
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
                    _select_ridge(data, g.generator_terms(), tuple(np.logspace(-1, 4, 11))),
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one seed, small sizes (< 2 minutes)")
    p.add_argument(
        "--family",
        action="store_true",
        help="also every method on the whole family of tastes, 1k-20k ratings, 3 seeds (hours on a CPU)",
    )
    p.add_argument("--family-only", action="store_true", help="the family section alone")
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
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 6000, 20000], help="family sizes")
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
    a = p.parse_args()
    common.DEVICE = torch.device(a.device)
    if a.family_from_log:
        fits = [f for log in a.family_from_log for f in fits_from_log(log)]
        print(family_tables([f for f in fits if not a.methods or f[3] in a.methods], "per log"))
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
        print(pairs_gain(3000, [0, 500, 2000], [0, 1, 2], a.tastes or list(TASTES), cfg), "\n")
        print(f"total {time.perf_counter() - t0:.0f}s")
        return
    if a.ceiling_only:
        print("## How far a learner can go: the same head on the taste's own inputs (Spearman / oracle)\n")
        print(ceiling(a.sizes, [0, 1, 2], cfg, a.tastes or list(TASTES)), "\n")
        print(f"total {time.perf_counter() - t0:.0f}s")
        return
    if not a.family_only:
        print("## Methods (test split, fraction of the oracle; mean over seeds)\n")
        print(compare(sizes, seeds, cfg, mord_max), "\n")
    if a.quick or a.family or a.family_only:
        sizes_f, seeds_f, tastes = (
            ([1000], [0], list(TASTES)[:2]) if a.quick else (a.sizes, [0, 1, 2], a.tastes or list(TASTES))
        )
        methods = (*(a.methods or FAMILY_METHODS), *(f"silva[{v}]" for v in a.variant))
        print(f"## The family of tastes ({len(tastes)} tastes, seeds {seeds_f})\n")
        print(family(sizes_f, seeds_f, cfg, tastes, methods, a.jobs), "\n")
    if not a.family_only:
        print("## What each head change buys\n")
        print(ablation(abl_n, seeds, cfg), "\n")
        print(f"## Per-level bias at {abl_n} ratings (seed {seeds[0]})\n")
        print(per_level_bias(abl_n, seeds[0], cfg), "\n")
        print("## Learning curve: how many images must I rate?\n")
        print(learning_curve(curve, seeds[0], cfg), "\n")
    print(f"total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
