"""What the person should rate next (`silva rate` shows it): uncertain, diverse library images,
and rated images that a head which never saw them disagrees with."""

import dagster as dg
import pyarrow as pa
from pydantic import Field

from silva_model import active
from silva_model.active import OutOfFold
from silva_model.release import TrainedHead
from silva_pipeline.assets.library import LIBRARY_GROUP
from silva_pipeline.library_scoring import shard_embeddings
from silva_pipeline.queue_choice import QueueSettings, choose_queue
from silva_pipeline.report import md_table
from silva_pipeline.resources import SiglipEmbedderResource


class RatingQueueConfig(dg.Config):
    size: int = Field(default=200, description="images in the queue")
    rerate_share: float = Field(default=0.25, description="at most this share of the queue is re-rates")
    rule: str = Field(default=active.DEFAULT_RULE, description=f"acquisition rule, one of {active.RULES}")
    rerate_margin: float = Field(
        default=1.5, description="re-rate when the held-out expected rating is this far from the given one"
    )
    seed: int = 0


@dg.asset(group_name=LIBRARY_GROUP, kinds={"pytorch", "parquet"}, code_version="2")
def rating_queue(
    context: dg.AssetExecutionContext,
    config: RatingQueueConfig,
    library_scores: pa.Table,
    library: pa.Table,
    library_embeddings: dict[str, pa.Table],
    manifest: pa.Table,
    raw_ratings: pa.Table,
    head: TrainedHead,
    out_of_fold: OutOfFold,
    embedder: SiglipEmbedderResource,
) -> dg.Output[pa.Table]:
    """The next images to rate, in order, each with why it was picked (with the model's numbers,
    and in words without them for a blind page): (a) re-rate candidates, rated images whose
    out-of-fold prediction is far from the given rating; (b) unrated library images chosen by
    the acquisition rule (by default those the out-of-fold heads disagree about most, spread over
    embedding space so the batch is not near-duplicates). Every fourth image is a re-rate while
    they last."""
    settings = QueueSettings(config.size, config.rerate_share, config.rule, config.rerate_margin, config.seed)
    embeddings, _ = shard_embeddings(context, library, library_embeddings, embedder)  # cached by the scores
    queue = choose_queue(manifest, raw_ratings, library_scores, embeddings, head, out_of_fold, settings)
    context.log.info(f"rating queue: {queue.rerates} re-rates, {queue.new} new images")
    first = queue.table.select("kind", "image_sha256", "reason").head(20).iter_rows()
    return dg.Output(
        queue.table.to_arrow(),
        metadata={
            "dagster/row_count": queue.table.height,
            "rerate": queue.rerates,
            "rerate_candidates": queue.rerate_candidates,
            "new": queue.new,
            "rule": config.rule,
            "first": dg.MetadataValue.md(
                md_table(["kind", "image", "reason"], [(k, s[:12], r) for k, s, r in first])
            ),
            "rate_with": "uv run silva rate",
        },
    )
