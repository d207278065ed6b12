"""What the person should rate next (`silva rate` shows it): uncertain, diverse library images,
and rated images that a head which never saw them disagrees with."""

import dataclasses
import sys

import dagster as dg
import numpy as np
import polars as pl
import pyarrow as pa
from pydantic import Field
from tqdm.auto import tqdm

from silva_app.queue import QUEUE_COLUMNS
from silva_model import active
from silva_model.manifest import to_arrays
from silva_model.parquet import embeddings_from_arrow
from silva_model.release import TrainedHead
from silva_pipeline.assets.library import LIBRARY_GROUP
from silva_pipeline.report import md_table


class RatingQueueConfig(dg.Config):
    size: int = Field(default=200, description="images in the queue")
    rerate_share: float = Field(default=0.25, description="at most this share of the queue is re-rates")
    rule: str = Field(default=active.DEFAULT_RULE, description=f"acquisition rule, one of {active.RULES}")
    folds: int = Field(default=5, description="K of the out-of-fold heads that find re-rate candidates")
    rerate_margin: float = Field(
        default=1.5, description="re-rate when the held-out expected rating is this far from the given one"
    )
    seed: int = 0


@dg.asset(group_name=LIBRARY_GROUP, kinds={"pytorch", "parquet"}, code_version="1")
def rating_queue(
    context: dg.AssetExecutionContext,
    config: RatingQueueConfig,
    library_scores: pa.Table,
    library_embeddings: dict[str, pa.Table],
    manifest: pa.Table,
    raw_ratings: pa.Table,
    head: TrainedHead,
) -> dg.Output[pa.Table]:
    """The next images to rate, in order, each with why it was picked: (a) re-rate candidates,
    rated images whose out-of-fold prediction (K heads, each blind to its fold) is far from the
    given rating; (b) unrated library images chosen by the acquisition rule (by default the most
    uncertain, spread over embedding space so the batch is not near-duplicates). Every fourth
    image is a re-rate while they last."""
    arrays = to_arrays(manifest, dim=None)
    cfg = dataclasses.replace(head.train_config, seed=config.seed)
    progress = tqdm(
        total=config.folds, desc="rating queue: fold heads", unit="fold", disable=None, file=sys.stderr
    )

    def on_fold(k: int) -> None:
        progress.update()
        context.log.info(f"fold head {k}/{config.folds} trained")

    with progress:
        oof = active.out_of_fold(arrays, cfg, config.folds, on_fold)
    given = arrays.scores
    candidates = active.rerate_candidates(given, oof.expected, config.rerate_margin)
    rerate_idx = candidates[: int(config.size * config.rerate_share)]
    paths = pl.from_arrow(raw_ratings.select(["image_sha256", "path", "post_id"]))
    rated = pl.DataFrame(
        {
            "image_sha256": manifest.column("image_sha256").to_pylist(),
            "given_rating": given.astype(np.int8),
            "oof": oof.expected,
            "rating_sd": active.rating_sd(active.class_probabilities(head.head, arrays.embeddings)),
        }
    )[rerate_idx].join(paths, on="image_sha256", how="left", maintain_order="left")
    rerates = rated.select(
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
    )

    pool = pl.from_arrow(library_scores).filter(~pl.col("rated"))
    n_new = min(config.size - rerates.height, pool.height)
    new = pool.clear()
    if n_new > 0:
        emb = {}
        for t in library_embeddings.values():
            emb.update(
                zip(
                    t.column("image_sha256").to_pylist(),
                    embeddings_from_arrow(t.column("embedding")),
                    strict=True,
                )
            )
        x = np.stack([emb[s] for s in pool["image_sha256"].to_list()])
        probs = pool.select([f"p{k}" for k in range(1, 6)]).to_numpy()
        dis = active.disagreement(oof.heads, x) if config.rule == "disagreement-diverse" else None
        pick = active.select_new(config.rule, n_new, probs, x, dis, seed=config.seed)
        new = pool[pick]
        if dis is not None:
            new = new.with_columns(pl.Series("disagreement", dis[pick], pl.Float32))
    news = new.select(
        "image_sha256",
        "path",
        "post_id",
        pl.lit("new").alias("kind"),
        pl.format(
            "new: {}; silva expects {}",
            pl.format(
                "heads trained on parts of your ratings disagree about it by {} stars",
                pl.col("disagreement").round(1),
            )
            if "disagreement" in new.columns
            else pl.lit("silva is unsure which rating it deserves"),
            pl.col("expected_rating").round(1),
        ).alias("reason"),
        "expected_rating",
        pl.lit(None, pl.Int8).alias("given_rating"),
        pl.Series(
            "rating_sd", active.rating_sd(new.select([f"p{k}" for k in range(1, 6)]).to_numpy()), pl.Float32
        )
        if new.height
        else pl.lit(None, pl.Float32).alias("rating_sd"),
    )
    # Every fourth image is a re-rate (while they last), so neither kind comes in one long run.
    slot = pl.int_range(pl.len(), dtype=pl.Int64)
    queue = (
        pl.concat(
            [
                rerates.with_columns((4 * slot + 3).alias("slot")),
                news.with_columns((slot + slot // 3).alias("slot")),
            ]
        )
        .sort("slot")
        .select(list(QUEUE_COLUMNS))
    )
    context.log.info(f"rating queue: {rerates.height} re-rates, {news.height} new images")
    return dg.Output(
        queue.to_arrow(),
        metadata={
            "dagster/row_count": queue.height,
            "rerate": rerates.height,
            "rerate_candidates": len(candidates),
            "new": news.height,
            "rule": config.rule,
            "first": dg.MetadataValue.md(
                md_table(
                    ["kind", "image", "reason"],
                    [
                        (k, s[:12], r)
                        for k, s, r in queue.select("kind", "image_sha256", "reason").head(20).iter_rows()
                    ],
                )
            ),
            "rate_with": "uv run silva rate",
        },
    )
