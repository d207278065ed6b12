"""What to rate next, as a table: rated images that heads which never saw them disagree with
(likely slips), and unrated library images chosen by the acquisition rule; each with why it was
picked, in words with the model's numbers (`reason`) and without them (`why`, for a blind page).
The rules themselves are `silva_model.active`'s; this module turns them into the queue."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from silva_app.queue import QUEUE_COLUMNS
from silva_model import active
from silva_model.parquet import embeddings_from_arrow
from silva_model.release import TrainedHead

WHY_RERATE = "you rated it before; heads trained without it see it differently"
WHY_DISAGREE = "heads trained on parts of your ratings disagree about it"
WHY_UNSURE = "silva cannot tell yet what you would give it"
PROBS = [f"p{k}" for k in range(1, 6)]


@dataclass(frozen=True)
class QueueSettings:
    size: int
    rerate_share: float
    rule: str
    rerate_margin: float
    seed: int


@dataclass
class Queue:
    table: pl.DataFrame
    rerates: int
    rerate_candidates: int
    new: int


def rerate_rows(
    manifest: pa.Table, raw_ratings: pa.Table, head: TrainedHead, oof: active.OutOfFold, s: QueueSettings
) -> tuple[pl.DataFrame, int]:
    """Rated images whose out-of-fold expected rating is far from the given one, widest gap first
    (at most `rerate_share` of the queue), and how many were far enough."""
    from silva_model.manifest import to_arrays

    arrays = to_arrays(manifest, dim=None)
    given = arrays.scores
    candidates = active.rerate_candidates(given, oof.expected, s.rerate_margin)
    picked = candidates[: int(s.size * s.rerate_share)]
    paths = pl.from_arrow(raw_ratings.select(["image_sha256", "path", "post_id"]))
    rated = pl.DataFrame(
        {
            "image_sha256": manifest.column("image_sha256").to_pylist(),
            "given_rating": given.astype(np.int8),
            "oof": oof.expected,
            "rating_sd": active.rating_sd(active.class_probabilities(head.head, arrays.embeddings)),
        }
    )[picked].join(paths, on="image_sha256", how="left", maintain_order="left")
    rows = rated.select(
        "image_sha256",
        "path",
        "post_id",
        pl.lit("rerate").alias("kind"),
        pl.format(
            "look again: you gave it {}; trained without it, silva expects {}",
            "given_rating",
            pl.col("oof").round(1),
        ).alias("reason"),
        pl.col("oof").cast(pl.Float32).alias("expected_rating"),
        pl.col("given_rating").cast(pl.Int8),
        pl.col("rating_sd"),
        pl.lit(WHY_RERATE).alias("why"),
    )
    return rows, len(candidates)


def _embeddings_of(library_embeddings: list[pa.Table], shas: list[str]) -> np.ndarray:
    emb: dict[str, np.ndarray] = {}
    for t in library_embeddings:
        found = embeddings_from_arrow(t.column("embedding"))
        emb.update(zip(t.column("image_sha256").to_pylist(), found, strict=True))
    return np.stack([emb[s] for s in shas])


def new_rows(
    library_scores: pa.Table,
    library_embeddings: list[pa.Table],
    oof: active.OutOfFold,
    n: int,
    s: QueueSettings,
) -> pl.DataFrame:
    """`n` unrated library images by the acquisition rule (the most uncertain, spread over
    embedding space by default), with the rule's reason."""
    pool = pl.from_arrow(library_scores).filter(~pl.col("rated"))
    n = min(n, pool.height)
    new = pool.clear()
    if n > 0:
        x = _embeddings_of(library_embeddings, pool["image_sha256"].to_list())
        probs = pool.select(PROBS).to_numpy()
        dis = active.disagreement(oof.heads, x) if s.rule == "disagreement-diverse" else None
        pick = active.select_new(s.rule, n, probs, x, dis, seed=s.seed)
        new = pool[pick]
        if dis is not None:
            new = new.with_columns(pl.Series("disagreement", dis[pick], pl.Float32))
    disagreeing = "disagreement" in new.columns
    because = (
        pl.format(
            "heads trained on parts of your ratings disagree about it by {} stars",
            pl.col("disagreement").round(1),
        )
        if disagreeing
        else pl.lit("silva is unsure which rating it deserves")
    )
    sd = active.rating_sd(new.select(PROBS).to_numpy()) if new.height else np.zeros(0, np.float32)
    return new.select(
        "image_sha256",
        "path",
        "post_id",
        pl.lit("new").alias("kind"),
        pl.format("new: {}; silva expects {}", because, pl.col("expected_rating").round(1)).alias("reason"),
        "expected_rating",
        pl.lit(None, pl.Int8).alias("given_rating"),
        pl.Series("rating_sd", sd, pl.Float32),
        pl.lit(WHY_DISAGREE if disagreeing else WHY_UNSURE).alias("why"),
    )


def interleave(rerates: pl.DataFrame, news: pl.DataFrame) -> pl.DataFrame:
    """Every fourth image a re-rate (while they last), so neither kind comes in one long run."""
    slot = pl.int_range(pl.len(), dtype=pl.Int64)
    return (
        pl.concat(
            [
                rerates.with_columns((4 * slot + 3).alias("slot")),
                news.with_columns((slot + slot // 3).alias("slot")),
            ]
        )
        .sort("slot")
        .select(list(QUEUE_COLUMNS))
    )


def choose_queue(
    manifest: pa.Table,
    raw_ratings: pa.Table,
    library_scores: pa.Table,
    library_embeddings: list[pa.Table],
    head: TrainedHead,
    oof: active.OutOfFold,
    s: QueueSettings,
) -> Queue:
    rerates, candidates = rerate_rows(manifest, raw_ratings, head, oof, s)
    news = new_rows(library_scores, library_embeddings, oof, s.size - rerates.height, s)
    return Queue(interleave(rerates, news), rerates.height, candidates, news.height)
