"""The cold start: at a few hundred ratings, the person's own ratings shape the head.

No model class wins at every taste with few ratings: a linear ordinal model leads on some, the
MLP on others, and which one scores better on a few dozen held-out ratings is close to chance
(docs/benchmarks.md, "The cold start"). So below `BLEND_BELOW` train ratings (`model: auto`) the
head is a blend of both: the MLP, and a convex ordinal linear fit (`linear.py`) whose L2 comes
from inner folds of the train split (each L2 fitted on the other folds and scored on the fold it
did not see, over `L2_SHUFFLES` shuffles of the folds), their standardised latents weighed
`LINEAR_SHARE` to the rest (from `SHARE_FROM` train ratings the share too comes from the folds).
The blend's MLP keeps the average of its later epochs' weights, so no epoch is picked on a few
dozen val ratings. From there to `select_below`, and on top of a
judge, the two are compared on the folds instead and the one with the higher mean held-out
Spearman is kept. The same folds choose the epochs of an MLP that keeps its best epoch when the
manifest has no val rows.

The choice and every candidate's score travel in the head's config (`HeadConfig.selection`), so
`config.json`, the model card and the evaluation report show them. The training config returned
fixes the choice (`select_folds: 0`): heads trained again from it (the queue's and the
evaluation's fold heads, the judge's inner folds) take the chosen form and do not choose again."""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from silva_model import linear
from silva_model.manifest import SPLITS, ManifestArrays
from silva_model.metrics import spearman
from silva_model.pairs import Pairs
from silva_model.train_config import BLEND_BELOW, L2_SHUFFLES, LINEAR_SHARE, SHARE_FROM, TrainConfig

LINEAR, MLP, BLEND = "linear", "mlp", "blend"


@dataclass(frozen=True)
class Selection:
    """What the inner folds chose, and how every candidate scored on them."""

    chosen: str
    folds: int
    scores: dict[str, float]  # candidate -> mean Spearman on the held-out folds
    linear_l2: float | None  # the linear candidate's L2 (None: not a candidate)
    mlp_epochs: int | None  # the MLP's epochs with the best held-out mean (None: not folded)
    seconds: float
    linear_share: float | None = None  # a blend: the linear fit's share of the latent
    mlp_folds: int | None = None  # the folds the MLP was scored on (None: not folded)
    chose: tuple[str, ...] = ()  # what the folds set besides the form: "l2", "share", "epochs"
    l2_shuffles: int | None = None  # the shuffles of the folds the L2 was scored on (None: one)
    l2_near: float | None = None  # the L2 kept of those within a standard error of the best is
    # the one nearest this (None: the best; records written before `chosen_l2`)

    def record(self) -> dict[str, Any]:
        """As `HeadConfig.selection` and config.json hold it."""
        return {
            "chosen": self.chosen,
            "folds": self.folds,
            "out_of_fold_spearman": {k: round(v, 4) for k, v in self.scores.items()},
            "linear_l2": self.linear_l2,
            "mlp_epochs": self.mlp_epochs,
            "seconds": round(self.seconds, 2),
        } | {
            k: v
            for k, v in (
                ("linear_share", self.linear_share),
                ("mlp_folds", self.mlp_folds),
                ("chose", list(self.chose) or None),
                ("l2_shuffles", self.l2_shuffles),
                ("l2_near", self.l2_near),
            )
            if v is not None
        }


PARTS = {"l2": "the L2", "share": "the share", "epochs": "the MLP's epochs"}


def describe(selection: dict[str, Any]) -> str:
    """How a head's form was chosen, in one sentence (the evaluation report, the model card)."""
    scores = ", ".join(f"{k} {v:.3f}" for k, v in selection["out_of_fold_spearman"].items())
    chosen, k = selection["chosen"], selection["folds"]
    shuffles = selection.get("l2_shuffles")
    notes = [f"the L2 scored on {shuffles} shuffles of them"] if shuffles else []
    if selection.get("l2_near") is not None:
        notes.append(f"the L2 nearest {selection['l2_near']:g} of those within a standard error of the best")
    if selection.get("mlp_folds", k) < k:
        notes.append(f"the MLP scored on {selection['mlp_folds']} of them")
    folds = f"{k} inner folds of the train split" + (f" ({', '.join(notes)})" if notes else "")
    how = f"by mean held-out Spearman ({scores}; {selection['seconds']:.1f} s)"
    if chosen == BLEND:
        share = selection["linear_share"]
        # records written before "chose" was kept: the L2 alone
        what = " and ".join(PARTS[c] for c in selection.get("chose", ["l2"]))
        return (
            f"Head: blend ({share:.0%} a convex linear fit with L2 {selection['linear_l2']:g}, "
            f"{1 - share:.0%} the MLP, their latents standardised), {what} chosen on {folds} {how}."
        )
    if chosen == LINEAR:
        detail = f"L2 {selection['linear_l2']:g}"
    elif selection["mlp_epochs"] is None:  # its later epochs averaged: none was picked
        detail = "its later epochs' weights averaged"
    else:
        detail = f"best after {selection['mlp_epochs']} epochs"
    one = "its L2" if chosen == LINEAR else "its epochs"
    what = "chosen" if len(selection["out_of_fold_spearman"]) > 1 else f"{one} chosen"
    return f"Head: {chosen} ({detail}), {what} on {folds} {how}."


def inner_folds(hashes: np.ndarray, k: int, seed: int, shuffle: int = 0) -> np.ndarray:
    """(n,) fold of each train row, from the rows' embedding hashes: a seeded shuffle of the
    distinct embeddings dealt round, so copies of one embedding share a fold (split, an L2 would
    be scored on rows it trained on) and folds of distinct rows differ by at most one row;
    `shuffle` draws another shuffle of the same rows."""
    _, first, inverse = np.unique(np.asarray(hashes), return_index=True, return_inverse=True)
    order = np.empty(len(first), np.int64)
    order[np.argsort(first, kind="stable")] = np.arange(len(first))  # numbered as they first occur
    rng = np.random.default_rng([seed, 42, shuffle] if shuffle else [seed, 42])
    return rng.permutation(len(first))[order[inverse.ravel()]] % k


def candidates(config: TrainConfig, n_train: int) -> tuple[str, ...]:
    """The forms the folds weigh: below `BLEND_BELOW` the blend (its linear part's L2), else, or
    on top of a judge, the linear head and the MLP (the better kept)."""
    if config.selects(n_train):
        return (BLEND,) if n_train < BLEND_BELOW and not config.prior else (LINEAR, MLP)
    return (config.model,) if config.model in (LINEAR, BLEND) else (MLP,)


# The MLP is scored on this many of the folds, each trained on the others, and the linear fit
# beside it on the same: at 1,000 ratings a third fold MLP cost a quarter of the training time
# and changed no choice on bench/'s tastes (docs/benchmarks.md, "The cold start").
MLP_FOLDS = 2
MIN_FOLD_ROWS = 4  # fewer train rows per inner fold, and nothing is folded: the config as given
# The blend's shares weighed on the folds, and how far the chosen one is drawn towards
# LINEAR_SHARE (held-out Spearman per unit of share): at 400 train ratings, on bench/'s tastes,
# the folds' best share unchecked lost to the fixed one on linear tastes by chance, drawn in it
# kept the fixed share's lead there and found the MLP's on the clean non-linear taste.
SHARES = tuple(i / 10 for i in range(11))
SHARE_PULL = 0.02


def folds_share(config: TrainConfig, n_train: int) -> bool:
    """Whether a blend of this config on this many train rows takes its share from the folds."""
    return config.linear_share == -1 and n_train >= SHARE_FROM


def averaged_from(config: TrainConfig, kind: str) -> int:
    """The epoch from which the MLP of this form, trained on `config`, averages its weights (0: it
    keeps its best epoch): a blend's by default, any MLP's where `average_from` says so."""
    return dataclasses.replace(config, model=kind).averaged_from()


def picks_epochs(config: TrainConfig, kinds: tuple[str, ...]) -> bool:
    """Whether an MLP among these forms keeps its best epoch rather than averaging its later ones."""
    return any(kind in (MLP, BLEND) and not averaged_from(config, kind) for kind in kinds)


def needs_folds(config: TrainConfig, n_train: int, has_val: bool) -> bool:
    """Whether training this config on these rows folds the train split first."""
    if config.select_folds == 0 or n_train < config.select_folds * MIN_FOLD_ROWS:
        return False
    kinds = candidates(config, n_train)
    linear_part = LINEAR in kinds or BLEND in kinds
    share = BLEND in kinds and folds_share(config, n_train)
    epochs = picks_epochs(config, kinds) and not has_val
    return len(kinds) > 1 or (linear_part and config.linear_l2 == -1) or epochs or share


def unfolded(config: TrainConfig, n_train: int) -> TrainConfig:
    """The config as trained when nothing is folded: `auto` below the blend's size blends all the
    same, and a linear part without an L2 of its own takes the default, recorded."""
    kinds = candidates(config, n_train)
    if config.model == "auto" and kinds == (BLEND,):
        config = dataclasses.replace(config, model=BLEND, select_folds=0)
    if config.model in (LINEAR, BLEND) and config.linear_l2 == -1:
        config = dataclasses.replace(config, linear_l2=linear.DEFAULT_L2)
    if config.model == BLEND and config.linear_share == -1:
        config = dataclasses.replace(config, linear_share=LINEAR_SHARE)
    return config


def mlp_fold_scores(
    arrays: ManifestArrays,
    config: TrainConfig,
    pairs: Pairs | None,
    folds: np.ndarray,
    fit: Callable,
    average_from: int = 0,
) -> tuple[int | None, float, list[np.ndarray]]:
    """(epochs, score, latents): the epoch count whose held-out Spearman, averaged over the folds,
    is best, that mean, and each fold's latents from its head's best epoch; with `average_from`
    (a blend's MLP, or one told to average) no epoch is chosen: None, and the mean Spearman of
    the averaged weights.
    Each fold's head trains on the other folds (the manifest's val rows set aside) and is scored
    on its fold after every epoch; `fit` is `train.train`."""
    rows = np.flatnonzero(arrays.mask("train"))
    inner = dataclasses.replace(
        config, model=MLP, select_folds=0, calibrate=False, judge_folds=0, average_from=average_from
    )
    curves, latents = [], []
    for f in np.unique(folds)[:MLP_FOLDS]:
        codes = np.where(arrays.split_codes == SPLITS.index("val"), SPLITS.index("test"), arrays.split_codes)
        codes[rows[folds == f]] = SPLITS.index("val")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the full training warns once
            res = fit(dataclasses.replace(arrays, split_codes=codes), inner, progress=False, pairs=pairs)
        curves.append([h["val_spearman"] for h in res.history])
        held = torch.from_numpy(np.ascontiguousarray(arrays.embeddings[rows[folds == f]]))
        with torch.no_grad():
            latents.append(
                res.head.eval().personal_latent(held.to(res.head.input_scale.device)).cpu().numpy()
            )
    if average_from:
        held = [arrays.scores[rows[folds == f]] for f in np.unique(folds)[:MLP_FOLDS]]
        return None, float(np.mean([spearman(y, z) for y, z in zip(held, latents, strict=True)])), latents
    mean = np.mean(np.array(curves), axis=0)
    return int(np.argmax(mean)) + 1, float(mean.max()), latents


def fold_spearmans(ys: list[np.ndarray], per_l2: dict[float, list[np.ndarray]]) -> dict[float, list[float]]:
    """Per L2, each held-out fold's Spearman of its latents against its ratings `ys`."""
    return {v: [spearman(y, z) for y, z in zip(ys, lat, strict=True)] for v, lat in per_l2.items()}


def chosen_l2(held_out: dict[float, list[float]]) -> float:
    """Of the L2s whose held-out Spearman the folds (every shuffle's) cannot tell from the best
    one's (the mean difference, fold by fold, within one standard error), the one nearest
    `linear.DEFAULT_L2`. With a few dozen rows a fold the best mean wanders, from one shuffle of
    the folds to the next, among L2s a hundred times apart; kept near the default unless the folds
    say otherwise, the blend's L2 scored better on fresh images at 100 and 250 ratings on bench/'s
    tastes (docs/benchmarks.md, "The cold start"). From 600 train ratings, on one shuffle's three
    folds, the best mean is kept (there the rule lost 0.002 at 1,000 ratings)."""
    means = {v: float(np.mean(s)) for v, s in held_out.items()}
    best = max(means, key=means.get)

    def indistinct(v: float) -> bool:
        d = np.subtract(held_out[best], held_out[v])
        # a lead on one fold and ties on the rest is exactly one standard error: within, not by rounding
        return v == best or (len(d) > 1 and d.mean() <= d.std(ddof=1) / np.sqrt(len(d)) + 1e-12)

    return min((v for v in held_out if indistinct(v)), key=lambda v: abs(np.log(v / linear.DEFAULT_L2)))


def blend_share(
    ys: list[np.ndarray], linear_part: list[np.ndarray], mlp: list[np.ndarray]
) -> tuple[float, float]:
    """(share, its mean held-out Spearman): the linear share of the blend of the folds' latents,
    each part standardised on its fold, that scores best, drawn towards `LINEAR_SHARE`."""

    def score(a: float) -> float:
        return float(
            np.mean(
                [
                    spearman(y, a * lin / max(lin.std(), 1e-12) + (1 - a) * m / max(m.std(), 1e-12))
                    for y, lin, m in zip(ys, linear_part, mlp, strict=True)
                ]
            )
        )

    scores = {a: score(a) for a in SHARES}
    share = max(SHARES, key=lambda a: scores[a] - SHARE_PULL * abs(a - LINEAR_SHARE))
    return share, scores[share]


def choose(
    arrays: ManifestArrays,
    config: TrainConfig,
    pairs: Pairs | None,
    problem: Callable[[], tuple[linear.LinearProblem, Any]],
    fit: Callable,
) -> tuple[TrainConfig, Selection]:
    """Fold the train split; return the config that fixes the choice, and the selection.
    `problem()` gives the linear problem of the train rows and its starting point (built on demand:
    only the linear candidate needs it)."""
    t0 = time.perf_counter()
    n = int(arrays.mask("train").sum())
    kinds, k = candidates(config, n), config.select_folds
    hashes = arrays.content_hashes()[arrays.mask("train")]
    folds = inner_folds(hashes, k, config.seed)
    train_scores = arrays.scores[arrays.mask("train")]
    ys = [train_scores[folds == f] for f in np.unique(folds)]
    l2, epochs, mlp_folds, linear_latents, linear_per_fold, mlp = (None,) * 6
    chose: list[str] = []  # what the folds set: the L2, the blend's share, the MLP's epochs
    blend, has_val = BLEND in kinds, bool(arrays.mask("val").any())
    share_from_folds = blend and folds_share(config, n)
    average_from = averaged_from(config, BLEND if blend else MLP)
    shuffles = None
    if LINEAR in kinds or blend:
        l2 = config.linear_l2
        if l2 == -1 or share_from_folds or MLP in kinds:
            prob, p0 = problem()
            grid = linear.L2_GRID if l2 == -1 else (l2,)
            per_l2 = linear.fold_latents(prob, folds, p0, grid)
            per_fold = fold_spearmans(ys, per_l2)
            held_out = {v: list(per_fold[v]) for v in grid}  # every fold's, over every shuffle
            if blend and l2 == -1:  # a few dozen rows a fold: the L2 from more than one shuffle of them
                shuffles = L2_SHUFFLES
                for r in range(1, shuffles):
                    dealt = inner_folds(hashes, k, config.seed, r)
                    ys_r = [train_scores[dealt == f] for f in np.unique(dealt)]
                    for v, rhos in fold_spearmans(ys_r, linear.fold_latents(prob, dealt, p0, grid)).items():
                        held_out[v] += rhos
            chose += ["l2"] if l2 == -1 else []
            # 15 folds estimate the standard error; 3 (one shuffle, from 600 train ratings) do not
            l2 = chosen_l2(held_out) if shuffles else max(held_out, key=lambda v: np.mean(held_out[v]))
            linear_latents, linear_per_fold = per_l2[l2], per_fold[l2]
    if MLP in kinds or (blend and (share_from_folds or (not has_val and not average_from))):
        epochs, mlp, mlp_latents = mlp_fold_scores(arrays, config, pairs, folds, fit, average_from)
        mlp_folds = min(MLP_FOLDS, k)
        chose += [] if has_val or epochs is None else ["epochs"]
    scores: dict[str, float] = {}
    if linear_per_fold is not None and mlp_folds:  # on the folds the MLP was scored on, beside it
        scores[LINEAR] = float(np.mean(linear_per_fold[:mlp_folds]))
    elif linear_per_fold is not None:  # the score that chose the L2: over every shuffle of the folds
        scores[LINEAR] = float(np.mean(held_out[l2]))
    if mlp is not None:
        scores[MLP] = mlp
    chosen = max(scores, key=scores.get) if len(scores) > 1 and not blend else kinds[0]
    fixed = dataclasses.replace(config, model=chosen, select_folds=0)
    if chosen != MLP:
        fixed = dataclasses.replace(fixed, linear_l2=l2)
    if chosen != LINEAR and not has_val and epochs is not None:
        fixed = dataclasses.replace(fixed, epochs=epochs)  # no val rows: train that long, keep the last
    share = None
    if blend:
        share = LINEAR_SHARE if config.linear_share == -1 else config.linear_share
        if share_from_folds:
            m = mlp_folds  # the folds both parts were scored on
            share, scores[BLEND] = blend_share(ys[:m], linear_latents[:m], mlp_latents)
            chose.append("share")
        fixed = dataclasses.replace(fixed, linear_share=share)
    seconds = time.perf_counter() - t0
    near = linear.DEFAULT_L2 if "l2" in chose and shuffles else None
    return fixed, Selection(
        chosen, k, scores, l2, epochs, seconds, share, mlp_folds, tuple(chose), shuffles, l2_near=near
    )
