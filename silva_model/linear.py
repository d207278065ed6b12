"""A convex ordinal linear head: an `OrdinalHead` without hidden layers, fitted to convergence.

With a few hundred ratings, 20 epochs of AdamW leave a linear head far from its optimum (a few
dozen optimizer steps), while the same model fitted to convergence is often the best there is.
Its loss is mord's `LogisticAT`: the all-threshold logistic loss (the cumulative BCE every head
trains with, over every bar) plus an L2 penalty on the weights, on the same standardised inputs
the MLP reads; full-batch L-BFGS finds its one optimum. A judge's standardised latent is one more
input, penalised at a sixteenth of the L2 (`JUDGE_PENALTY`); pairwise judgements add their
Bradley-Terry term, as in training the MLP. The L2 comes from inner folds (`fold_latents`);
`select.py` decides whether this head or the MLP is kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch.nn import functional as F

from silva_model.head import OrdinalHead, monotone_bars
from silva_model.loss import cumulative_targets
from silva_model.pairs import pair_loss

# L2 on the summed loss (mord's alpha) with standardised inputs: 4 .. 16,384, by fourfold steps
# (the bench's mord peer searches the same; at L2 4 this head scored as mord did to 4 decimals)
L2_GRID = tuple(4.0**k for k in range(1, 8))
DEFAULT_L2 = 256.0
# The judge's weight is penalised at this share of the L2: one strong input among hundreds of weak
# ones. In a test world (64-d, 60 to 300 ratings, a judge on 800 ratings) the full L2 lost most of
# a related judge's gain at 60 ratings (Spearman 0.388 against 0.544 unpenalised) and 1/16 kept it
# (0.548), while an unrelated judge's weight stayed at half or less of the related one's.
JUDGE_PENALTY = 1 / 16  # a linear head asked for with neither folds nor an L2 of its own


@dataclass
class LinearProblem:
    """What a linear fit sees, in float64: the MLP inputs of the train rows (`h`), their ratings,
    the judge's standardised latent (None without a judge), and pairs `(a, b, outcome, weight)`
    indexing `pair_h` (the train rows, then judged images no rating has) with `pair_judge`."""

    h: torch.Tensor
    y: torch.Tensor
    judge: torch.Tensor | None = None
    pair_h: torch.Tensor | None = None
    pair_judge: torch.Tensor | None = None
    pairs: tuple[torch.Tensor, ...] | None = None
    pair_weight: float = 1.0
    penalty: torch.Tensor | None = None  # each weight's factor in the L2 (None: 1 each)

    @classmethod
    def of(cls, head: OrdinalHead, x: torch.Tensor, y: torch.Tensor, **pairs: object) -> LinearProblem:
        """The problem of `head`'s inputs (its standardisation and judge already fitted) on `x`."""
        with torch.no_grad():
            h = head.mlp_inputs(x).double()
            judge = head.judge_input(x).double() if head.has_judge else None
        return cls(h, y.long(), judge, **pairs)

    def subset(self, keep: torch.Tensor) -> LinearProblem:
        """The rows `keep` (a boolean mask), and the pairs neither of whose images is left out."""
        out = dataclasses.replace(self, h=self.h[keep], y=self.y[keep])
        out.judge = None if self.judge is None else self.judge[keep]
        if self.pairs is not None:
            dropped = torch.zeros(len(self.pair_h), dtype=torch.bool, device=keep.device)
            dropped[: len(keep)] = ~keep
            a, b = self.pairs[:2]
            used = ~(dropped[a] | dropped[b])
            out.pairs = tuple(t[used] for t in self.pairs) if bool(used.any()) else None
        return out

    def latent(self, p: torch.Tensor, h: torch.Tensor, judge: torch.Tensor | None) -> torch.Tensor:
        f = h @ p[: h.shape[1]]
        return f if judge is None else f + p[h.shape[1]] * judge

    def loss(self, p: torch.Tensor, l2: float) -> torch.Tensor:
        """Mean all-threshold logistic loss, plus l2 / 2 |w|^2 per summed term, plus the pairs'."""
        d, k = self.h.shape[1], self.judge is not None
        bars = monotone_bars(p[d + k], p[d + k + 1 :])
        targets = cumulative_targets(self.y, len(bars) + 1).double()
        logits = self.latent(p, self.h, self.judge).unsqueeze(-1) - bars
        loss = F.binary_cross_entropy_with_logits(logits, targets)
        w = p[:d]
        penalty = w @ w if self.penalty is None else w**2 @ self.penalty
        penalty = penalty + (JUDGE_PENALTY * p[d] ** 2 if k else 0.0)
        loss = loss + l2 / (2 * targets.numel()) * penalty
        if self.pairs is not None:
            a, b, outcome, weight = self.pairs
            f = self.latent(p, self.pair_h, self.pair_judge)
            share = self.pair_weight * len(a) / len(self.y)
            loss = loss + share * pair_loss(f[a], f[b], outcome.double(), weight.double())
        return loss


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """A problem this small runs fastest on one thread: on a busy machine, a thread pool's
    synchronisation per L-BFGS step cost ten times its matrix products (measured on 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def start(head: OrdinalHead) -> torch.Tensor:
    """Zero weights, and the judge's weight and the bars `head` starts with: (w, [judge], bars)."""
    w = torch.zeros(head.config.mlp_inputs, dtype=torch.float64, device=head.theta_first.device)
    judge = [torch.tensor([head.learned_judge_weight], dtype=torch.float64)] if head.has_judge else []
    return torch.cat([w, *(j.to(w.device) for j in judge), head.bar_parameters().double()])


# The rows' curvature per unit of squared spread, as `RowSpace` evens it out: about what the
# all-threshold loss's logistic terms give summed over a row's bars (0.1 to 1 cost at most a third
# more steps than this, on bench/'s tastes at 100 to 1,000 ratings).
CURVATURE = 0.25
# L-BFGS stops where no gradient entry exceeds this: the held-out Spearman of 1e-8 to 4 decimals,
# at a quarter of the steps
TOLERANCE_GRAD = 1e-6


@dataclass(frozen=True)
class RowSpace:
    """A problem with fewer rows than inputs, over the principal axes of the rows its loss reads,
    scaled so that each axis curves about alike. The loss sees the weights only through those
    rows and the L2 takes away any part orthogonal to them, so the optimum lies in their span:
    with 667 rows of 1,152 inputs, each L-BFGS step is that much smaller. Along an axis of spread
    s the loss curves about as CURVATURE * s^2 + L2, which spans orders of magnitude at a small
    L2; in coordinates divided by its square root L-BFGS needs a quarter of the steps (the same
    optimum, bench/'s tastes)."""

    problem: LinearProblem  # h (and pair_h) along the axes
    axes: torch.Tensor  # (d, r), orthonormal columns
    spread: torch.Tensor  # (r,), the rows' singular values along them

    @classmethod
    def of(cls, problem: LinearProblem) -> RowSpace | None:
        """None: as many rows as inputs, where the axes would cost more than they save."""
        rows = problem.h if problem.pair_h is None else problem.pair_h
        if len(rows) >= rows.shape[1]:
            return None
        # from the rows' Gram matrix: a third of an SVD's time; axes along which the rows do not
        # spread (copies, a constant column) hold none of the optimum and are left out
        eigenvalues, vectors = torch.linalg.eigh(rows @ rows.T)
        kept = eigenvalues > eigenvalues.max() * 1e-12
        if not bool(kept.any()):
            return None
        spread = eigenvalues[kept].sqrt()
        axes = rows.T @ vectors[:, kept] / spread
        pair_h = None if problem.pair_h is None else problem.pair_h @ axes
        return cls(dataclasses.replace(problem, h=problem.h @ axes, pair_h=pair_h), axes, spread)

    def solve(self, l2: float, p0: torch.Tensor, exact: bool = True) -> torch.Tensor:
        """The optimum from `p0` (w, [judge], bars in the inputs' coordinates), in them. `exact`:
        stopped where the inputs' gradient is within TOLERANCE_GRAD (the scaled one times up to
        the largest scale); else where the scaled one is, which kept the inner folds' Spearman
        within 2e-4 of the plain fit's on bench/'s tastes in half the steps."""
        scale, d = torch.sqrt(CURVATURE * self.spread**2 + l2), len(self.axes)
        pair_h = None if self.problem.pair_h is None else self.problem.pair_h / scale
        scaled = dataclasses.replace(self.problem, h=self.problem.h / scale, pair_h=pair_h, penalty=scale**-2)
        tolerance = TOLERANCE_GRAD / float(scale.max()) if exact else TOLERANCE_GRAD
        p = fit(scaled, l2, torch.cat([scale * (self.axes.T @ p0[:d]), p0[d:]]), tolerance=tolerance)
        return torch.cat([self.axes @ (p[: len(scale)] / scale), p[len(scale) :]])


def fit(
    problem: LinearProblem,
    l2: float,
    p0: torch.Tensor,
    max_iter: int = 500,
    tolerance: float = TOLERANCE_GRAD,
) -> torch.Tensor:
    """The optimum from `p0` (full-batch L-BFGS with a strong-Wolfe line search), stopped where no
    gradient entry exceeds `tolerance`."""
    p = p0.detach().clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [p],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=tolerance,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = problem.loss(p, l2)
        loss.backward()
        return loss

    opt.step(closure)
    return p.detach()


def solver(problem: LinearProblem, exact: bool = True) -> Callable[[float, torch.Tensor], torch.Tensor]:
    """`(l2, p0) -> the optimum from p0` for this problem: along its rows' axes (`RowSpace`, and
    its `exact`) where it has fewer rows than inputs, what `fit` finds in fewer numbers and steps."""
    space = RowSpace.of(problem)
    return partial(fit, problem) if space is None else partial(space.solve, exact=exact)


def solve(problem: LinearProblem, l2: float, p0: torch.Tensor) -> torch.Tensor:
    """The optimum from `p0`."""
    return solver(problem)(l2, p0)


def fold_latents(
    problem: LinearProblem, folds: np.ndarray, p0: torch.Tensor, grid: tuple[float, ...] = L2_GRID
) -> dict[float, list[np.ndarray]]:
    """Per L2 of `grid`, each fold's latents from the fit on the other folds' rows (each fit
    starts from the one of the next larger L2: a warm path, along the rows' axes)."""
    latents: dict[float, list[np.ndarray]] = {l2: [] for l2 in grid}
    with one_thread():
        for f in np.unique(folds):
            keep = torch.from_numpy(folds != f).to(problem.h.device)
            fold_fit = solver(problem.subset(keep), exact=False)
            judge = None if problem.judge is None else problem.judge[~keep]
            p = p0
            for l2 in sorted(grid, reverse=True):
                p = fold_fit(l2, p)
                latents[l2].append(problem.latent(p, problem.h[~keep], judge).cpu().numpy())
    return latents


def blend_into(head: OrdinalHead, problem: LinearProblem, l2: float, share: float) -> None:
    """Blend the convex linear fit of `problem` (the train rows of `head`, whose MLP is trained)
    into `head`'s linear part: latent = s * (share * linear / sd + (1 - share) * MLP / sd), each
    part's sd on the train rows, and s with the bars refitted to the ratings (the all-threshold
    loss on the blend). Averaging two fits that err differently is steadier, at a few hundred
    ratings, than keeping the one that scored better on a few dozen held-out ratings."""
    with one_thread():
        w = solve(problem, l2, start(head))[: problem.h.shape[1]]
        with torch.no_grad():
            mlp = head.mlp(problem.h.to(head.input_scale)).mean(0).double()
        linear = problem.h @ w
        a, b = share / linear.std().clamp_min(1e-12), (1 - share) / mlp.std().clamp_min(1e-12)
        blend = LinearProblem((a * linear + b * mlp).unsqueeze(1), problem.y)
        p = fit(blend, 1.0, torch.cat([torch.ones(1, dtype=torch.float64), head.bar_parameters().double()]))
    head.set_blend((p[0] * a * w).float(), float(p[0] * b), p[1:].float())


def fit_head(head: OrdinalHead, problem: LinearProblem, l2: float) -> None:
    """Fit `head` (no hidden layers) to the whole problem and set its weights."""
    with one_thread():
        p = solve(problem, l2, start(head))
    d, k = problem.h.shape[1], problem.judge is not None
    head.set_linear(p[:d].float(), p[d + k :].float(), float(p[d]) if k else None)
