"""Why a head gives an image its score: the rated images nearest to it in embedding space, with
the person's ratings of them, and, for a head started from a judge, how much of it is the judge's.

One function, `explain`, serves the scores of a whole library and `silva score --explain`. It
scores the images too, in the same pass over the head: with a judge inside, the score, the
personal part and the judge's part come from one forward pass instead of three.

The judge's part of an image's latent is `judge_weight * judge_input(x)` (the judge's own latent,
standardised on the train split, so 0 is its average opinion); the rest is the personal MLP's.
- `judge_shift`: the expected rating minus the expected rating with the judge at its average
  opinion, in stars: what the judge added to (or took from) this image.
- `judge_share`: the judge's part of how far the latent sits from the middle of the quality bars,
  |judge| / (|judge| + |personal - middle|), in [0, 1]: 0 the person's part alone decides where
  the image falls, 1 the judge's alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from silva_model.head import batch_tensor, normalize_embeddings, predict
from silva_model.parquet import TableError, name_rows, read_streaming

NEIGHBOURS = 5  # rated images shown per image


@dataclass
class Explanation:
    score: np.ndarray  # (N,) in [0, 1]: what the head scores (Scorer.score_embeddings)
    neighbours: np.ndarray  # (N, k) int64 rows of the rated set, nearest first (k = min(k, rated))
    similarity: np.ndarray  # (N, k) float32 cosine similarity to each
    ratings: np.ndarray  # (N, k) int8: the person's rating of each
    judge_share: np.ndarray | None  # (N,) in [0, 1]; None: the head has no judge
    judge_shift: np.ndarray | None  # (N,) stars the judge adds; None: the head has no judge


@dataclass(frozen=True)
class RatedSet:
    """The rated images an explanation points to, as a manifest holds them."""

    embeddings: np.ndarray  # (R, D) float32
    ratings: np.ndarray  # (R,) int8 in 1..5
    image_sha256: list[str | None]
    path: list[str | None]
    source: str  # where they were read, for messages


@torch.no_grad()
def nearest(
    query: np.ndarray, reference: np.ndarray, k: int, block: int = 4096, leave_one_out: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The k reference rows nearest to each query row by cosine, exactly, nearest first:
    (indices (N, k) int64, similarities (N, k) float32), k capped at the reference's size.
    `leave_one_out`: query is reference, and a row is not its own neighbour. The one search of
    the rated images: the library's out-of-domain distance and its explanations share it."""
    r = normalize_embeddings(batch_tensor(reference))
    k = max(0, min(k, len(r) - int(leave_one_out)))
    idx, sim = np.zeros((len(query), k), np.int64), np.zeros((len(query), k), np.float32)
    if k == 0:
        return idx, sim
    for s in range(0, len(query), block):
        cos = normalize_embeddings(batch_tensor(query[s : s + block])) @ r.T
        if leave_one_out:
            rows = torch.arange(len(cos))
            cos[rows, rows + s] = -torch.inf
        top = cos.topk(k, dim=1)
        idx[s : s + block], sim[s : s + block] = top.indices.numpy(), top.values.numpy()
    return idx, sim


def _score_of_latent(head: nn.Module, latent: torch.Tensor) -> torch.Tensor:
    """The score an OrdinalHead gives a latent (its forward pass, from the latent on)."""
    if bool(head.cal_fitted):
        return head.calibrated(latent)
    return torch.sigmoid(latent.unsqueeze(-1) - head.thresholds()).mean(-1)


@torch.no_grad()
def _with_judge(head: nn.Module, x: np.ndarray, batch_size: int) -> tuple[np.ndarray, ...]:
    """(score, judge_share, judge_shift) of a head with a judge inside, in one forward pass."""
    device = next(head.parameters()).device
    was_training = head.training
    head.eval()
    middle = head.thresholds().mean()
    stars = head.config.num_classes - 1
    out: list[tuple[torch.Tensor, ...]] = []
    for s in range(0, len(x), batch_size):
        xb = batch_tensor(x[s : s + batch_size]).to(device, torch.float32)
        personal = head.personal_latent(xb).float()
        judge = (head.judge_weight * head.judge_input(xb)).float()
        score = _score_of_latent(head, personal + judge)
        share = judge.abs() / (judge.abs() + (personal - middle).abs()).clamp_min(1e-12)
        shift = stars * (score - _score_of_latent(head, personal))
        out.append((score.cpu(), share.cpu(), shift.cpu()))
    head.train(was_training)
    if not out:
        return tuple(np.zeros(0, np.float32) for _ in range(3))
    return tuple(torch.cat(col).numpy() for col in zip(*out, strict=True))


def explain(
    head: nn.Module,
    x: np.ndarray,
    rated: np.ndarray,
    ratings: np.ndarray,
    k: int = NEIGHBOURS,
    batch_size: int = 16_384,
    near: tuple[np.ndarray, np.ndarray] | None = None,
) -> Explanation:
    """Each image's score, its k nearest rated images with their ratings, and (with a judge) the
    judge's share and shift. `rated` (R, D) and `ratings` (R,) are the rated set, in one order;
    `near`: `nearest(x, rated, k or more)` where it was searched already."""
    if rated.ndim != 2 or rated.shape[1] != x.shape[1] or len(ratings) != len(rated):
        raise ValueError(
            f"the rated set must be (R, {x.shape[1]}) embeddings with R ratings, got {rated.shape} "
            f"embeddings and {len(ratings)} ratings"
        )
    if getattr(head, "has_judge", False):
        score, share, shift = _with_judge(head, x, batch_size)
    else:
        score, share, shift = predict(head, x, batch_size)[0], None, None
    idx, sim = nearest(x, rated, k) if near is None else (near[0][:, :k], near[1][:, :k])
    return Explanation(score, idx, sim, np.asarray(ratings, np.int8)[idx], share, shift)


def read_rated(path: str | Path, dim: int | None = None) -> RatedSet:
    """The rated images of a manifest (`embedding`, `personal_score`; `image_sha256` and `path`
    name them where present), of `dim`-d embeddings when given. A file that is not one is
    refused, by name."""
    table, x = read_streaming(path)
    have = set(table.column_names) | ({"embedding"} if x is not None else set())
    missing = [c for c in ("embedding", "personal_score") if c not in have]
    if missing:
        raise TableError(f"{path} is not a manifest of rated images: it lacks column(s) {missing}")
    if dim is not None and x.shape[1] != dim:
        raise TableError(
            f"{path} holds {x.shape[1]}-d embeddings, but this head reads {dim}-d: "
            "name the manifest it was trained on"
        )
    y = table.column("personal_score").to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(~np.isin(y, np.arange(1, 6)))
    if bad.size:
        raise TableError(f"{path}: personal_score is not a rating 1..5 at row(s) {name_rows(bad, None)}")

    def names(column: str) -> list[str | None]:
        return table.column(column).to_pylist() if column in table.column_names else [None] * len(y)

    return RatedSet(x, y.astype(np.int8), names("image_sha256"), names("path"), str(path))


def neighbour_columns(e: Explanation, rated_sha256: pa.Array | pa.ChunkedArray) -> dict[str, pa.Array]:
    """The explanation as table columns (lists of k per image): the neighbours' image_sha256, their
    cosine similarity and ratings, and the judge's share and shift (null without a judge)."""
    if isinstance(rated_sha256, pa.ChunkedArray):
        rated_sha256 = rated_sha256.combine_chunks()
    n, k = e.neighbours.shape
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))

    def lists(values: pa.Array) -> pa.ListArray:
        return pa.ListArray.from_arrays(offsets, values)

    def judge(v: np.ndarray | None) -> pa.Array:
        return pa.array(v, pa.float32()) if v is not None else pa.nulls(n, pa.float32())

    return {
        "neighbours": lists(rated_sha256.take(pa.array(e.neighbours.reshape(-1)))),
        "neighbour_similarity": lists(pa.array(e.similarity.reshape(-1), pa.float32())),
        "neighbour_ratings": lists(pa.array(e.ratings.reshape(-1), pa.int8())),
        "judge_share": judge(e.judge_share),
        "judge_shift": judge(e.judge_shift),
    }
