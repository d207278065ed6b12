"""What a person should rate next: uncertain, diverse library images, and rated images that a
head which never saw them disagrees with (likely slips of the hand, worth a second look).

Plain NumPy/PyTorch so the pipeline's rating queue and `bench/active.py` run the same rules.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from silva_model.explain import NEIGHBOURS, Explanation, explain, nearest
from silva_model.head import batch_tensor, normalize_embeddings, predict
from silva_model.manifest import ManifestArrays
from silva_model.splits import SPLITS, group_keys
from silva_model.train import train
from silva_model.train_config import TrainConfig

RULES = ("random", "entropy", "entropy-diverse", "disagreement-diverse")
DEFAULT_RULE = "disagreement-diverse"  # bench/active.py: the only rule that kept up with random at 2,000


@torch.no_grad()
def class_probabilities(head: nn.Module, x: np.ndarray, batch_size: int = 16_384) -> np.ndarray:
    """(N, K) probabilities of each rating from the ordinal logits: P(y = k) = P(y > k-1) - P(y > k).
    Monotone thresholds keep every difference >= 0."""
    device = next(head.parameters()).device
    head.eval()
    out = []
    for s in range(0, len(x), batch_size):
        above = torch.sigmoid(head(batch_tensor(x[s : s + batch_size]).to(device)).logits.float()).cpu()
        ones = torch.ones(len(above), 1)
        cum = torch.cat([ones, above, torch.zeros_like(ones)], dim=1)
        out.append((cum[:, :-1] - cum[:, 1:]).clamp_min(0.0))
    return torch.cat(out).numpy() if out else np.zeros((0, 5), np.float32)


def entropy(probs: np.ndarray) -> np.ndarray:
    """Class-distribution entropy in nats: high where the head cannot tell the ratings apart."""
    p = np.clip(probs, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def expected_from_probs(probs: np.ndarray) -> np.ndarray:
    return probs @ np.arange(1, probs.shape[1] + 1, dtype=probs.dtype)


def rating_sd(probs: np.ndarray) -> np.ndarray:
    """The spread of the predicted rating (in stars): how sure the head is of where an image
    falls, which is what decides whether it can order two images."""
    k = np.arange(1, probs.shape[1] + 1, dtype=np.float64)
    mean = probs @ k
    return np.sqrt(np.clip(probs @ k**2 - mean**2, 0, None)).astype(np.float32)


def k_center(embeddings: np.ndarray, order: np.ndarray, n: int) -> np.ndarray:
    """Greedy farthest-point choice of n rows among `order` (candidates, best first), starting with
    the best: each next pick is the candidate farthest (cosine) from everything picked so far, so a
    batch is not n near-duplicates of one uncertain image."""
    if n >= len(order):
        return order
    x = normalize_embeddings(torch.from_numpy(np.ascontiguousarray(embeddings[order]))).numpy()
    picked = [0]
    dist = 1.0 - x @ x[0]
    for _ in range(n - 1):
        nxt = int(np.argmax(dist))
        picked.append(nxt)
        dist = np.minimum(dist, 1.0 - x @ x[nxt])
        dist[picked] = -np.inf
    return order[np.array(picked)]


def first_batch(embeddings: np.ndarray, n: int, seed: int = 0, sample: int = 5000) -> np.ndarray:
    """Indices of the first n images to rate when nothing is rated yet: no head, so no
    uncertainty to go on; the batch is spread over the library (farthest points among a random
    sample of it), so the first ratings cover its styles instead of its most common one."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(embeddings))[:sample]
    return k_center(embeddings, order, min(n, len(order)))


def select_new(
    rule: str,
    n: int,
    probs: np.ndarray,
    embeddings: np.ndarray,
    disagreement: np.ndarray | None = None,
    seed: int = 0,
    pool_factor: int = 4,
) -> np.ndarray:
    """Indices of n unrated images to rate next, by `rule` (see RULES). The diverse rules take the
    `pool_factor * n` most uncertain and spread the batch over them with `k_center`."""
    if rule not in RULES:
        raise ValueError(f"unknown acquisition rule {rule!r}; expected one of {RULES}")
    n = min(n, len(probs))
    if rule == "random":
        return np.random.default_rng(seed).choice(len(probs), n, replace=False)
    if rule == "disagreement-diverse":
        if disagreement is None:
            raise ValueError("the disagreement rule needs the fold heads' disagreement")
        uncertainty = disagreement
    else:
        uncertainty = entropy(probs)
    order = np.argsort(-uncertainty, kind="stable")
    if rule == "entropy":
        return order[:n]
    return k_center(embeddings, order[: pool_factor * n], n)


@dataclass
class OutOfFold:
    """Per rated row, the expected rating from the one fold head that never saw it, and the fold
    heads themselves (an ensemble whose disagreement on unrated images is an uncertainty)."""

    expected: np.ndarray  # (N,) in 1..5
    heads: list[nn.Module]
    score: np.ndarray  # (N,) in [0, 1], uncalibrated: what the metrics take
    pred: np.ndarray  # (N,) predicted class 1..5


def fold_of(hashes: np.ndarray, folds: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Each row's fold: its content hash mod K, or with `groups` (copies share a group) its
    group's key mod K (`splits.group_keys`, as the splits take it), so no fold head trains on a
    copy of an image it scores."""
    key = hashes if groups is None else group_keys(hashes, groups)
    return (key % np.uint64(folds)).astype(np.int64)


def out_of_fold(
    arrays: ManifestArrays,
    config: TrainConfig,
    folds: int = 5,
    on_fold: Callable[[int], None] | None = None,
    groups: np.ndarray | None = None,
) -> OutOfFold:
    """K-fold over every rated row (`fold_of`: a pure function of the image, or with the
    manifest's copy `groups` of its group): each fold's head trains on the other folds' train
    rows and selects its epoch on their val rows, keeping the manifest's own split roles.
    `on_fold(k)` after each fold (progress)."""
    if folds < 2:
        raise ValueError(f"out-of-fold predictions need at least 2 folds, got {folds}")
    hashes = arrays.content_hashes()
    fold = fold_of(hashes, folds, groups)
    expected = np.zeros(len(arrays), np.float64)
    score, pred = np.zeros(len(arrays), np.float32), np.zeros(len(arrays), np.int64)
    heads = []
    test, val = SPLITS.index("test"), SPLITS.index("val")
    for k in range(folds):
        held = fold == k
        codes = arrays.split_codes.copy()
        codes[codes == test] = SPLITS.index("train")  # the manifest's test rows train other folds
        codes[held] = test
        if not (codes == val).any():  # few ratings: the other folds hold no val row, take a tenth
            rest = np.flatnonzero(~held)
            pick = rest[(hashes[rest] // np.uint64(folds)) % np.uint64(10) == 0]
            codes[pick if len(pick) else rest[:1]] = val
        part = dataclasses.replace(arrays, split_codes=codes, _hashes=hashes)
        with warnings.catch_warnings():  # a rating a fold's rows lack is the fold's, not the
            warnings.simplefilter("ignore")  # train split's: the full training warns of its own
            res = train(part, dataclasses.replace(config, calibrate=False), progress=False)
        probs = class_probabilities(res.head, arrays.embeddings[held])
        expected[held] = expected_from_probs(probs)
        score[held], pred[held] = predict(res.head, arrays.embeddings[held])
        heads.append(res.head)
        if on_fold is not None:
            on_fold(k + 1)
    return OutOfFold(expected, heads, score, pred)


def disagreement(heads: list[nn.Module], x: np.ndarray) -> np.ndarray:
    """Standard deviation across heads of the expected rating: where an ensemble splits."""
    return np.stack([expected_from_probs(class_probabilities(h, x)) for h in heads]).std(axis=0)


def rerate_candidates(given: np.ndarray, oof_expected: np.ndarray, margin: float) -> np.ndarray:
    """Rated rows whose held-out prediction is at least `margin` away from the given rating,
    widest gap first."""
    gap = np.abs(oof_expected - given)
    idx = np.flatnonzero(gap >= margin)
    return idx[np.argsort(-gap[idx], kind="stable")]


def knn_distance(
    query: np.ndarray, reference: np.ndarray, k: int = 10, leave_one_out: bool = False
) -> np.ndarray:
    """Mean cosine distance from each query row to its k nearest reference rows (exact).
    `leave_one_out`: query is reference, and a row is not its own neighbour."""
    return mean_distance(nearest(query, reference, k, leave_one_out=leave_one_out)[1])


def mean_distance(similarity: np.ndarray) -> np.ndarray:
    """Per row, the mean cosine distance of its neighbours' similarities (NaN: none)."""
    if not similarity.shape[1]:
        return np.full(len(similarity), np.nan)
    return (1.0 - similarity).mean(axis=1)


def out_of_domain(library_distance: np.ndarray, rated_distance: np.ndarray) -> np.ndarray:
    """Per library image, the share of rated images that sit closer to their own rated
    neighbours than it does to the rated set: near 1 means farther out than almost any rated image."""
    ref = np.sort(rated_distance[np.isfinite(rated_distance)])
    if not len(ref):
        return np.full(len(library_distance), np.nan)
    return np.searchsorted(ref, library_distance, side="right") / len(ref)


@dataclass
class LibraryScores:
    score: np.ndarray  # (N,) in [0, 1]
    probs: np.ndarray  # (N, K) class probabilities
    uncertainty: np.ndarray  # (N,) class-distribution entropy
    ood_distance: np.ndarray  # (N,) mean cosine distance to the k nearest rated images
    ood_quantile: np.ndarray  # (N,) where that distance falls among the rated images' own
    why: Explanation | None  # the nearest rated images with their ratings (None: no ratings given)


def score_library(
    head: nn.Module, x: np.ndarray, rated: np.ndarray, ratings: np.ndarray | None = None, neighbours: int = 10
) -> LibraryScores:
    """Everything a head says about each library image (and what bench/speed.py times); with the
    rated images' `ratings`, why each score too, from the same search of the rated images."""
    near = nearest(x, rated, max(neighbours, NEIGHBOURS))
    dist = mean_distance(near[1][:, :neighbours])
    own = knn_distance(rated, rated, neighbours, leave_one_out=True)
    why = explain(head, x, rated, ratings, near=near) if ratings is not None else None
    score = why.score if why is not None else predict(head, x)[0]
    probs = class_probabilities(head, x)
    return LibraryScores(score, probs, entropy(probs), dist, out_of_domain(dist, own), why)
