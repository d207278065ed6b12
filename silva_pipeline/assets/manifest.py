from collections.abc import Iterator

import dagster as dg
import numpy as np
import polars as pl
import pyarrow as pa
from pydantic import Field

from silva_model.manifest import ManifestError, build_table, embeddings_from_arrow, to_arrays, validate_arrays
from silva_model.splits import SPLITS, assign_split_codes, content_hash
from silva_pipeline.assets.raw_ratings import GROUP
from silva_pipeline.report import md_table

MIN_EVAL_ROWS = 10


class ManifestConfig(dg.Config):
    val_fraction: float = Field(default=0.1, description="share of images (by content hash) for validation")
    test_fraction: float = Field(default=0.1, description="share of images (by content hash) for test")


@dg.asset(group_name=GROUP, kinds={"parquet"}, code_version="1")
def manifest(
    config: ManifestConfig, raw_ratings: pa.Table, image_embeddings: pa.Table
) -> dg.Output[pa.Table]:
    """Ratings joined with embeddings: the manifest parquet (`embedding`, `personal_score`,
    `split`, `post_id` when every image has one, plus `image_sha256` for provenance). Splits
    come from each embedding's bytes, so an image never changes split as ratings grow."""
    r = pl.from_arrow(raw_ratings.select(["image_sha256", "rating", "post_id"]))
    e = pl.DataFrame({"image_sha256": image_embeddings.column("image_sha256").to_pylist()}).with_row_index(
        "row"
    )
    j = r.join(e, on="image_sha256", how="inner", maintain_order="left")
    x = embeddings_from_arrow(image_embeddings.column("embedding"))[j["row"].to_numpy()]
    fractions = (1 - config.val_fraction - config.test_fraction, config.val_fraction, config.test_fraction)
    codes = assign_split_codes(content_hash(x), fractions)
    post_id = j["post_id"].to_numpy() if j["post_id"].null_count() == 0 else None
    table = build_table(x, j["rating"].to_numpy(), codes, post_id).append_column(
        "image_sha256", pa.array(j["image_sha256"].to_list(), pa.string())
    )
    sizes = {s: int((codes == i).sum()) for i, s in enumerate(SPLITS)}
    return dg.Output(
        table,
        metadata={
            "dagster/row_count": table.num_rows,
            "embedding_dim": int(x.shape[1]) if x.ndim == 2 else 0,
            "splits": dg.MetadataValue.md(md_table(["split", "rows"], sizes.items())),
            "ratings_without_embedding": r.height - j.height,
        },
    )


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            "contract",
            asset="manifest",
            blocking=True,
            description="columns, widths, finite values, ratings 1..5, known splits, non-empty train and val",
        ),
        dg.AssetCheckSpec("no_embedding_in_two_splits", asset="manifest", blocking=True),
        dg.AssetCheckSpec(
            "train_covers_all_ratings",
            asset="manifest",
            description="warns when a rating 1..5 has no train example",
        ),
        dg.AssetCheckSpec(
            "split_sizes",
            asset="manifest",
            description=f"warns when val or test has fewer than {MIN_EVAL_ROWS} rows",
        ),
    ],
)
def manifest_checks(manifest: pa.Table) -> Iterator[dg.AssetCheckResult]:
    """The manifest contract, as checks: a failed blocking one stops training."""
    try:
        arrays = to_arrays(manifest, dim=None)
        counts = validate_arrays(arrays)
        yield dg.AssetCheckResult(check_name="contract", passed=True)
    except ManifestError as e:
        yield dg.AssetCheckResult(
            check_name="contract", passed=False, description=str(e), metadata={"error": str(e)}
        )
        return
    per_hash = (
        pl.DataFrame({"h": arrays.content_hashes(), "s": arrays.split_codes})
        .group_by("h")
        .agg(pl.col("s").n_unique())
    )
    leaks = int((per_hash["s"] > 1).sum())
    yield dg.AssetCheckResult(
        check_name="no_embedding_in_two_splits",
        passed=leaks == 0,
        metadata={"embeddings_in_two_splits": leaks},
    )
    missing = [c for c, n in counts["train"].items() if n == 0]
    yield dg.AssetCheckResult(
        check_name="train_covers_all_ratings",
        passed=not missing,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"train has no images rated {missing}" if missing else None,
        metadata={
            "train_counts": dg.MetadataValue.md(md_table(["rating", "train images"], counts["train"].items()))
        },
    )
    sizes = {s: int(np.sum(list(c.values()))) for s, c in counts.items()}
    small = [s for s in ("val", "test") if sizes[s] < MIN_EVAL_ROWS]
    yield dg.AssetCheckResult(
        check_name="split_sizes",
        passed=not small,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{small} have fewer than {MIN_EVAL_ROWS} rows: metrics will be noisy" if small else None,
        metadata={f"{s}_rows": n for s, n in sizes.items()},
    )
