"""The raw_ratings asset: the person's ratings from the configured source with silva's ratings
log on top; bad rows listed, and dropped or fatal per its config."""

from typing import Literal

import dagster as dg
import pyarrow as pa
from pydantic import Field

from silva_pipeline.embedding import with_precomputed_backbone
from silva_pipeline.report import md_table
from silva_pipeline.resources import RatingsSource

GROUP = "silva"


class RawRatingsConfig(dg.Config):
    on_bad_rows: Literal["drop", "fail"] = Field(
        default="drop", description="drop: list bad rows in metadata and go on; fail: stop the run"
    )


@dg.asset(group_name=GROUP, kinds={"python"}, code_version="1")
def raw_ratings(
    context: dg.AssetExecutionContext, config: RawRatingsConfig, ratings_source: RatingsSource
) -> dg.Output[pa.Table]:
    """The person's 1-5 ratings, one row per distinct image keyed by the SHA-256 of its bytes,
    with its path and provenance (and its SigLIP2 embedding when the source has one).
    pictoria's 5-point absolute annotations count as ratings, per the source's settings, and
    the metadata says how many were read and used. Bad rows (missing file, rating outside 1..5,
    one image rated twice differently) are listed
    in the metadata and dropped, or fail the run, per config: never silently."""
    load = ratings_source.load()
    bad_rows = [(b.where, b.reason) for b in load.bad]
    bad_md = md_table(["where", "problem"], bad_rows) if bad_rows else "none"
    if load.bad and config.on_bad_rows == "fail":
        raise dg.Failure(
            description=f"{len(bad_rows)} bad rating row(s); first: {bad_rows[0][0]}: {bad_rows[0][1]}",
            metadata={"bad_rows": dg.MetadataValue.md(bad_md)},
        )
    for b in load.bad[:20]:
        context.log.warning(f"dropped {b.where}: {b.reason}")
    if load.rows.height == 0:
        path, where = ratings_source.setting("path")
        first = (
            f"; the first of {len(bad_rows)} bad row(s): {bad_rows[0][0]}: {bad_rows[0][1]}"
            if bad_rows
            else ""
        )
        raise dg.Failure(
            description=f"{where}: {path or 'the ratings source'} holds no usable rated images{first}",
            metadata={"bad_rows": dg.MetadataValue.md(bad_md)},
        )
    counts = load.rows["rating"].value_counts().sort("rating")
    has_emb = "embedding" in load.rows.columns
    n_pre = int(load.rows["embedding"].is_not_null().sum()) if has_emb else 0
    table = with_precomputed_backbone(load.rows.to_arrow(), load.backbone)
    return dg.Output(
        table,
        metadata={
            "dagster/row_count": load.rows.height,
            "source": ratings_source.kind,
            "fingerprint": ratings_source.fingerprint(),
            "ratings": dg.MetadataValue.md(md_table(["rating", "images"], counts.iter_rows())),
            "bad_rows_count": len(load.bad),
            "bad_rows_first": f"{load.bad[0].where}: {load.bad[0].reason}" if load.bad else "",
            "bad_rows": dg.MetadataValue.md(bad_md),
            "merged_duplicates": load.merged_duplicates,
            "skipped_files": len(load.skipped),
            "skipped_files_first": dg.MetadataValue.md(
                md_table(["file", "why"], [(b.where, b.reason) for b in load.skipped[:20]])
                if load.skipped
                else "none"
            ),
            "precomputed_embeddings": n_pre,
            **(
                {"annotations": dg.MetadataValue.md(md_table(["annotations", "count"], load.notes.items()))}
                if load.notes
                else {}
            ),
        },
    )
