"""The release gate: a blocking check on `evaluation` that compares the new head with the
release in force, and the verdict `hub_release` reads before it releases anything.

`GATE_OP` is the check's op name, the key its `force` option is set under in run config.
"""

from typing import Any

import dagster as dg
import numpy as np
import pyarrow as pa
from pydantic import Field

from silva_model.head import predict
from silva_model.manifest import to_arrays
from silva_model.metrics import paired_spearman_difference, spearman
from silva_model.release import TrainedHead, load_head
from silva_pipeline.records import EvaluationReport

EVALUATION, RELEASE = dg.AssetKey("evaluation"), dg.AssetKey("hub_release")
CHECK_NAME = "beats_last_release"
GATE_OP = f"evaluation_{CHECK_NAME}"
MIN_EVAL_ROWS = 10  # fewer test (or val) images than this say nothing about a head


def force_release() -> dict[str, Any]:
    """Run config that releases the new head whatever the gate finds."""
    return {"ops": {GATE_OP: {"config": {"force": True}}}}


class ReleaseGateConfig(dg.Config):
    force: bool = Field(
        default=False, description="release even if the new head is worse than the one in force"
    )


def last_release(instance: dg.DagsterInstance) -> dict | None:
    """The metadata of the latest `hub_release` materialization: what is in force now."""
    event = instance.get_latest_materialization_event(RELEASE)
    if event is None or event.asset_materialization is None:
        return None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def _released_head_scores(last: dict, head: TrainedHead, x: np.ndarray) -> np.ndarray | str:
    """The release in force, scored on these embeddings; or why it cannot be: "gone" (its folder
    cannot be read: the gate falls back to its recorded number) or "other embeddings" (it reads
    another width or backbone: no number of it says anything about this head)."""
    try:
        released, _ = load_head(str(last.get("release", "")))
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return "gone"
    if released.config.embed_dim != x.shape[1] or released.config.backbone.differences(
        head.head.config.backbone
    ):
        return "other embeddings"
    return predict(released, x)[0]


@dg.asset_check(
    asset=EVALUATION,
    blocking=True,
    additional_ins={"head": dg.AssetIn("head"), "manifest": dg.AssetIn("manifest")},
)
def beats_last_release(
    context: dg.AssetCheckExecutionContext,
    config: ReleaseGateConfig,
    evaluation: EvaluationReport,
    head: TrainedHead,
    manifest: pa.Table,
) -> dg.AssetCheckResult:
    """A paired comparison with the release in force: both heads score the current test split, and
    a bootstrap over its images (the same resamples for both) gives the difference in Spearman with
    a 95 % interval. The new head is refused only when it is worse beyond noise (the whole interval
    below zero), unless `force` is set."""
    last = last_release(context.instance)
    x, y = to_arrays(manifest, dim=None).subset("test")
    new, old, interval = evaluation.heldout_spearman(), None, (float("nan"), float("nan"))
    old_scores = _released_head_scores(last, head, x) if last and y.size >= MIN_EVAL_ROWS else None
    if new is None:
        passed, why = config.force, "no test split to compare on"
    elif last is None:
        passed, why = True, "first release"
    elif y.size < MIN_EVAL_ROWS:
        passed = True
        oof = evaluation.metrics.get("oof")
        measured = (
            f"; its 5-fold out-of-fold Spearman over all {oof['n']} ratings is {oof['spearman']:.4f}"
            if oof
            else ""
        )
        why = (
            f"only {y.size} test image(s): too few to judge against the release in force (it takes "
            f"{MIN_EVAL_ROWS}), so this head is released without a comparison{measured}; rate more images"
        )
    elif isinstance(old_scores, np.ndarray):
        new_scores = predict(head.head, x)[0]
        diff, low, high = paired_spearman_difference(y, new_scores, old_scores)
        new, old, interval = spearman(y, new_scores), spearman(y, old_scores), (low, high)
        passed = config.force or high >= 0
        why = (
            f"test spearman {new:.4f} vs released head {old:.4f} on the same {y.size} images: "
            f"difference {diff:+.4f}, 95 % CI [{low:+.4f}, {high:+.4f}]"
        )
    elif old_scores == "other embeddings":
        passed = True
        why = (
            "the release in force reads other embeddings (another backbone or width), so no number "
            "of it compares with this head: released without a comparison"
        )
    else:  # the released head's folder is gone: compare with its recorded number
        old = last.get("test_spearman")
        passed = config.force or old is None or np.isnan(old) or new >= old
        why = f"test spearman {new:.4f} vs last release {old:.4f} (recorded; its folder is gone)"
    if not passed:
        context.log.error(
            f"release gate: the new head was not released: {why}. To release it anyway, set "
            f"ops.{GATE_OP}.config.force: true (silva-demo --force-release)"
        )
    return dg.AssetCheckResult(
        passed=passed,
        description=why + (" (forced)" if config.force else ""),
        metadata={
            "test_spearman": round(new, 4) if new is not None else float("nan"),
            "last_release_spearman": round(old, 4) if old is not None else float("nan"),
            "difference_ci_low": round(interval[0], 4),
            "difference_ci_high": round(interval[1], 4),
            "last_release": str(last.get("release", "")) if last else "none",
        },
    )


def gate_verdict(context: dg.AssetExecutionContext) -> None:
    """Refuse an evaluation that did not pass `beats_last_release`, whatever was selected. In a run
    that materialized `evaluation`, the blocking check already ran (and a failure skipped this
    step); otherwise the gate's latest verdict must belong to the evaluation being read."""
    instance = context.instance
    key = EVALUATION
    in_run = instance.all_logs(context.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    if any(e.dagster_event.asset_key == key for e in in_run):
        return
    latest = instance.get_latest_materialization_event(key)
    check = dg.AssetCheckKey(key, CHECK_NAME)
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key([check]).get(check)
    verdict = record.event.asset_check_evaluation if record and record.event else None
    if latest is None or verdict is None or record.run_id != latest.run_id or not verdict.passed:
        why = verdict.description if verdict is not None and record.run_id == latest.run_id else "not checked"
        raise dg.Failure(
            f"the evaluation from run {latest.run_id if latest else '-'} did not pass the release gate "
            f"({why}); materialize `evaluation` and `hub_release` together, with "
            f"ops.{GATE_OP}.config.force: true to release it anyway"
        )
