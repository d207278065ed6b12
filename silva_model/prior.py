"""A published judge as the starting point of a personal head (`TrainConfig.prior`).

A judge is a head someone else trained (a silva-scorer head such as `Jannchie/silva-aesthetic`,
or any silva release), named by a Hub id or a local folder. The personal head's latent is the
judge's latent, standardised on the person's train split, times a learned weight, plus the
personal MLP's latent. The weight and the bars start where a one-input ordinal fit on the
train split puts them ("the judge, rescaled to this person's ratings") and the MLP starts as a
head from scratch does, so a judge unrelated to the person gets a weight near zero from the
person's own ratings and training goes on as it would without it. After training, inner folds
of the train split give out-of-fold latents of both parts, and a two-input ordinal fit to them
sets how much each counts against the other (`fit_judge_mix`): with a few hundred ratings the
personal MLP is mostly noise next to a close judge, and what it learned in-sample cannot tell.
Starting the MLP at zero was measured too (one seed, bench/judges.py --quick): no better with
related judges, and 0.055 of the oracle behind from scratch with unrelated ones at 500 ratings
(20 optimiser steps there are too few to grow a personal part from zero). The judge's weights
travel inside the head, frozen, with where they came from (source, revision, file digests) in `config.json`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from silva_model.head import OrdinalHead, monotone_bars
from silva_model.interop import SILVA_SCORER, is_silva_scorer_config
from silva_model.loss import CumulativeBCELoss
from silva_model.provenance import BackboneMismatchError, BackboneSpec, sha256_file
from silva_model.release import CONFIG_NAME, WEIGHTS_NAME, load_head, resolve_pretrained

SILVA = "silva"


class PriorError(ValueError):
    """The judge named as a prior cannot start this head (wrong width or backbone)."""


def _revision(folder: Path) -> str:
    """The commit of a Hub snapshot (`.../snapshots/<commit>/`); "" for a local folder."""
    return folder.name if folder.parent.name == "snapshots" else ""


def load_prior(source: str, backbone: BackboneSpec, embed_dim: int) -> tuple[dict[str, Any], nn.Module]:
    """The judge named by `source` (Hub id or folder), verified, and its provenance record.
    Refuses a judge that reads other embeddings than the person's: its opinion of them would be
    a number without meaning."""
    folder = resolve_pretrained(source)
    judge, meta = load_head(folder)
    if judge.config.embed_dim != embed_dim:
        raise PriorError(
            f"the prior {source} reads {judge.config.embed_dim}-d embeddings, but these are "
            f"{embed_dim}-d: a judge must be trained on the same backbone as the person's head"
        )
    diffs = judge.config.backbone.differences(backbone)
    if diffs:
        raise BackboneMismatchError(
            f"the prior {source} was trained on embeddings of {judge.config.backbone.describe()}, "
            f"but these come from {backbone.describe()} ({'; '.join(diffs)}): use a judge of the "
            "same backbone, or re-embed"
        )
    kind = SILVA_SCORER if is_silva_scorer_config(meta) else SILVA
    prior = {
        "kind": kind,
        "source": str(source),
        "revision": _revision(folder),
        "files": {name: sha256_file(folder / name) for name in (CONFIG_NAME, WEIGHTS_NAME)},
        "config": meta if kind == SILVA_SCORER else meta["head_config"],
    }
    return prior, judge


def start_from_judge(head: OrdinalHead, x: torch.Tensor, y: torch.Tensor) -> None:
    """Start `head` at its judge: the judge's latent standardised on the train split `x`, the
    weight and the bars from a one-input ordinal fit to the ratings `y`."""
    zs = head.standardize_judge(x)
    params = head.judge_and_bars()
    loss_fn = CumulativeBCELoss(head.config.num_classes).to(x.device)
    opt = torch.optim.LBFGS(params, lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn(head.judge_weight * zs.unsqueeze(-1) - head.thresholds(), y)
        loss.backward()
        return loss

    opt.step(closure)


def _mix_nll(
    p: torch.Tensor, out_of_fold: torch.Tensor, judge: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Summed ordinal NLL of `p` = (judge weight, log personal weight, first bar, gap logits)."""
    latent = p[0] * judge + p[1].exp() * out_of_fold
    loss_fn = CumulativeBCELoss(len(p) - 1).to(p.device)  # K - 1 bars: K classes
    return loss_fn(latent.unsqueeze(-1) - monotone_bars(p[2], p[3:]), y) * len(y)


def fit_judge_mix(
    head: OrdinalHead, out_of_fold: torch.Tensor, personal: torch.Tensor, judge: torch.Tensor, y: torch.Tensor
) -> float:
    """How much the judge counts against the personal part, fitted to out-of-fold latents of the
    train split, and set in `head`. For each train image: `out_of_fold`, the personal part of a
    head that never saw it; `personal` and `judge` (standardised), `head`'s own two parts; `y`,
    its rating.

    A two-input ordinal fit of the folds gives the two weights; the judge's is shrunk by its own
    noise (positive-part James-Stein, a / se < 1 -> 0), since with 100 ratings an unrelated judge
    fits spuriously. Only their ratio is kept: the head's latent keeps the spread and the mean it
    trained with, against the bars it trained with, because refitting the bars on the folds lowered
    QWK at every size of the bench, by up to 0.081 of the oracle (docs/benchmarks.md). Returns
    the factor on the personal part, baked into the MLP's output layer."""
    out_of_fold, personal, judge = (v.detach().float() for v in (out_of_fold, personal, judge))
    w = head.learned_judge_weight
    # from the weight and bars training left (the fit has one optimum; this start is near it)
    bars = head.bar_parameters()
    p = torch.cat([torch.tensor([w, 0.0], device=bars.device), bars]).requires_grad_(True)
    opt = torch.optim.LBFGS([p], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = _mix_nll(p, out_of_fold, judge, y)
        loss.backward()
        return loss

    opt.step(closure)
    p = p.detach()
    hessian = torch.autograd.functional.hessian(lambda q: _mix_nll(q, out_of_fold, judge, y), p)
    se = float(torch.linalg.pinv(hessian.double())[0, 0].clamp_min(1e-12).sqrt())
    t = float(p[0]) / se
    weight = float(p[0]) * max(0.0, 1.0 - 1.0 / t**2) if t else 0.0
    scale = float(p[1].exp())
    before = w * judge + personal
    after = weight * judge + scale * personal
    spread = float(before.std() / after.std().clamp_min(1e-12)) if len(after) > 1 else 1.0
    head.reweigh_parts(spread * weight, spread * scale, float((spread * after).mean() - before.mean()))
    return spread * scale
