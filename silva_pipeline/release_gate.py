"""The release gate: a blocking check on `evaluation` that compares the new head with the
release in force, and the verdict `hub_release` reads before it releases anything.

`GATE_OP` is the check's op name, the key its `force` option is set under in run config.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from silva_model.active import OutOfFold
from silva_model.head import predict
from silva_model.manifest import copy_groups_of, to_arrays
from silva_model.metrics import MIN_EVAL_ROWS, paired_spearman_difference, spearman
from silva_model.parquet import read_parquet
from silva_model.release import TrainedHead, load_head
from silva_pipeline.records import EvaluationReport

EVALUATION, RELEASE = dg.AssetKey("evaluation"), dg.AssetKey("hub_release")
CHECK_NAME = "beats_last_release"
GATE_OP = f"evaluation_{CHECK_NAME}"


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


def _released(last: dict, head: TrainedHead, dim: int) -> tuple[object, dict] | str:
    """The release in force and its config; or why it cannot be compared: "gone" (its folder
    cannot be read: the gate falls back to its recorded number) or "other embeddings" (it reads
    another width or backbone: no number of it says anything about this head)."""
    try:
        released, config = load_head(str(last.get("release", "")))
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return "gone"
    if released.config.embed_dim != dim or released.config.backbone.differences(head.head.config.backbone):
        return "other embeddings"
    return released, config


def _seen_by(config: dict) -> set[str] | None:
    """The images the release in force learned from (its manifest's train and val splits), or
    None when its config records no manifest that can still be read."""
    path = Path((config.get("data") or {}).get("manifest") or "")
    if not path.is_file():
        return None
    t = read_parquet(path, ["image_sha256", "split"])
    split = t.column("split").cast(pa.string()).to_pylist()
    return {
        s for s, where in zip(t.column("image_sha256").to_pylist(), split, strict=True) if where != "test"
    }


@dataclass
class HeldOut:
    """Images neither head learned from, with the new head's held-out scores and how they were made."""

    rows: np.ndarray  # manifest rows
    scores: np.ndarray  # the new head's: its own on test images, out of fold on the others
    how: str


def held_out(manifest: pa.Table, head: TrainedHead, oof: OutOfFold, seen: set[str] | None) -> HeldOut:
    """The test split, and (when the release in force says what it learned from) every image it
    never saw that the new head has an out-of-fold score for: the ratings given since it, and any
    image whose copies moved it out of the test split. An image it learned from, or a copy of
    one (a test image moved there by a copy added since, a new copy of a train image), is left
    out: the released head would be judged on its own training images."""
    arrays = to_arrays(manifest, dim=None)
    test = arrays.mask("test")
    scores = np.full(len(arrays), np.nan, np.float32)
    scores[test] = predict(head.head, arrays.embeddings[test])[0]
    if seen is None:
        return HeldOut(np.flatnonzero(test), scores[test], f"the {int(test.sum())} test images")
    known = pc.is_in(manifest.column("image_sha256"), value_set=pa.array(sorted(seen), pa.string()))
    groups = copy_groups_of(manifest, arrays)  # a copy of an image it learned from, it knows too
    learned = np.isin(groups, groups[known.to_numpy(zero_copy_only=False)])
    never = ~learned & ~test
    scores[never] = oof.score[never]
    fresh_test = test & ~learned  # a copy added since can move a trained image to test
    rows = np.flatnonzero(fresh_test | never)
    how = f"{int(fresh_test.sum())} test images and {int(never.sum())} more it never learned from"
    how += " (nor a copy of), scored out of fold"
    moved = int(test.sum() - fresh_test.sum())
    how += f"; {moved} test image(s) it learned from, or a copy of, left out" if moved else ""
    return HeldOut(rows, scores[rows], how)


@dg.asset_check(
    asset=EVALUATION,
    blocking=True,
    additional_ins={
        "head": dg.AssetIn("head"),
        "manifest": dg.AssetIn("manifest"),
        "out_of_fold": dg.AssetIn("out_of_fold"),
    },
)
def beats_last_release(
    context: dg.AssetCheckExecutionContext,
    config: ReleaseGateConfig,
    evaluation: EvaluationReport,
    head: TrainedHead,
    manifest: pa.Table,
    out_of_fold: OutOfFold,
) -> dg.AssetCheckResult:
    """A paired comparison with the release in force on images neither head learned from: the
    test split, and at small sizes every image that release never learned from (the new head's
    out-of-fold scores). A bootstrap over those images (the same resamples for both) gives the
    difference in Spearman with a 95 % interval; the new head is refused only when it is worse
    beyond noise (the whole interval below zero), unless `force` is set."""
    last = last_release(context.instance)
    verdict = _verdict(last, evaluation, head, manifest, out_of_fold)
    passed = config.force or verdict.passed
    if not passed:
        context.log.error(
            f"release gate: the new head was not released: {verdict.why}. To release it anyway, set "
            f"ops.{GATE_OP}.config.force: true (silva-run --force-release)"
        )
    return dg.AssetCheckResult(
        passed=passed,
        description=verdict.why + (" (forced)" if config.force else ""),
        metadata={
            "new_spearman": round(verdict.new, 4) if verdict.new is not None else float("nan"),
            "last_release_spearman": round(verdict.old, 4) if verdict.old is not None else float("nan"),
            "compared_images": verdict.n,
            "difference_ci_low": round(verdict.interval[0], 4),
            "difference_ci_high": round(verdict.interval[1], 4),
            "last_release": str(last.get("release", "")) if last else "none",
        },
    )


@dataclass
class Verdict:
    passed: bool
    why: str
    new: float | None = None
    old: float | None = None
    n: int = 0
    interval: tuple[float, float] = (float("nan"), float("nan"))


def _verdict(
    last: dict | None, evaluation: EvaluationReport, head: TrainedHead, manifest: pa.Table, oof: OutOfFold
) -> Verdict:
    if last is None:
        return Verdict(True, "first release")
    arrays = to_arrays(manifest, dim=None)
    released = _released(last, head, arrays.embeddings.shape[1])
    if released == "other embeddings":
        return Verdict(
            True,
            "the release in force reads other embeddings (another backbone or width), so no number "
            "of it compares with this head: released without a comparison",
        )
    if released == "gone":  # the released head's folder is gone: compare with its recorded number
        return _recorded(last, evaluation, int(arrays.mask("test").sum()))
    model, config = released
    h = held_out(manifest, head, oof, _seen_by(config))
    if len(h.rows) < MIN_EVAL_ROWS:
        return _too_few(len(h.rows), f"images that neither head learned from ({h.how})", evaluation)
    y = arrays.scores[h.rows]
    if np.unique(y).size < 2:
        return Verdict(
            True,
            f"the {len(h.rows)} images that neither head learned from ({h.how}) all carry one "
            "rating: no order to compare the heads on, so this head is released without a "
            "comparison; rate more images",
            n=len(h.rows),
        )
    old_scores = predict(model, arrays.embeddings[h.rows])[0]
    diff, low, high = paired_spearman_difference(y, h.scores, old_scores)
    new, old = spearman(y, h.scores), spearman(y, old_scores)
    why = (
        f"spearman {new:.4f} vs released head {old:.4f} on the same {len(h.rows)} images neither "
        f"learned from ({h.how}): difference {diff:+.4f}, 95 % CI [{low:+.4f}, {high:+.4f}]"
    )
    return Verdict(high >= 0, why, new, old, len(h.rows), (low, high))


def _too_few(n: int, what: str, evaluation: EvaluationReport) -> Verdict:
    o = evaluation.metrics.get("oof")
    measured = f"; its out-of-fold Spearman over all {o['n']} ratings is {o['spearman']:.4f}" if o else ""
    return Verdict(
        True,
        f"only {n} {what}: too few to judge against the release in force (it takes {MIN_EVAL_ROWS}), "
        f"so this head is released without a comparison{measured}; rate more images",
        n=n,
    )


def _recorded(last: dict, evaluation: EvaluationReport, n_test: int) -> Verdict:
    """No released head to score: its recorded test Spearman, when the test split can say anything."""
    new, old = evaluation.heldout_spearman(), last.get("test_spearman")
    if new is None or n_test < MIN_EVAL_ROWS:
        return _too_few(n_test, "test image(s), and the release in force is gone", evaluation)
    passed = old is None or np.isnan(old) or new >= old
    why = f"test spearman {new:.4f} vs last release {old:.4f} (recorded; its folder is gone)"
    return Verdict(passed, why, new, old, n_test)


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
