"""The MLP head's training loop: the train split held on the device, shuffled batches gathered by
index, AdamW with warmup and cosine, the weight EMA, and the best epoch by val Spearman or the
average of the later epochs' weights (`train.py` decides what is trained; this module trains it)."""

from __future__ import annotations

import contextlib
import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from silva_model.head import OrdinalHead, predict
from silva_model.loss import CumulativeBCELoss, warn_missing_classes
from silva_model.manifest import ManifestArrays
from silva_model.metrics import compute_metrics
from silva_model.pairs import Pairs, pair_loss, rank_loss
from silva_model.train_config import TrainConfig

EpochCallback = Callable[[dict[str, float]], None]


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    return torch.Generator().manual_seed(seed)


@dataclass
class TrainData:
    """The train split on the training device, the val split, and the pairs with both images
    among the train rows or the judged images no rating has (`xp`: the train rows, then those)."""

    x: torch.Tensor
    y: torch.Tensor
    xv: torch.Tensor
    yv: np.ndarray
    pairs: tuple[torch.Tensor, ...] | None = None
    xp: torch.Tensor | None = None

    @classmethod
    def of(cls, arrays: ManifestArrays, pairs: Pairs | None, device: torch.device) -> TrainData:
        (x, y), (xv, yv) = arrays.subset("train"), arrays.subset("val")
        data = cls(*(torch.from_numpy(v).to(device) for v in (x, y, xv)), yv)
        used = pairs.within(np.flatnonzero(arrays.mask("train")), len(arrays)) if pairs is not None else None
        if used is not None and len(used) == 0:
            warnings.warn(f"none of the {len(pairs)} pairs has both images in the train split", stacklevel=3)
            used = None
        if used is not None:
            data.pairs = tuple(
                torch.from_numpy(v).to(device) for v in (used.a, used.b, used.outcome, used.weight)
            )
            extra = (
                [] if used.extra is None else [torch.from_numpy(np.ascontiguousarray(used.extra, np.float32))]
            )
            data.xp = torch.cat([data.x, *(e.to(device) for e in extra)])
        return data

    def val_metrics(self, head: torch.nn.Module) -> dict[str, float]:
        """The head on the val split; NaN for every metric when there are no val rows."""
        if not len(self.yv):
            return {**dict.fromkeys(compute_metrics([1, 2], [0.0, 1.0], [1, 2]), float("nan")), "n": 0}
        return compute_metrics(self.yv, *predict(head, self.xv))


def _schedule(
    head: OrdinalHead, config: TrainConfig, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, Any]:
    """AdamW over the trainable parameters (not a judge's), warmup then cosine, and the weight EMA."""
    opt = torch.optim.AdamW(
        [p for p in head.parameters() if p.requires_grad], lr=config.lr, weight_decay=config.weight_decay
    )
    total = steps_per_epoch * config.epochs
    warmup = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    ema = None
    if config.ema_epochs > 0:
        decay = 1.0 - 1.0 / max(1.0, config.ema_epochs * steps_per_epoch)
        ema = torch.optim.swa_utils.AveragedModel(
            head, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay)
        )
    return opt, sched, ema


def _epoch(
    head: OrdinalHead, data: TrainData, config: TrainConfig, step: Callable, gen: torch.Generator
) -> float:
    """One pass over the train split in shuffled batches; returns the mean loss. `step(loss)`
    takes the optimizer step."""
    x, y, device = data.x, data.y, data.x.device
    loss_fn = CumulativeBCELoss.balanced(y.cpu()) if config.class_balance else CumulativeBCELoss()
    loss_fn = loss_fn.to(device)
    rank_weight = config.rank_weight_for(x.shape[0])
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    if data.pairs is not None:
        pair_batch = math.ceil(
            len(data.pairs[0]) / math.ceil(x.shape[0] / config.batch_size)
        )  # once an epoch
        pair_share = config.pair_weight * len(data.pairs[0]) / x.shape[0]
    perm = torch.randperm(x.shape[0], generator=gen).to(device)
    loss_sum = torch.zeros((), device=device)
    for s in range(0, x.shape[0], config.batch_size):
        idx = perm[s : s + config.batch_size]
        with amp:
            latents = head.member_latents(x[idx])
        # each member fits the bars on its own; they share only the bars
        member_logits = latents.float().unsqueeze(-1) - head.thresholds()
        loss = loss_fn(member_logits.flatten(0, 1), y[idx].repeat(config.members))
        if rank_weight > 0:
            loss = loss + rank_weight * rank_loss(latents.float(), y[idx])
        if data.pairs is not None:
            pa_, pb_, po_, pw_ = data.pairs
            j = torch.randint(len(pa_), (pair_batch,), generator=gen).to(device)
            with amp:
                fa, fb = head.member_latents(data.xp[pa_[j]]), head.member_latents(data.xp[pb_[j]])
            # a judgement weighs like one rating: the pair mean is scaled by pairs per rating
            loss = loss + pair_share * pair_loss(fa.float(), fb.float(), po_[j], pw_[j])
        step(loss)
        loss_sum += loss.detach() * idx.numel()
    return float(loss_sum) / x.shape[0]


def kept(config: TrainConfig, epoch: int) -> str:
    """Which weights training kept, by the epoch its checkpoint records (`silva train`'s line, the
    registry's note): a run stopped early averaged only up to where it stopped, or nothing yet."""
    start = config.averaged_from()
    if epoch == 0:
        return "linear head"
    if start and start < epoch:
        return f"epochs {start}-{epoch} averaged"
    if start and epoch < start:
        return f"epoch {epoch}/{config.epochs}, stopped before its average began"
    return f"{'last' if start else 'best'} epoch {epoch}/{config.epochs}"


def fit_mlp(
    head: OrdinalHead,
    data: TrainData,
    config: TrainConfig,
    gen: torch.Generator,
    progress: bool,
    on_epoch: EpochCallback | None,
    on_best: Callable[[OrdinalHead, int, dict[str, float]], None],
) -> tuple[int, dict[str, float], list[dict[str, float]]]:
    """Train the MLP head for the config's epochs and load its best epoch by val Spearman (the
    last, without val rows), or where the config averages (`averaged_from`) the average of its
    weights at the end of that epoch and every later one (stochastic weight averaging: no epoch is
    picked on a few dozen val ratings); returns (best epoch, or the last averaged, its val
    metrics, the per-epoch history)."""
    if not config.class_balance:
        warn_missing_classes(data.y.cpu())  # a balanced loss warns itself
    opt, sched, ema = _schedule(head, config, math.ceil(data.x.shape[0] / config.batch_size))

    def step(loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if ema is not None:
            ema.update_parameters(head)

    best: dict[str, Any] = {"epoch": -1, "spearman": -math.inf, "state": None}
    average, average_from = None, config.averaged_from()
    history: list[dict[str, float]] = []
    bar = tqdm(range(1, config.epochs + 1), desc="train", unit="epoch", disable=not progress, file=sys.stderr)
    for epoch in bar:
        head.train()
        train_loss = _epoch(head, data, config, step, gen)
        model = ema.module if ema is not None else head
        metrics = data.val_metrics(model)
        history.append(
            {"epoch": epoch, "train_loss": train_loss, **{f"val_{k}": v for k, v in metrics.items()}}
        )
        if on_epoch is not None:
            on_epoch(history[-1])
        if average_from and epoch >= average_from:
            if average is None:  # buffers (the input statistics) stay as they are
                average = torch.optim.swa_utils.AveragedModel(model)
            average.update_parameters(model)  # the first call copies, the later ones average
            metrics = data.val_metrics(average.module)
            state = {k: v.detach().clone() for k, v in average.module.state_dict().items()}
            best = {"epoch": epoch, "spearman": metrics["spearman"], "metrics": metrics, "state": state}
            on_best(average.module, epoch, metrics)
        elif average_from:  # before the average: the latest weights, so an interrupted run keeps a head
            on_best(model, epoch, metrics)
        elif metrics["spearman"] > best["spearman"] or not len(data.yv):
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best = {"epoch": epoch, "spearman": metrics["spearman"], "metrics": metrics, "state": state}
            on_best(model, epoch, metrics)
        bar.set_postfix(
            loss=f"{train_loss:.4f}", val_spearman=f"{metrics['spearman']:.3f}", best=best["epoch"]
        )
    head.load_state_dict(best["state"])
    return best["epoch"], best["metrics"], history
