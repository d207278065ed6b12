"""The manifest asset and its checks: the contract, copies across splits, split sizes."""

from collections.abc import Iterator

import dagster as dg
import numpy as np
import polars as pl
import pyarrow as pa
from pydantic import Field

from silva_model.copies import DEFAULT_COPY_RULE, CopyRule, signatures_of
from silva_model.manifest import (
    ManifestError,
    build_table,
    conflicting_copies,
    copy_groups_of,
    copy_rule_of,
    near_duplicate_leaks,
    split_codes_for,
    to_arrays,
    validate_arrays,
    with_copy_rule,
)
from silva_model.metrics import MIN_EVAL_ROWS
from silva_model.parquet import backbones_from_arrow, embeddings_from_arrow
from silva_model.splits import SPLITS, content_hash
from silva_pipeline.assets.raw_ratings import GROUP
from silva_pipeline.report import md_table
from silva_pipeline.resources.io_manager import previous_table


class ManifestConfig(dg.Config):
    val_fraction: float = Field(default=0.1, description="share of images (by content hash) for validation")
    test_fraction: float = Field(default=0.1, description="share of images (by content hash) for test")
    near_duplicate_cosine: float = Field(
        default=DEFAULT_COPY_RULE.cosine,
        description="embeddings more similar than this are copies of one image and share a split",
    )
    near_duplicate_pixels: float = Field(
        default=DEFAULT_COPY_RULE.pixels,
        description="pixel signatures (8x8 grey thumbnails, mirrored too, frames stripped) that "
        "correlate more than this are copies (crops, rotations, recolours, frames) and share a split",
    )

    def copy_rule(self) -> CopyRule:
        return CopyRule(cosine=self.near_duplicate_cosine, pixels=self.near_duplicate_pixels)


def _moved_since(instance: dg.DagsterInstance, shas: list[str], codes: np.ndarray) -> int:
    """How many images sit in another split than in the previous manifest."""
    prev = previous_table(instance, dg.AssetKey("manifest"), ["image_sha256", "split"])
    if prev is None:
        return 0
    old = pl.from_arrow(prev).with_columns(pl.col("split").cast(pl.String))
    now = pl.DataFrame({"image_sha256": shas, "now": np.asarray(SPLITS)[codes]})
    return now.join(old, on="image_sha256").filter(pl.col("now") != pl.col("split")).height


@dg.asset(group_name=GROUP, kinds={"parquet"}, code_version="3")
def manifest(
    context: dg.AssetExecutionContext,
    config: ManifestConfig,
    raw_ratings: pa.Table,
    image_embeddings: pa.Table,
) -> dg.Output[pa.Table]:
    """Ratings joined with embeddings: the manifest parquet (`embedding`, `personal_score`,
    `split`, `backbone`, `post_id` when every image has one, `image_sha256`, `path` and
    `copy_signature`). Splits come from each embedding's bytes; copies (re-encoded, resized,
    cropped, mirrored, recoloured or framed, found by the embeddings and the pixels) form groups,
    and each group takes the split of a hash of the group, so a copy never lands in test while its
    original trains."""
    r = pl.from_arrow(raw_ratings.select(["image_sha256", "rating", "post_id", "path"]))
    e = pl.DataFrame({"image_sha256": image_embeddings.column("image_sha256").to_pylist()}).with_row_index(
        "row"
    )
    j = r.join(e, on="image_sha256", how="inner", maintain_order="left")
    rows = j["row"].to_numpy()
    x = embeddings_from_arrow(image_embeddings.column("embedding"))[rows]
    conflicts = conflicting_copies(x, j["rating"].to_numpy())
    left_out = j.filter(pl.Series(conflicts)).select("path", "rating")
    if left_out.height:
        context.log.warning(
            f"{left_out.height} rated image(s) left out: the same picture under another file, rated "
            f"differently (rate them alike, or remove one): {', '.join(left_out['path'].head(5).to_list())}"
        )
        j, rows, x = j.filter(pl.Series(~conflicts)), rows[~conflicts], x[~conflicts]
    bb_codes, specs = backbones_from_arrow(image_embeddings.column("backbone"))
    fractions = (1 - config.val_fraction - config.test_fraction, config.val_fraction, config.test_fraction)
    signatures = signatures_of(image_embeddings)[rows]
    rule = config.copy_rule()
    codes, groups = split_codes_for(x, content_hash(x), fractions, rule, signatures)
    post_id = j["post_id"].to_numpy() if j["post_id"].null_count() == 0 else None
    shas = j["image_sha256"].to_list()
    table = build_table(x, j["rating"].to_numpy(), codes, post_id, (bb_codes[rows], specs), signatures)
    table = table.append_column("image_sha256", pa.array(shas, pa.string()))
    table = with_copy_rule(  # path: what a pairs file may name an image by
        table.append_column("path", j["path"].to_arrow().cast(pa.string())), rule
    )
    sizes = {s: int((codes == i).sum()) for i, s in enumerate(SPLITS)}
    labels, counts = np.unique(groups, return_counts=True)
    multi = labels[counts > 1]
    sha_arr, shown = np.asarray(shas), []
    for g in multi[np.argsort(-counts[counts > 1], kind="stable")][:20]:  # the 20 largest groups
        members = groups == g
        shown.append(
            (int(members.sum()), SPLITS[codes[members][0]], ", ".join(s[:12] for s in sha_arr[members][:4]))
        )
    moved = _moved_since(context.instance, shas, codes)
    if moved:
        context.log.info(f"{moved} image(s) changed split: they joined or left a group of copies")
    return dg.Output(
        table,
        metadata={
            "dagster/row_count": table.num_rows,
            "embedding_dim": int(x.shape[1]) if x.ndim == 2 else 0,
            "splits": dg.MetadataValue.md(md_table(["split", "rows"], sizes.items())),
            "ratings_without_embedding": r.height - j.height - left_out.height,
            "conflicting_copies": left_out.height,
            "conflicting_copies_first": ", ".join(f"{p} ({v})" for p, v in left_out.head(4).iter_rows()),
            "near_duplicate_cosine": rule.cosine,
            "near_duplicate_pixels": rule.pixels,
            "images_with_pixel_signature": int((~np.isnan(signatures).any(1)).sum()),
            "near_duplicate_groups": int(multi.size),
            "images_in_near_duplicate_groups": int(counts[counts > 1].sum()),
            "largest_near_duplicate_group": int(counts.max()) if counts.size else 0,
            "near_duplicates": dg.MetadataValue.md(
                md_table(["images", "split", "sha256 (first 4)"], shown) if shown else "none"
            ),
            "images_moved_split": moved,
            "backbones": dg.MetadataValue.md(md_table(["backbone"], [[s.describe()] for s in specs])),
        },
    )


def _not_evaluated(why: str) -> Iterator[dg.AssetCheckResult]:
    """The warning checks, reported (Dagster wants every check) but not run."""
    for name in ("train_covers_all_ratings", "split_sizes"):
        yield dg.AssetCheckResult(
            check_name=name,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"not evaluated: {why}",
        )


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            "contract",
            asset="manifest",
            blocking=True,
            description="columns, widths, finite values, ratings 1..5, known splits, "
            "non-empty train and val, one backbone",
        ),
        dg.AssetCheckSpec(
            "no_near_duplicates_across_splits",
            asset="manifest",
            blocking=True,
            description="no group of near-duplicate embeddings spans two splits (test leakage)",
        ),
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
    """The manifest contract, as checks: a failed blocking one stops training. The leakage check
    looks at the embeddings themselves, whatever the contract says."""
    try:
        arrays = to_arrays(manifest, dim=None)
    except ManifestError as e:
        for name in ("contract", "no_near_duplicates_across_splits"):
            yield dg.AssetCheckResult(check_name=name, passed=False, description=str(e))
        yield from _not_evaluated("the manifest is unreadable")
        return
    rule = copy_rule_of(manifest)
    n_leaks, first = near_duplicate_leaks(manifest, arrays)
    yield dg.AssetCheckResult(
        check_name="no_near_duplicates_across_splits",
        passed=n_leaks == 0,
        description=(
            f"{n_leaks} near-duplicate group(s) span splits; first: rows {first[:5].tolist()} in "
            f"{sorted({SPLITS[c] for c in arrays.split_codes[first]})}"
            if n_leaks
            else None
        ),
        metadata={
            "groups_across_splits": n_leaks,
            "near_duplicate_cosine": rule.cosine,
            "near_duplicate_pixels": rule.pixels,
        },
    )
    try:
        counts = validate_arrays(arrays, groups=lambda: copy_groups_of(manifest, arrays))
        backbone = arrays.backbone()
    except ManifestError as e:
        yield dg.AssetCheckResult(
            check_name="contract", passed=False, description=str(e), metadata={"error": str(e)}
        )
        yield from _not_evaluated("the contract failed")
        return
    yield dg.AssetCheckResult(check_name="contract", passed=True, metadata={"backbone": backbone.describe()})
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
