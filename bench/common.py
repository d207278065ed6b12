"""Shared bench helpers: one torch training loop for the peer methods, tables, timing."""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

from silva_model.manifest import ManifestArrays, content_hash
from silva_model.metrics import qwk, spearman
from silva_model.splits import SPLITS

DEVICE = torch.device("cpu")  # where the torch methods train; bench/quality.py --device sets it


def tensor(x: np.ndarray) -> torch.Tensor:
    """A bench array on the bench's device."""
    return torch.from_numpy(x).to(DEVICE)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {torch.get_num_threads()} torch threads, {gpu}, torch {torch.__version__}"


def fit_torch(
    model: torch.nn.Module,
    loss_fn: Callable,
    predict: Callable,
    xtr: np.ndarray,
    ytr: np.ndarray,
    xva: np.ndarray,
    yva: np.ndarray,
    epochs: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
    seed: int,
    warmup_fraction: float = 0.05,
    clip: float | None = None,
) -> torch.nn.Module:
    """AdamW + warmup/cosine, best epoch by val Spearman: the same protocol silva's trainer uses
    (a peer recipe may set its own warmup and gradient clipping)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model.to(DEVICE)
    x, y = tensor(xtr), tensor(ytr)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    total = math.ceil(len(x) / batch_size) * epochs
    warm = max(1, int(total * warmup_fraction))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    best, best_state = -math.inf, None
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=g).to(DEVICE)
        for s in range(0, len(x), batch_size):
            idx = perm[s : s + batch_size]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            sched.step()
        score, _ = predict(model, xva)
        sp = spearman(yva, score)
        if sp > best:
            best, best_state = sp, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return model.eval()


def mlp(d_in: int, hidden: tuple[int, ...], d_out: int, dropout: float) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    for h in hidden:
        layers += [torch.nn.Linear(d_in, h), torch.nn.GELU(), torch.nn.Dropout(dropout)]
        d_in = h
    return torch.nn.Sequential(*layers, torch.nn.Linear(d_in, d_out))


def evaluate(y: np.ndarray, score: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {"spearman": spearman(y, score), "qwk": qwk(y, pred)}


def table(headers: list[str], rows: list[list[object]]) -> str:
    def cell(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


class Timer:
    """Wall seconds, and this process's CPU seconds (what a fit costs on a machine others share)."""

    def __enter__(self) -> Timer:
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.cpu_seconds = time.process_time() - self.c0


def warm_up() -> None:
    """Pay torch's one-time costs (the optimizers' first step imports more of torch) before any
    fit is timed, so the first method of a run is not charged for them."""
    p = torch.nn.Parameter(torch.zeros(2))
    for opt in (torch.optim.AdamW([p]), torch.optim.LBFGS([p], max_iter=2)):
        opt.zero_grad()
        (p**2).sum().backward()
        opt.step(lambda: (p**2).sum())


def arrays_for(x: np.ndarray, y: np.ndarray) -> ManifestArrays:
    """All rated rows train, with a content-hashed 15 % for epoch selection (no test split)."""
    h = content_hash(x)
    codes = np.where(h % np.uint64(100) < 15, SPLITS.index("val"), SPLITS.index("train")).astype(np.int8)
    return ManifestArrays(np.ascontiguousarray(x), y.astype(np.int64), codes, _hashes=h)
