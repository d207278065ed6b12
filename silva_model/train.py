"""Train the ordinal head from a manifest.

Embeddings are held as one tensor on the training device and mini-batches are gathered by
index, with no per-sample Dataset: at 1152 floats a row, 100k ratings are 460 MB and an epoch
is a handful of large matmuls. The best epoch by validation Spearman (or, where the later
epochs are averaged, the average so far) is written atomically as `best.safetensors` +
`best.json` whenever it changes, so an interrupted run keeps its best.
Below `select_below` train ratings the head's form (MLP or linear) is chosen on inner folds of
the train split first (`select.py`); a manifest without val rows is trained the same way.

    python -m silva_model.train --manifest manifest.parquet --config train.yaml --out runs/a
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from tqdm.auto import tqdm

from silva_model import linear, select
from silva_model.devices import resolve_device
from silva_model.head import NUM_CLASSES, HeadConfig, OrdinalHead, normalize_embeddings, predict
from silva_model.loss import class_counts, warn_missing_classes
from silva_model.manifest import SPLITS, ManifestArrays, load_manifest
from silva_model.pairs import Pairs, manifest_keys, read_pairs
from silva_model.prior import fit_judge_mix, load_prior, start_from_judge
from silva_model.provenance import BackboneSpec
from silva_model.release import TrainedHead
from silva_model.train_args import add_train_args
from silva_model.train_config import TrainConfig, read_options
from silva_model.training_loop import EpochCallback, TrainData, fit_mlp, kept, seed_everything


@dataclass
class TrainResult:
    head: OrdinalHead
    best_epoch: int  # 0: a linear head, fitted to convergence rather than by epochs
    best_metrics: dict[str, float]
    config: TrainConfig  # the config that trains this head again: with a choice made, that choice fixed
    manifest_fingerprint: str
    n_train: int
    n_val: int
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint_dir: Path | None = None
    seconds: float = 0.0
    personal_scale: float | None = None  # with a prior: the personal part's weight from the inner folds

    @property
    def selection(self) -> dict[str, Any] | None:
        """How the head's form was chosen on inner folds (`select.py`); None: not chosen."""
        return self.head.config.selection

    def trained_head(self, tracking: dict[str, str] | None = None) -> TrainedHead:
        return TrainedHead(
            self.head,
            self.best_epoch,
            self.best_metrics,
            self.config,
            self.manifest_fingerprint,
            self.n_train,
            self.n_val,
            round(self.seconds, 2),
            dict(tracking or {}),
        )


def build_head(
    config: TrainConfig,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    backbone: BackboneSpec,
    selection: dict[str, Any] | None = None,
) -> OrdinalHead:
    """A fresh head whose input statistics and thresholds come from the train split, and which
    records the backbone its training embeddings came from (its judge, with a prior, and how its
    form was chosen). A linear head is one member without hidden layers."""
    prior, judge = load_prior(config.prior, backbone, x_train.shape[1]) if config.prior else (None, None)
    is_linear = config.model == select.LINEAR
    head = OrdinalHead(
        HeadConfig(
            embed_dim=x_train.shape[1],
            hidden=() if is_linear else config.hidden,
            linear_part=config.model == select.BLEND,
            dropout=config.dropout,
            num_classes=NUM_CLASSES,
            members=1 if is_linear else config.members,
            input_components=config.components_for(*x_train.shape),
            backbone=backbone,
            prior=prior,
            selection=selection,
        ),
        judge=judge,
    ).to(x_train.device)
    if head.config.input_components:
        head.fit_input_projection(x_train)
    elif config.standardize_inputs:
        xn = normalize_embeddings(x_train)
        head.set_input_stats(xn.mean(0), xn.std(0))
    if judge is not None:
        start_from_judge(head, x_train, y_train)
    elif config.threshold_init == "class_rates":
        counts = class_counts(y_train.cpu(), NUM_CLASSES).double()
        head.init_thresholds(1 - torch.cumsum(counts, 0)[:-1] / counts.sum())
    return head


def linear_problem(head: OrdinalHead, data: TrainData, config: TrainConfig) -> linear.LinearProblem:
    """The linear fit of `head`'s inputs on the train split, with the pairs training would use."""
    if data.pairs is None:
        return linear.LinearProblem.of(head, data.x, data.y)
    with torch.no_grad():
        pair_h = head.mlp_inputs(data.xp).double()
        pair_judge = head.judge_input(data.xp).double() if head.has_judge else None
    return linear.LinearProblem.of(
        head,
        data.x,
        data.y,
        pair_h=pair_h,
        pair_judge=pair_judge,
        pairs=data.pairs,
        pair_weight=config.pair_weight,
    )


MIN_FOLD_ROWS = 10  # fewer train rows per inner fold than this, and the judge keeps its learned weight


def weigh_judge_by_folds(
    arrays: ManifestArrays,
    config: TrainConfig,
    pairs: Pairs | None,
    head: OrdinalHead,
    progress: bool = False,
) -> float | None:
    """Fit how much `head`'s judge and personal part count on out-of-fold latents: each inner fold
    of the train split is scored by a head trained (as `head` was) on the rest. Returns the
    personal part's weight, or None when the train split is too small to fold."""
    rows = np.flatnonzero(arrays.mask("train"))
    k = config.judge_folds
    if len(rows) < k * MIN_FOLD_ROWS:
        return None
    fold = torch.from_numpy(np.random.default_rng(config.seed).permutation(len(rows)) % k)
    inner = dataclasses.replace(config, judge_folds=0)
    device = head.judge_weight.device
    x = torch.from_numpy(np.ascontiguousarray(arrays.embeddings[rows])).to(device)
    with torch.no_grad():
        personal, judge = head.personal_latent(x), head.judge_input(x)
    out_of_fold = torch.empty_like(personal)
    for f in tqdm(range(k), desc="judge folds", unit="fold", disable=not progress, file=sys.stderr):
        held = (fold == f).to(device)
        codes = arrays.split_codes.copy()
        codes[rows[(fold == f).numpy()]] = SPLITS.index("test")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the full training warned already
            rest = dataclasses.replace(arrays, split_codes=codes)
            fold_head = train(rest, inner, progress=False, pairs=pairs).head
        with torch.no_grad():
            out_of_fold[held] = fold_head.personal_latent(x[held])
    y = torch.from_numpy(arrays.scores[rows]).to(device)
    return fit_judge_mix(head, out_of_fold, personal, judge, y)


def _resolve(
    arrays: ManifestArrays, config: TrainConfig, data: TrainData, pairs: Pairs | None
) -> tuple[TrainConfig, dict[str, Any] | None]:
    """The config with the head's form fixed, and how it was chosen (None: nothing was folded)."""
    n = data.x.shape[0]
    if not select.needs_folds(config, n, bool(len(data.yv))):
        return select.unfolded(config, n), None

    def problem() -> tuple[linear.LinearProblem, torch.Tensor]:
        probe = build_head(
            dataclasses.replace(config, model=select.LINEAR), data.x, data.y, arrays.backbone()
        )
        return linear_problem(probe, data, config), linear.start(probe)

    fixed, selection = select.choose(arrays, config, pairs, problem, train)
    return fixed, selection.record()


def train(
    manifest: str | Path | pa.Table | ManifestArrays,
    config: TrainConfig | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    on_epoch: EpochCallback | None = None,
    pairs: Pairs | None = None,
) -> TrainResult:
    """Train on the manifest's train split, select on val (or, without val rows, on inner folds
    of the train split); returns the best head (loaded). `pairs` (manifest row indices) add a
    Bradley-Terry loss over those with both images in train."""
    config = config or TrainConfig()
    t0 = time.perf_counter()
    arrays = manifest if isinstance(manifest, ManifestArrays) else load_manifest(manifest, dim=None)
    device = resolve_device(config.device)
    data = TrainData.of(arrays, pairs, device)
    config, selection = _resolve(arrays, config, data, pairs)
    gen = seed_everything(config.seed)
    fingerprint = arrays.fingerprint()
    head = build_head(config, data.x, data.y, arrays.backbone(), selection).to(device)

    def write_checkpoint(model: OrdinalHead, epoch: int, metrics: dict[str, float]) -> None:
        """best.safetensors + best.json whenever the best improves, so an interrupted run keeps it."""
        if out_dir is not None:
            n_train, n_val = int(data.x.shape[0]), len(data.yv)
            TrainedHead(model, epoch, metrics, config, fingerprint, n_train, n_val).save(out_dir)

    history: list[dict[str, float]] = []
    if config.model == select.LINEAR:
        warn_missing_classes(data.y.cpu())
        linear.fit_head(head, linear_problem(head, data, config), config.linear_l2)
        best_epoch = 0
    else:
        best_epoch, _, history = fit_mlp(head, data, config, gen, progress, on_epoch, write_checkpoint)
    head.eval()
    if config.model == select.BLEND:
        linear.blend_into(head, linear_problem(head, data, config), config.linear_l2, config.linear_share)
    personal_scale = None
    if head.has_judge and config.judge_folds and config.model != select.LINEAR:
        personal_scale = weigh_judge_by_folds(arrays, config, pairs, head, progress)
    if config.calibrate:
        with torch.no_grad():
            x = data.x
            head.fit_calibration(
                torch.cat([head.latent(x[s : s + 16384]) for s in range(0, len(x), 16384)]), data.y
            )
    metrics = data.val_metrics(head)
    write_checkpoint(head, best_epoch, metrics)
    if len(data.yv) > 1 and float(np.std(predict(head, data.xv)[0])) < 1e-6:
        warnings.warn(
            "the trained head gives every validation image the same score: check the embeddings "
            "(a constant or degenerate column, or rows from another backbone)",
            stacklevel=2,
        )
    seconds = time.perf_counter() - t0
    n_train, n_val = int(data.x.shape[0]), len(data.yv)
    return TrainResult(
        head,
        best_epoch,
        metrics,
        config,
        fingerprint,
        n_train,
        n_val,
        history,
        Path(out_dir) if out_dir is not None else None,
        seconds,
        personal_scale,
    )


def train_from_args(a: argparse.Namespace) -> int:
    """`silva train`: a head from a manifest, with a one-line summary. Its options go through the
    one loader: the --config file, then SILVA_<OPTION> variables, then the command line."""
    overrides = {"epochs": a.epochs, "device": a.device, "seed": a.seed, "prior": a.prior}
    cfg = TrainConfig.load(read_options(a.config) if a.config else {}, os.environ, overrides)
    pairs = read_pairs(a.pairs, manifest_keys(a.manifest)) if a.pairs else None
    res = train(a.manifest, cfg, a.out, progress=not a.quiet, pairs=pairs)
    m = res.best_metrics
    if res.head.has_judge:
        folds = (
            f", personal part x{res.personal_scale:.3f} (both fitted on {cfg.judge_folds} inner folds)"
            if res.personal_scale is not None
            else ""
        )
        print(f"judge {cfg.prior}: learned weight {res.head.learned_judge_weight:.3f}{folds}")
    print(
        f"{kept(res.config, res.best_epoch)}: val spearman {m['spearman']:.4f}, qwk {m['qwk']:.4f}, "
        f"mae {m['mae']:.4f} -> {Path(a.out) / 'best.safetensors'} ({res.seconds:.1f}s)"
    )
    if res.selection:
        print(select.describe(res.selection))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m silva_model.train ...`: what `silva train ...` runs."""
    p = argparse.ArgumentParser(prog="python -m silva_model.train", description="Train a head on a manifest.")
    add_train_args(p)
    try:
        return train_from_args(p.parse_args(argv))
    except (FileNotFoundError, ValueError) as e:  # ManifestError and PairsError are ValueErrors
        print(f"silva: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
