"""Pairwise judgements, an optional signal beside the ratings: "a is better than b", or a tie.

A pairs file is CSV or Parquet with columns `a`, `b` and `winner` (`a`, `b` or `tie`); `a` and `b`
name rated images by a key the manifest's rows carry (`image_sha256`, `path` or `post_id`).
Training adds a Bradley-Terry loss on the latent difference (`pair_loss`), each judgement weighing
like one rating times `pair_weight`; a ranking of n is one judgement of n - 1 comparisons
(`ranking_weight`), not n(n-1)/2. Pairs are used only where both images are
in the train split, so a judgement never leaks a val or test image into training. Judged images
that no rating has (pictoria's compared posts) come as `extra` embeddings; they train only where
they are not a copy of a val or test image (`clear_of`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import torch
from torch.nn import functional as F

T = TypeVar("T")

PAIR_COLUMNS = ("a", "b", "winner")
OUTCOMES = ("a", "b", "tie")
KEY_COLUMNS = ("image_sha256", "path", "post_id")  # what pairs may name a manifest row by


class PairsError(ValueError):
    """The pairs file breaks its contract; the message names the offending row."""


@dataclass
class Pairs:
    """Judged pairs as indices: below N (the manifest's rows) a manifest row, N + j row j of
    `extra`, the embeddings of judged images that no rating has."""

    a: np.ndarray  # (P,) int64
    b: np.ndarray  # (P,) int64
    outcome: np.ndarray  # (P,) float32: 1 a is better, -1 b is better, 0 a tie
    extra: np.ndarray | None = None  # (E, D) float32
    weight: np.ndarray | None = None  # (P,) float32: what each pair counts for; None, 1 each

    def __post_init__(self) -> None:
        n = len(self.a)
        self.weight = np.ones(n, np.float32) if self.weight is None else np.asarray(self.weight, np.float32)

    def __len__(self) -> int:
        return int(self.a.shape[0])

    def within(self, rows: np.ndarray, n_rows: int) -> Pairs:
        """The pairs whose two images are among `rows` (sorted indices of the N = `n_rows`
        manifest rows) or the extras, re-indexed into [those rows; the extras]."""
        n_extra = 0 if self.extra is None else len(self.extra)
        pos = np.full(n_rows + n_extra, -1, dtype=np.int64)
        pos[rows] = np.arange(len(rows))
        pos[n_rows:] = len(rows) + np.arange(n_extra)
        keep = (pos[self.a] >= 0) & (pos[self.b] >= 0)
        return Pairs(pos[self.a[keep]], pos[self.b[keep]], self.outcome[keep], self.extra, self.weight[keep])

    def keep_extras(self, keep: np.ndarray, n_rows: int) -> Pairs:
        """Without the extra images where `keep` is False and every pair that names one."""
        if self.extra is None:
            return self
        pos = np.concatenate([np.arange(n_rows), np.where(keep, n_rows + np.cumsum(keep) - 1, -1)])
        ok = (pos[self.a] >= 0) & (pos[self.b] >= 0)
        extra = self.extra[keep] if keep.any() else None
        return Pairs(pos[self.a[ok]], pos[self.b[ok]], self.outcome[ok], extra, self.weight[ok])

    def plus(self, other: Pairs, n_rows: int) -> Pairs:
        """Both sets of judgements over the same N = `n_rows` manifest rows, extras of both kept
        (the second's after the first's)."""
        n_extra = 0 if self.extra is None else len(self.extra)
        a, b = (np.where(i >= n_rows, i + n_extra, i) for i in (other.a, other.b))
        extras = [e for e in (self.extra, other.extra) if e is not None]
        return Pairs(
            np.concatenate([self.a, a]),
            np.concatenate([self.b, b]),
            np.concatenate([self.outcome, other.outcome]),
            np.concatenate(extras) if extras else None,
            np.concatenate([self.weight, other.weight]),
        )


def clear_of(extra: np.ndarray, held_out: np.ndarray, cosine: float, block: int = 4096) -> np.ndarray:
    """Which extra images are no copy of a held-out (val or test) image: their embeddings'
    cosine stays at or below the copy rule's, whatever the vectors' norms. Without pixels this
    is the embedding half of the manifest's rule, so extras that are a crop of a test image can
    still pass: they carry a comparison, never a rating."""
    ok = np.ones(len(extra), dtype=bool)
    if len(extra) == 0 or len(held_out) == 0:
        return ok
    h = held_out / np.maximum(np.linalg.norm(held_out, axis=1, keepdims=True), 1e-12)
    e = extra / np.maximum(np.linalg.norm(extra, axis=1, keepdims=True), 1e-12)
    for s in range(0, len(e), block):
        ok[s : s + block] = (e[s : s + block] @ h.T).max(1) <= cosine
    return ok


def read_pairs(path: str | Path, keys: dict[str, pa.Array | np.ndarray]) -> Pairs:
    """Pairs from a CSV or Parquet file, resolved against the manifest rows' keys (see
    `resolve_pairs`)."""
    path = Path(path).expanduser()
    try:
        if path.suffix.lower() == ".parquet":
            table = pq.read_table(path)
        else:
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=False))
    except (OSError, pa.ArrowInvalid) as e:
        raise PairsError(f"{path}: not a readable pairs file: {e}") from e
    missing = [c for c in PAIR_COLUMNS if c not in table.column_names]
    if missing:
        raise PairsError(f"{path}: missing column(s) {missing}; expected {list(PAIR_COLUMNS)}")
    return resolve_pairs(table, keys, str(path), root=path.parent)


def manifest_keys(manifest: pa.Table | str | Path) -> dict[str, pa.Array]:
    """The columns a manifest's rows can be named by (read alone from a parquet file)."""
    if not isinstance(manifest, pa.Table):
        names = pq.read_schema(manifest).names
        manifest = pq.read_table(manifest, columns=[c for c in KEY_COLUMNS if c in names])
    return {c: manifest.column(c).combine_chunks() for c in KEY_COLUMNS if c in manifest.column_names}


def resolve_pairs(
    table: pa.Table, keys: dict[str, pa.Array | np.ndarray], source: str = "pairs", root: Path | None = None
) -> Pairs:
    """Map the `a`/`b` keys of a pairs table to manifest rows. The pairs name images by one of the
    key columns (`image_sha256`, `path` or `post_id`): the one that knows the most of them; a
    relative path is relative to `root` (the pairs file's folder), as in a ratings file. Every bad
    row is an error that names it: an image no rated row has, an image paired with itself, a winner
    that is not a, b or tie."""
    if not keys:
        raise PairsError(f"{source}: the manifest has no column to name images by {KEY_COLUMNS}")
    winner = pc.utf8_lower(pc.utf8_trim_whitespace(table.column("winner").cast(pa.string())))
    bad = pc.invert(pc.fill_null(pc.is_in(winner, pa.array(OUTCOMES)), False))
    _fail_first(bad, source, lambda i: f"winner {table.column('winner')[i].as_py()!r} is not a, b or tie")
    best: tuple[int, str, dict[str, pa.Array]] | None = None
    for name, values in keys.items():
        values = pa.array(values) if not isinstance(values, pa.Array) else values
        try:
            idx = {
                s: pc.index_in(_keys(table.column(s), name, root).cast(values.type), values)
                for s in ("a", "b")
            }
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue  # the pairs' keys cannot be of this kind (text against integer ids)
        found = sum(len(v) - v.null_count for v in idx.values())
        if best is None or found > best[0]:
            best = (found, name, idx)
    if best is None:
        raise PairsError(f"{source}: columns a and b match none of the image keys {sorted(keys)}")
    _, name, idx = best
    for side in ("a", "b"):
        col = table.column(side)
        _fail_first(
            pc.is_null(idx[side]),
            source,
            lambda i, c=col, s=side: f"image {s}={c[i].as_py()!r} is not rated ({name})",
        )
    a, b = (idx[s].to_numpy(zero_copy_only=False).astype(np.int64) for s in ("a", "b"))
    _fail_first(a == b, source, lambda i: "an image is paired with itself")
    w = winner.to_numpy(zero_copy_only=False)
    return Pairs(a, b, np.select([w == "a", w == "b"], [1.0, -1.0], 0.0).astype(np.float32))


def _keys(column: pa.ChunkedArray, kind: str, root: Path | None) -> pa.ChunkedArray | pa.Array:
    if kind != "path" or root is None or not pa.types.is_string(column.type):
        return column
    return pa.array([str((root / v).resolve()) if v else v for v in column.to_pylist()], pa.string())


def _fail_first(bad: pa.Array | pa.ChunkedArray | np.ndarray, source: str, why) -> None:
    hits = np.flatnonzero(np.asarray(bad, dtype=bool))
    if hits.size:
        i = int(hits[0])
        where = f"line {i + 2}" if source.lower().endswith(".csv") else f"row {i}"  # a CSV has a header line
        raise PairsError(f"{source}: {where}: {why(i)} ({hits.size} such row(s))")


JUDGEMENT_SCALE = 2**0.5


def ranking_weight(n: int) -> float:
    """What each of a ranking's n(n-1)/2 pairs counts for: 2/n, so the ranking counts as n - 1
    judgements. Its pairs share one look at each image, and a group the queue chose is of close
    images whose far-apart pairs say little more than the adjacent ones; counted one each, 100
    rankings of six outweighed 200 ratings 7.5 to 1 and taught the head mostly noise
    (docs/benchmarks.md, comparisons)."""
    return 2.0 / n


def ranking_pairs(order: Sequence[T]) -> list[tuple[T, T, float]]:
    """A ranking's (better, worse, weight) pairs, best first: every pair it orders, each
    weighing `ranking_weight`; a pair ranked is one judgement of weight 1, a skipped one none."""
    if len(order) < 2:
        return []
    weight = ranking_weight(len(order))
    return [(a, b, weight) for k, a in enumerate(order) for b in order[k + 1 :]]


def pair_loss(
    fa: torch.Tensor, fb: torch.Tensor, outcome: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Bradley-Terry on the latent difference, in the ratings' own noise model: a rating clears bar
    k when f(x) + e > theta_k with e ~ Logistic(0, 1), so judging a against b compares two such
    perceptions, and e_a - e_b has twice the variance: P(a beats b) = sigmoid((fa - fb) / sqrt 2)
    (Logistic(0, sqrt 2) has exactly that variance). A tie is a half-win for each side, which pulls
    the two latents together. `weight` scales each pair's term. Broadcasts over members."""
    target = ((1 + outcome) / 2).expand_as(fa)
    w = None if weight is None else weight.expand_as(fa)
    return F.binary_cross_entropy_with_logits((fa - fb) / JUDGEMENT_SCALE, target, weight=w)


def rank_loss(latents: torch.Tensor, y: torch.Tensor, scale: float = JUDGEMENT_SCALE) -> torch.Tensor:
    """RankNet over a batch: every two images rated differently are a judged pair (`pair_loss`
    on each ordered pair the ratings decide). (members, B) latents, (B,) ratings."""
    better = y[:, None] > y[None, :]
    d = (latents[:, :, None] - latents[:, None, :]) / scale
    return (F.softplus(-d) * better).sum() / (better.sum().clamp_min(1) * latents.shape[0])
