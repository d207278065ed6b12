"""What comparisons buy: ratings, pairs or rankings of six, per judgement, with and without drift.

    uv run --group bench python -m bench comparisons [--tastes 3] [--start 200 500] [--quick]

A simulated person rates a 20k-image pool of a family taste (bench/tastes.py). Absolute ratings
drift between sessions of 100: each session's scale is shifted by a random offset (sd 0.3 of a
rating step) on top of the rater's noise. Comparisons see only the taste plus the same per-
judgement noise: a pair says which image looks better, a ranking orders six. From `start`
random ratings, batches of 100 judgements of one kind are added, chosen at random or by the
queue (the head's most uncertain images spread over the pool, entropy-diverse, and for
comparisons the pairs and groups `silva_app.comparisons` proposes from them), and silva's
default head is trained after each batch: Spearman / oracle on a fixed 5k test set of
drift-free ratings. One judgement is one rating, one pair or one ranking of six (15 pairs that
count as 5, `ranking_weight`, as in training from the rating page or pictoria).

Three ways to choose what to compare: at random; the queue (today's rule, `silva_app.comparisons`);
and pictoria's published sampler (`pictoria`): pairs whose scores differ by at most 0.10, the two
images as unlike as possible in embedding space within that window, each pair linked to an image
already compared so the comparison graph stays connected, near-copies above cosine 0.94 skipped,
and 20 % of each batch from score gaps of 0.15-0.25 (groups of six: the same, grown from the anchor).
The head is the MLP (`model: mlp`) whatever the size, so the rows differ only by what is compared.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np

from bench.common import arrays_for, machine, table
from bench.tastes import TASTES
from silva_app.comparisons import GROUP_SIZE, propose_groups, propose_pairs
from silva_model import active
from silva_model.head import predict
from silva_model.metrics import spearman
from silva_model.pairs import Pairs, ranking_pairs
from silva_model.synthetic import make_taste_dataset
from silva_model.train import train
from silva_model.train_config import TrainConfig

POOL, TEST, SESSION, DRIFT = 20_000, 5_000, 100, 0.3
KINDS = ("ratings", "pairs", "rankings")
CHOOSERS = ("random", "queue", "pictoria")
# pictoria's sampler: the score window of most proposals, the wider gaps of a share of each batch,
# the cosine above which two images are copies, and the random sample of the library it looks in
WINDOW, FAR, FAR_SHARE, COPY_COSINE, SAMPLE = 0.10, (0.15, 0.25), 0.2, 0.94, 4000


class Rater:
    """The planted taste seen through noise; ratings cut it at the taste's own bars, shifted per
    session when it drifts."""

    def __init__(self, taste: dict, seed: int, drift: bool) -> None:
        args = dict(taste)
        d = make_taste_dataset(POOL + TEST, seed=seed, **args)
        self.x, self.taste = d.embeddings, d.taste
        self.noise = args.get("noise", 0.5)
        # the bars, recovered from the noise-free ratings: between the best of k and the worst of k+1
        o = d.oracle_ratings
        self.cuts = np.array([(d.taste[o == k].max() + d.taste[o == k + 1].min()) / 2 for k in range(1, 5)])
        self.step = float(np.mean(np.diff(self.cuts)))
        self.rng = np.random.default_rng([seed, 7])
        self.drift, self.given = drift, 0
        self.offset = 0.0
        test = slice(POOL, None)
        self.y_test = self.rate(np.arange(POOL, POOL + TEST), drifting=False)
        self.oracle = spearman(self.y_test, d.taste[test])

    def seen(self, idx: np.ndarray) -> np.ndarray:
        return self.taste[idx] + self.noise * self.rng.standard_normal(len(idx))

    def rate(self, idx: np.ndarray, drifting: bool = True) -> np.ndarray:
        out = np.empty(len(idx), np.int64)
        for k, i in enumerate(idx):
            if drifting and self.drift and self.given % SESSION == 0:
                self.offset = DRIFT * self.step * self.rng.standard_normal()
            self.given += drifting
            shift = self.offset if drifting and self.drift else 0.0
            out[k] = 1 + np.searchsorted(self.cuts, self.seen(np.array([i]))[0] + shift)
        return out


def fit(r: Rater, rated: dict[int, int], pairs: list[tuple[int, int, float]], cfg: TrainConfig):
    idx = np.array(sorted(rated))
    arrays = arrays_for(r.x[idx], np.array([rated[i] for i in idx]))
    p = None
    if pairs:
        a, b, w = (np.array(c) for c in zip(*pairs, strict=True))
        pos = {int(i): k for k, i in enumerate(idx)}
        others = np.array(sorted(set(a.tolist() + b.tolist()) - set(pos)), dtype=np.int64)
        pos |= {int(i): len(idx) + k for k, i in enumerate(others)}
        p = Pairs(
            np.array([pos[int(i)] for i in a]),
            np.array([pos[int(i)] for i in b]),
            np.ones(len(a), np.float32),  # a, the first, is the better
            r.x[others] if len(others) else None,
            w,
        )
    head = train(arrays, cfg, progress=False, pairs=p).head
    return head, spearman(r.y_test, predict(head, r.x[POOL:])[0]) / r.oracle


def pictoria(
    r: Rater, head, size: int, n: int, compared: set[int], rng: np.random.Generator
) -> list[np.ndarray]:
    """n comparisons of `size` images by pictoria's sampler (module docstring): each grown from an
    anchor already compared (`compared`, which grows), within the score window, most unlike."""
    cand = rng.choice(POOL, SAMPLE, replace=False)
    score, x = predict(head, r.x[cand])[0], r.x[cand]  # the embeddings are unit-norm
    linked = np.isin(cand, list(compared))
    out = []
    for j in range(n):
        anchor = int(rng.choice(np.flatnonzero(linked))) if linked.any() else int(rng.integers(SAMPLE))
        gap = np.abs(score - score[anchor])
        window = (gap >= FAR[0]) & (gap <= FAR[1]) if j < round(FAR_SHARE * n) else gap <= WINDOW
        members, nearest = [anchor], x @ x[anchor]
        for _ in range(size - 1):
            ok = window & (nearest <= COPY_COSINE)
            ok[members] = False
            if not ok.any():
                break
            members.append(int(np.flatnonzero(ok)[np.argmin(nearest[ok])]))  # the most unlike
            nearest = np.maximum(nearest, x @ x[members[-1]])
        if len(members) == size:
            out.append(cand[members])
            linked[members] = True
    return out


def choose(
    r: Rater,
    head,
    kind: str,
    n: int,
    chooser: str,
    rated: dict[int, int],
    pairs: list,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """n judgements' images: single images to rate, pairs, or groups of six."""
    per = {"ratings": 1, "pairs": 2, "rankings": GROUP_SIZE}[kind]
    pool = np.arange(POOL) if kind != "ratings" else np.setdiff1d(np.arange(POOL), list(rated))
    if chooser == "random":
        return [rng.choice(pool, per, replace=False) for _ in range(n)]
    if chooser == "pictoria":
        return pictoria(r, head, per, n, {i for a, b, _ in pairs for i in (a, b)}, rng)
    probs = active.class_probabilities(head, r.x[pool])
    pick = pool[
        active.select_new("entropy-diverse", n * per, probs, r.x[pool], None, seed=int(rng.integers(1e9)))
    ]
    if kind == "ratings":
        return [np.array([i]) for i in pick]
    p = active.class_probabilities(head, r.x[pick])
    queue = [
        {"expected_rating": float(e), "rating_sd": float(s)}
        for e, s in zip(active.expected_from_probs(p), active.rating_sd(p), strict=True)
    ]
    proposals = propose_pairs(queue) if kind == "pairs" else propose_groups(queue)
    return [pick[list(q.members)] for q in proposals[:n]]


def judge(r: Rater, kind: str, images: np.ndarray, rated: dict[int, int], pairs: list) -> None:
    if kind == "ratings":
        rated[int(images[0])] = int(r.rate(images)[0])
        return
    order = images[np.argsort(-r.seen(images))]  # best first, as the person sees them now
    pairs += [(int(a), int(b), w) for a, b, w in ranking_pairs(order)]  # a pair of two weighs 1


def curve(
    taste: dict, seed: int, drift: bool, start: int, kind: str, chooser: str, rounds: int, cfg
) -> list[float]:
    r = Rater(taste, seed, drift)
    first = np.random.default_rng([seed, start]).choice(POOL, start, replace=False)  # the same for all
    rng = np.random.default_rng([seed, start, KINDS.index(kind), CHOOSERS.index(chooser)])
    rated = dict(zip(first.tolist(), r.rate(first).tolist(), strict=True))
    pairs: list[tuple[int, int, float]] = []
    head, q = fit(r, rated, pairs, cfg)
    out = [q]
    for _ in range(rounds):
        for images in choose(r, head, kind, SESSION, chooser, rated, pairs, rng):
            judge(r, kind, images, rated, pairs)
        head, q = fit(r, rated, pairs, cfg)
        out.append(q)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tastes", type=int, default=3, help="the first N tastes of the family")
    ap.add_argument("--start", type=int, nargs="+", default=[200, 500])
    ap.add_argument("--drift", choices=["both", "with", "without"], default="both")
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    ap.add_argument("--choosers", nargs="+", choices=CHOOSERS, default=list(CHOOSERS))
    ap.add_argument("--rounds", type=int, default=3, help="batches of 100 judgements")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="one taste, start 200, one round, 5 epochs")
    a = ap.parse_args(argv)
    cfg = TrainConfig(device="cpu", model="mlp")
    names = list(TASTES)[: a.tastes]
    if a.quick:
        names, a.start, a.rounds, cfg = names[:1], [200], 1, dataclasses.replace(cfg, epochs=5)
    drifts = {"both": (True, False), "with": (True,), "without": (False,)}[a.drift]
    t0 = time.perf_counter()
    print(f"# comparisons: {machine()}; tastes {names}; seed {a.seed}", flush=True)
    for start in a.start:
        for drift in drifts:
            rows = []
            for kind in a.kinds:
                for chooser in (
                    a.choosers if kind != "ratings" else [c for c in a.choosers if c != "pictoria"]
                ):
                    curves = np.array(
                        [curve(TASTES[t], a.seed, drift, start, kind, chooser, a.rounds, cfg) for t in names]
                    )
                    cells = [
                        f"{m:.3f} (worst {w:.3f})" for m, w in zip(curves.mean(0), curves.min(0), strict=True)
                    ]
                    rows.append([kind, chooser, *cells])
                    print(f"  start={start} drift={drift} {rows[-1]}", file=sys.stderr, flush=True)
            heads = ["judgements", "chosen"] + [f"+{100 * k}" for k in range(a.rounds + 1)]
            print(f"\n### from {start} ratings, {'with' if drift else 'without'} drift (Spearman / oracle)\n")
            print(table(heads, rows), flush=True)
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
