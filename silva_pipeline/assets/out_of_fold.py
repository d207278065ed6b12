"""The out_of_fold asset: every rated image scored by a head that never saw it, trained once and
read by the evaluation (its headline below 1,000 ratings), the release gate (its comparison at
small sizes) and the rating queue (re-rates, and the fold heads' disagreement on the library)."""

import sys

import dagster as dg
import pyarrow as pa
from pydantic import Field
from tqdm.auto import tqdm

from silva_model.active import OutOfFold
from silva_model.active import out_of_fold as fit_out_of_fold
from silva_model.manifest import copy_groups_of, to_arrays
from silva_model.metrics import spearman
from silva_model.release import TrainedHead
from silva_pipeline.assets.raw_ratings import GROUP
from silva_pipeline.evaluation_report import OUT_OF_FOLD_BELOW, OUT_OF_FOLDS

LARGE_FOLDS = 2  # above: re-rates and the heads' disagreement only, at the cost of about one head


class OutOfFoldConfig(dg.Config):
    folds: int = Field(
        default=-1,
        description=f"K: each fold scored by a head trained on the rest; -1: {OUT_OF_FOLDS} below "
        f"{OUT_OF_FOLD_BELOW:,} ratings (the evaluation's headline), else {LARGE_FOLDS}",
    )

    def for_rows(self, n: int) -> int:
        if self.folds != -1:
            return self.folds
        return OUT_OF_FOLDS if n < OUT_OF_FOLD_BELOW else LARGE_FOLDS


@dg.asset(group_name=GROUP, kinds={"pytorch"}, code_version="2")
def out_of_fold(
    context: dg.AssetExecutionContext, config: OutOfFoldConfig, manifest: pa.Table, head: TrainedHead
) -> dg.Output[OutOfFold]:
    """K heads trained as `head` was (its config, calibration aside), each on every rating but one
    fold's (copies share a fold: `fold_of`, the key of the image's copy group mod K), and
    each rated image's expected rating and score from the one head that never saw it, nor a copy
    of it, in the manifest's row order."""
    arrays = to_arrays(manifest, dim=None)
    folds = config.for_rows(len(arrays))
    progress = tqdm(total=folds, desc="out-of-fold heads", unit="fold", disable=None, file=sys.stderr)

    def on_fold(k: int) -> None:
        progress.update()
        context.log.info(f"out-of-fold head {k}/{folds} trained")

    with progress:
        oof = fit_out_of_fold(arrays, head.train_config, folds, on_fold, copy_groups_of(manifest, arrays))
    return dg.Output(
        oof,
        metadata={
            "folds": folds,
            "rows": len(arrays),
            "oof_spearman": round(spearman(arrays.scores, oof.score), 4),
        },
    )
