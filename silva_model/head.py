"""The ordinal head: an MLP from a frozen image embedding to one latent taste value, and
K-1 learnable thresholds ("quality bars") that the latent value must clear.

Inputs are L2-normalised inside the head, before standardisation: embeddings arrive raw
(SigLIP2's `pooler_output` has a norm of about 15) or already normalised (silva's backbone,
current pictoria), and the head must score c·x exactly as x for any c > 0. A head trained on
many ratings may read only the leading principal components of its train embeddings instead
of every standardised dimension (`input_components`), a projection held in the weights.

A head may start from a published judge (`prior`, see `prior.py`): the judge's latent,
standardised on the train split, is added to the personal latent with a learned weight, and the
judge's weights are held inside the head (frozen), so the released folder scores alone. The
judge's module is built outside and handed in (`release.head_for`): this module knows no judge kind.

The thresholds are strictly increasing *by construction* (first threshold plus cumulative
softplus gaps), so the cumulative probabilities P(y > k) = sigmoid(f(x) - theta_k) can never
cross, whatever values the parameters take. The score is the mean of those probabilities: the
expected fraction of the 4 bars an image clears, in [0, 1].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from silva_model.metrics import expected_rating
from silva_model.provenance import DEFAULT_BACKBONE, BackboneSpec

__all__ = ["HeadConfig", "HeadOutput", "OrdinalHead", "expected_rating", "predict", "predicted_class"]

NUM_CLASSES = 5
EMBED_DIM = 1152
CAL_KNOTS = 512  # entries of the baked calibration table
CALIBRATION_KEYS = frozenset({"cal_latent", "cal_score", "cal_fitted"})


@dataclass(frozen=True)
class HeadConfig:
    """Shape of the head; stored in `config.json` so a released head rebuilds exactly."""

    embed_dim: int = EMBED_DIM
    hidden: tuple[int, ...] = (1024, 512)
    dropout: float = 0.1
    num_classes: int = NUM_CLASSES
    members: int = 1  # independent MLPs whose latents are averaged (an ensemble in one file)
    input_components: int = 0  # > 0: the MLP reads this many principal components, not every dimension
    # a linear term of the MLP's inputs added to the personal latent: the cold start's blend of a
    # convex linear fit and the MLP (`linear.blend_into`)
    linear_part: bool = False
    backbone: BackboneSpec = field(default_factory=lambda: BackboneSpec(model=DEFAULT_BACKBONE))
    # the judge the personal latent is offset by: its kind, its config and where it came from
    # (source, revision, file digests); None: a head from scratch
    prior: dict[str, Any] | None = None
    # how the head's form was chosen on inner folds of the train split (`select.py`): the choice and
    # every candidate's out-of-fold Spearman; None: the MLP, chosen by size or by the config
    selection: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "backbone", BackboneSpec.from_value(self.backbone))
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.members < 1:
            raise ValueError(f"members must be >= 1, got {self.members}")
        if not 0 <= self.input_components <= self.embed_dim:
            raise ValueError(
                f"input_components must be in [0, {self.embed_dim}], got {self.input_components}"
            )

    @property
    def mlp_inputs(self) -> int:
        return self.input_components or self.embed_dim

    def describe_inputs(self) -> str:
        """What the MLP reads, for the model card and the pipeline's metadata."""
        if self.input_components:
            return (
                f"{self.input_components} principal components of the train embeddings "
                "(L2-normalised, centred, projected, one scale for all)"
            )
        return f"all {self.embed_dim} dimensions (L2-normalised, standardised with train-split statistics)"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["backbone"] = self.backbone.to_dict()
        for optional in ("prior", "selection", "linear_part"):
            if d[optional] in (None, False):
                del d[optional]  # a head from scratch, as an MLP, writes the config it always did
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HeadConfig:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: (tuple(v) if k == "hidden" else v) for k, v in d.items() if k in known})


@dataclass
class HeadOutput:
    latent: torch.Tensor  # (B,) f(x)
    logits: torch.Tensor  # (B, K-1) f(x) - theta_k
    score: torch.Tensor  # (B,) in [0, 1]: calibrated when the head has a table, else mean_k sigmoid(logits)


class OrdinalHead(nn.Module):
    """MLP + monotone thresholds. Inputs are centred and scaled with train-split statistics held
    as buffers, because SigLIP embeddings share a large common direction that would otherwise
    dominate the first layer's pre-activations; with `input_components` they are also projected
    onto the train split's leading principal components (`input_projection`)."""

    def __init__(self, config: HeadConfig | None = None, judge: nn.Module | None = None) -> None:
        """`judge`: the module of the judge `config.prior` records (built and loaded by the caller,
        `release.head_for` or training), held frozen inside the head; None for a head from scratch."""
        super().__init__()
        self.config = config or HeadConfig()
        c = self.config
        if (judge is None) != (c.prior is None):
            raise ValueError(
                "a head whose config records a prior needs its judge module, and only such a head takes "
                f"one (prior recorded: {c.prior is not None}, judge given: {judge is not None})"
            )
        self.mlp = MemberMLP(c.mlp_inputs, c.hidden, c.dropout, c.members)
        k = c.num_classes - 1
        self.theta_first = nn.Parameter(torch.tensor(-(k - 1) / 2.0))
        # softplus(0.5413) == 1.0: unit gaps until init_thresholds says otherwise.
        self.theta_gaps = nn.Parameter(torch.full((k - 1,), 0.5413))
        if c.linear_part:  # fitted to convergence apart from the MLP's epochs: a buffer, not trained
            self.register_buffer("linear_weight", torch.zeros(c.mlp_inputs))
        self.register_buffer("input_mean", torch.zeros(c.embed_dim))
        self.register_buffer("input_scale", torch.ones(c.mlp_inputs))
        if c.input_components:
            self.register_buffer("input_projection", torch.zeros(c.embed_dim, c.input_components))
        # Calibration: a monotone latent -> score table baked into the weights (see fit_calibration).
        self.register_buffer("cal_latent", torch.zeros(CAL_KNOTS))
        self.register_buffer("cal_score", torch.zeros(CAL_KNOTS))
        self.register_buffer("cal_fitted", torch.zeros((), dtype=torch.bool))
        if judge is not None:
            self.judge = judge.requires_grad_(False).eval()
            # judge latent -> (latent - mean) * scale, from the train split; weight: learned
            self.register_buffer("judge_mean", torch.zeros(()))
            self.register_buffer("judge_scale", torch.ones(()))
            self.judge_weight = nn.Parameter(torch.zeros(()))

    @property
    def has_judge(self) -> bool:
        return self.config.prior is not None

    def train(self, mode: bool = True) -> OrdinalHead:
        """The judge is frozen: its dropout stays off while the personal part trains."""
        super().train(mode)
        if self.has_judge:
            self.judge.eval()
        return self

    @property
    def learned_judge_weight(self) -> float:
        """How much the judge counts, per sd of its latent on the train split."""
        return float(self.judge_weight.detach())

    @torch.no_grad()
    def judge_input(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) the judge's latent, standardised on the train split."""
        return (self.judge(x).latent.float() - self.judge_mean) * self.judge_scale

    @torch.no_grad()
    def standardize_judge(self, x: torch.Tensor, batch: int = 16_384) -> torch.Tensor:
        """Fix the judge's standardisation to its latents on these (train) embeddings; returns
        them standardised."""
        z = torch.cat([self.judge(x[s : s + batch]).latent.float() for s in range(0, x.shape[0], batch)])
        self.judge_mean.copy_(z.mean())
        self.judge_scale.copy_(1.0 / z.std().clamp_min(1e-6) if z.numel() > 1 else torch.ones(()))
        return (z - self.judge_mean) * self.judge_scale

    def judge_and_bars(self) -> list[nn.Parameter]:
        """The judge's weight and the bars: what a one-input fit on the judge's latent sets."""
        return [self.judge_weight, self.theta_first, self.theta_gaps]

    @torch.no_grad()
    def reweigh_parts(self, judge_weight: float, personal_scale: float, shift: float) -> None:
        """Set the judge's weight, scale the personal part (its output layer) and move every bar
        by `shift`: how the inner folds' mix of the two parts is baked into the weights."""
        self.judge_weight.fill_(judge_weight)
        self.mlp.weights[-1].mul_(personal_scale)
        self.mlp.biases[-1].mul_(personal_scale)
        self.theta_first.add_(shift)

    def bar_parameters(self) -> torch.Tensor:
        """(K-1,) the first bar and the gap logits, detached: `monotone_bars` of them is the bars."""
        return torch.cat([self.theta_first.detach().reshape(1), self.theta_gaps.detach()])

    @property
    def num_thresholds(self) -> int:
        return self.config.num_classes - 1

    def thresholds(self) -> torch.Tensor:
        """theta_1 < theta_2 < ... < theta_{K-1}, strictly, for any parameter values."""
        return monotone_bars(self.theta_first, self.theta_gaps)

    @torch.no_grad()
    def init_thresholds(self, cumulative_positive_rate: torch.Tensor) -> None:
        """Place the bars where the untrained head (f(x) ~ 0) reproduces the train split's class rates:
        P(y > k) = sigmoid(-theta_k)  =>  theta_k = logit(1 - p_k). Rates are clamped so
        an absent class (p_k = 0 or 1) gives a finite, still increasing threshold."""
        p = cumulative_positive_rate.double().clamp(1e-3, 1 - 1e-3)
        theta = torch.logit(1 - p)
        theta = torch.cummax(theta, 0).values  # p_k is non-increasing, but be safe with clamping
        gaps = (theta[1:] - theta[:-1]).clamp_min(1e-3) - 1e-4
        self.theta_first.copy_(theta[0].float())
        # softplus inverse: log(exp(g) - 1), stable for large g.
        self.theta_gaps.copy_((gaps + torch.log(-torch.expm1(-gaps))).float())

    @torch.no_grad()
    def set_input_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.input_mean.copy_(mean)
        self.input_scale.copy_(1.0 / std.clamp_min(1e-6))

    @torch.no_grad()
    def fit_input_projection(self, x: torch.Tensor) -> None:
        """Project onto the leading principal components of these (train) embeddings, with one
        scale for all of them: the components keep their relative spread, so the MLP starts
        from what varies most, and per-component whitening would lift the noise tail."""
        k = self.config.input_components
        xn = normalize_embeddings(x)
        mean = xn.mean(0)
        centred = xn - mean
        # eigenvectors of the (D, D) covariance: the same components as an SVD of the rows,
        # without an (N, D) factor in memory; eigh sorts ascending
        components = torch.linalg.eigh((centred.T @ centred).double()).eigenvectors[:, -k:].flip(1).float()
        std = (centred @ components).std()
        self.input_mean.copy_(mean)
        self.input_projection.copy_(components)
        self.input_scale.fill_(1.0 / float(std.clamp_min(1e-6)))

    @torch.no_grad()
    def fit_calibration(self, latents: torch.Tensor, ratings: torch.Tensor) -> None:
        """Histogram specification: map each latent quantile of the train split to the rating at the
        same quantile of the train ratings, so the expected ratings spread like the person's own
        instead of huddling around the mean. Rating c's share of the distribution is spread
        linearly over [c - 1/2, c + 1/2] (ends held inside [1, K]), which keeps the map strictly
        increasing: it reorders nothing, so Spearman is untouched, and the predicted class still
        comes from the bars."""
        k = self.config.num_classes
        f = latents.detach().double().flatten().cpu()
        q = torch.linspace(0, 1, CAL_KNOTS, dtype=torch.float64)
        knots = torch.quantile(f, q)
        counts = torch.bincount(ratings.long().flatten().cpu() - 1, minlength=k)[:k].double()
        edges = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(counts, 0) / counts.sum()])
        c = torch.searchsorted(edges[1:], q, right=True).clamp(max=k - 1)  # 0-based class of each quantile
        pos = (q - edges[c]) / (edges[c + 1] - edges[c]).clamp_min(1e-12)
        low = torch.where(c == 0, 1.0, c + 0.5)  # rating c+1 spans [c+1/2, c+3/2], ends clipped to [1, K]
        high = torch.where(c == k - 1, float(k), c + 1.5)
        rating = low + pos.clamp(0, 1) * (high - low)
        self.cal_latent.copy_(knots.float())
        self.cal_score.copy_(((rating - 1) / (k - 1)).float())
        self.cal_fitted.fill_(True)

    def calibrated(self, latent: torch.Tensor) -> torch.Tensor:
        return interpolate(latent, self.cal_latent, self.cal_score)

    def mlp_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """(B, mlp_inputs): what the MLP reads, the embeddings normalised, centred, projected and scaled."""
        h = normalize_embeddings(x) - self.input_mean
        if self.config.input_components:
            h = h @ self.input_projection
        return h * self.input_scale

    def _personal_members(self, x: torch.Tensor) -> torch.Tensor:
        h = self.mlp_inputs(x)
        if self.config.linear_part:
            return self.mlp(h) + h @ self.linear_weight
        return self.mlp(h)

    @torch.no_grad()
    def set_blend(self, weight: torch.Tensor, mlp_scale: float, bars: torch.Tensor) -> None:
        """Bake a blend into the weights: the linear part's `weight`, the MLP's latent scaled by
        `mlp_scale` (its output layer) and the bars `monotone_bars(bars[0], bars[1:])`."""
        if not self.config.linear_part:
            raise ValueError(f"only a head with a linear part holds a blend, not {self.config}")
        self.linear_weight.copy_(weight)
        self.mlp.weights[-1].mul_(mlp_scale)
        self.mlp.biases[-1].mul_(mlp_scale)
        self.theta_first.copy_(bars[0])
        self.theta_gaps.copy_(bars[1:])

    @torch.no_grad()
    def set_linear(self, weight: torch.Tensor, bars: torch.Tensor, judge_weight: float | None = None) -> None:
        """Set a head without hidden layers to the linear fit `latent = mlp_inputs(x) @ weight
        (+ judge_weight * judge)` with bars `monotone_bars(bars[0], bars[1:])` (`linear.py`)."""
        if self.config.hidden or self.config.members != 1:
            raise ValueError(f"only a one-member head without hidden layers is linear, not {self.config}")
        self.mlp.weights[0].copy_(weight.reshape(self.mlp.weights[0].shape))
        self.mlp.biases[0].zero_()
        self.theta_first.copy_(bars[0])
        self.theta_gaps.copy_(bars[1:])
        if judge_weight is not None:
            self.judge_weight.fill_(judge_weight)

    def member_latents(self, x: torch.Tensor) -> torch.Tensor:
        """(members, B): each member's latent, what training fits against the shared bars."""
        f = self._personal_members(x)
        if self.has_judge:
            f = f + self.judge_weight * self.judge_input(x)
        return f

    def personal_latent(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) the MLP's part of the latent, without the judge's."""
        return self._personal_members(x).mean(0)

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        return self.member_latents(x).mean(0)

    def forward(self, x: torch.Tensor) -> HeadOutput:
        f = self.latent(x)
        logits = f.unsqueeze(-1) - self.thresholds().unsqueeze(0)
        score = self.calibrated(f.float()) if bool(self.cal_fitted) else torch.sigmoid(logits).mean(-1)
        return HeadOutput(latent=f, logits=logits, score=score)


class MemberMLP(nn.Module):
    """`members` independent MLPs (Linear/GELU/Dropout, then Linear to one latent) run as batched
    matmuls: an ensemble costs one pass over the batch, and is stored as one set of tensors
    (layer i: `weights.i` of shape (members, in, out), `biases.i` of shape (members, out))."""

    def __init__(self, d_in: int, hidden: tuple[int, ...], dropout: float, members: int) -> None:
        super().__init__()
        widths = [d_in, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            bound = a**-0.5  # nn.Linear's default init, per member
            self.weights.append(nn.Parameter(torch.empty(members, a, b).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(members, b).uniform_(-bound, bound)))
        self.drop = nn.Dropout(dropout)

    @property
    def out_features(self) -> list[int]:
        return [w.shape[-1] for w in self.weights]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (members, B)."""
        h = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.matmul(h, w) + b.unsqueeze(1)
            if i < last:
                h = self.drop(F.gelu(h))
        return h.squeeze(-1)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        """Heads saved before members existed hold an `nn.Sequential` of Linear layers
        (`mlp.0.weight` of shape (out, in), every third module): read them as one member."""
        for i in range(len(self.weights)):
            for old, new, shape in (("weight", "weights", lambda t: t.T), ("bias", "biases", lambda t: t)):
                key = f"{prefix}{3 * i}.{old}"
                if key in state_dict:
                    state_dict[f"{prefix}{new}.{i}"] = shape(state_dict.pop(key)).unsqueeze(0)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def monotone_bars(first: torch.Tensor, gap_logits: torch.Tensor) -> torch.Tensor:
    """The first bar, then each next one a softplus gap (at least 1e-4) above: strictly increasing."""
    first = first.reshape(1)
    return torch.cat([first, first + torch.cumsum(F.softplus(gap_logits) + 1e-4, 0)])


def interpolate(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Linear interpolation through a baked, increasing table, clamped at its ends: per element,
    so one image scores as it does in a batch."""
    idx = torch.searchsorted(xp, x.contiguous()).clamp(1, len(xp) - 1)
    t = ((x - xp[idx - 1]) / (xp[idx] - xp[idx - 1]).clamp_min(1e-12)).clamp(0.0, 1.0)
    return fp[idx - 1] + t * (fp[idx] - fp[idx - 1])


def normalize_embeddings(x: torch.Tensor) -> torch.Tensor:
    """Unit L2 norm per row: what the head actually reads, whatever scale the embeddings came in."""
    return F.normalize(x.float(), dim=-1)


@torch.no_grad()
def predict(
    head: nn.Module, x: torch.Tensor | np.ndarray, batch_size: int = 16_384
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings -> (score in [0, 1], predicted class 1..K) as NumPy arrays, in eval mode."""
    device = next(head.parameters()).device
    was_training = head.training
    head.eval()
    scores, classes = [], []
    for s in range(0, x.shape[0], batch_size):
        out = head(batch_tensor(x[s : s + batch_size]).to(device, torch.float32, non_blocking=True))
        scores.append(out.score.float().cpu())
        classes.append(predicted_class(out.logits).cpu())
    head.train(was_training)
    if not scores:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    return torch.cat(scores).numpy(), torch.cat(classes).numpy()


def batch_tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """One batch as a tensor, sharing memory where it can. A read-only array (a memory-mapped
    manifest read zero-copy) is copied batch by batch: torch cannot wrap read-only memory."""
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        return torch.from_numpy(x.copy())
    return torch.as_tensor(x)


def predicted_class(logits: torch.Tensor) -> torch.Tensor:
    """1 + number of bars cleared (P(y > k) > 0.5). Monotone thresholds make this consistent:
    clearing bar k implies clearing every lower bar."""
    return 1 + (logits > 0).sum(-1)
