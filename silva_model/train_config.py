"""The one training config: from the launchpad (whose Dagster config is generated from these
fields), `silva train --config` and the bench, into the checkpoint and back (`TrainedHead`)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml

# On the bench's family of tastes, reading 128 principal components instead of every standardised
# dimension raised Spearman at 16,000 train ratings (20k rated) for every taste, was about even at
# 8,000 and lower below (the README's "principal components at large sizes").
AUTO_COMPONENTS = 128
AUTO_COMPONENTS_FROM = 10_000
# A RankNet term over each batch's differently rated pairs raised the family's mean Spearman at
# 80 to 2,400 train ratings (most at a few hundred, and the worst taste-seed more) and lowered it
# at 4,800 (the README's "small sizes"); auto turns it on below this many train ratings.
AUTO_RANK_WEIGHT = 1.0
AUTO_RANK_BELOW = 4_000
# Below this many train ratings `model: auto` fits its candidates on inner folds of the train split
# and keeps the best (select.py; docs/benchmarks.md, "The cold start").
SELECT_BELOW = 2_000
# Below this many it blends them instead. On bench/'s nine tastes (4 seeds) the blend led the
# choice by 0.004 to 0.009 of the oracle's Spearman at 100 to 500 ratings (80 to 400 train) and
# trailed it at 1,000 (768 train) on the clean non-linear taste, where held-out folds of 256
# ratings tell the MLP's lead apart.
BLEND_BELOW = 600
# The blend's linear share: from this many train ratings its inner folds choose it (folds of 100
# ratings and more tell the parts apart; below, a fixed share did better on bench/'s tastes).
LINEAR_SHARE = 0.6
SHARE_FROM = 300
# The blend's MLP keeps the average of its weights from this epoch on rather than the epoch that
# scored best on a few dozen val ratings, and the blend's L2 is chosen on this many shuffles of the
# inner folds rather than one: on bench/'s tastes at 100 to 500 ratings both steadied the blend
# (docs/benchmarks.md, "The cold start").
AVERAGE_FROM = 5
L2_SHUFFLES = 5
# `threshold_init` once said `prior`; checkpoints that say so still load.
OLD_NAMES = {("threshold_init", "prior"): "class_rates"}
# Options added since checkpoints were first written, as the heads of those checkpoints were trained.
UNRECORDED = {"average_from": 0}


def option_variable(name: str) -> str:
    """The environment variable of training option `name`."""
    return f"SILVA_{name.upper()}"


def _from_text(variable: str, hint: Any, raw: str) -> Any:
    """An environment variable's text as the option's value: YAML scalars (`5`, `3e-3`, `true`),
    and a list of integers as `1024,512` or `[1024, 512]` (`[]`: none)."""
    if get_origin(hint) is tuple:
        items = [v for v in raw.strip().strip("[]").split(",") if v.strip()]
        try:
            return [int(v) for v in items]
        except ValueError:
            raise ValueError(f"{variable}={raw!r} is not a list of integers (e.g. 1024,512)") from None
    value = yaml.safe_load(raw)
    return raw if hint is str else value


def read_options(path: str | Path) -> dict[str, Any]:
    """A YAML file of training options, as a mapping."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of training options")
    return data


def _opt(default: Any, help: str) -> Any:
    """A training option with its help text: the pipeline's launchpad config is generated from
    these fields, so the help lives here once."""
    return field(default=default, metadata={"help": help})


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _typed(name: str, hint: Any, value: Any) -> Any:
    """`value` as option `name`'s type, or a ValueError naming the option. A float may come as a
    string: PyYAML reads `3e-3` (no dot) as one."""
    if hint is float and isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if hint is float and (_is_int(value) or isinstance(value, float)):
        if not math.isfinite(value):
            raise ValueError(f"training option {name} must be a finite number, got {value!r}")
        return float(value)
    if hint is int and _is_int(value) or hint in (bool, str) and isinstance(value, hint):
        return value
    if get_origin(hint) is tuple and isinstance(value, list | tuple) and all(_is_int(v) for v in value):
        return tuple(value)
    if get_origin(hint) is Literal and value in get_args(hint):
        return value
    kind = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}.get(hint)
    if kind is None:
        kind = f"one of {get_args(hint)}" if get_origin(hint) is Literal else "a list of integers"
    raise ValueError(f"training option {name} must be {kind}, got {value!r}")


@dataclass
class TrainConfig:
    """Hyper-parameters, the one training config (the Dagster config is derived from it).
    Defaults were chosen on the synthetic taste benchmark (bench/quality.py)."""

    lr: float = _opt(1e-3, "AdamW peak learning rate (warmup, then cosine)")
    epochs: int = _opt(20, "epochs; the best by val Spearman is kept (or the later ones averaged)")
    batch_size: int = _opt(512, "rows per optimizer step")
    weight_decay: float = _opt(0.05, "AdamW weight decay")
    hidden: tuple[int, ...] = _opt((1024, 512), "MLP hidden widths")
    dropout: float = _opt(0.1, "dropout after each hidden layer")
    members: int = _opt(1, "independent MLPs trained side by side on shared bars; latents averaged")
    calibrate: bool = _opt(True, "bake a rank-preserving latent -> score table fitted to the train ratings")
    # On the benchmark, balancing raised Spearman but lowered QWK.
    class_balance: bool = _opt(False, "per-threshold class balancing of the loss")
    standardize_inputs: bool = _opt(
        True, "standardise inputs with train-split statistics (a head that reads every dimension)"
    )
    input_components: int = _opt(
        -1,
        "principal components of the train embeddings the head reads, one scale for all: 0 = every "
        f"dimension; -1 = auto ({AUTO_COMPONENTS} from {AUTO_COMPONENTS_FROM:,} train ratings, else 0)",
    )
    ema_epochs: float = _opt(1.0, "span in epochs of the weight EMA that is evaluated and kept; 0 = off")
    average_from: int = _opt(
        -1,
        "from this epoch on, the (EMA's) weights at each epoch's end are averaged and the average is "
        "kept instead of the best epoch by val Spearman; 0 = off; -1 = auto "
        f"({AVERAGE_FROM} for a blend's MLP, else off)",
    )
    threshold_init: Literal["class_rates", "uniform"] = _opt(
        "class_rates",
        "class_rates: bars where the train split's class frequencies put them; uniform: -1.5 .. 1.5",
    )
    rank_weight: float = _opt(
        -1.0,
        "weight of a RankNet loss over the batch's differently rated pairs; -1 = auto "
        f"({AUTO_RANK_WEIGHT:g} below {AUTO_RANK_BELOW:,} train ratings, else 0)",
    )
    pair_weight: float = _opt(1.0, "weight of one pairwise judgement against one rating (only with pairs)")
    prior: str = _opt(
        "",
        "a published judge to start from: a Hub id or folder of a silva-scorer head or a silva release "
        "(its latent joins the personal one with a weight fitted to the ratings); empty: from scratch",
    )
    judge_folds: int = _opt(
        5,
        "with a prior: inner folds of the train split; heads trained on the rest of each score it, and "
        "those out-of-fold latents fit how much the judge and the personal part count; 0: the judge's "
        "weight as learned in training alone",
    )
    model: Literal["auto", "mlp", "linear", "blend"] = _opt(
        "auto",
        "the head's form: mlp (hidden widths), linear (a convex ordinal linear head fitted to convergence), "
        "blend (the two's standardised latents, the linear one's L2 from the inner folds; no prior), or "
        f"auto: below {BLEND_BELOW} train ratings the blend, then up to select_below (and with a prior) "
        "the one of linear and mlp with the better inner-fold Spearman, else mlp",
    )
    select_below: int = _opt(
        SELECT_BELOW, "model auto: below this many train ratings the candidates are compared on inner folds"
    )
    select_folds: int = _opt(
        3,
        "inner folds of the train split that choose the head's form (model auto), a linear head's L2 "
        "and, with no val rows, the MLP's epochs; 0: none, the options as given (a chosen head's config)",
    )
    linear_l2: float = _opt(
        -1.0, "L2 of the linear head, as mord's alpha on standardised inputs; -1 = from the inner folds"
    )
    linear_share: float = _opt(
        -1.0,
        "model blend: the linear fit's share of the standardised latent, 0 to 1; -1 = from the inner "
        f"folds from {SHARE_FROM} train ratings, else {LINEAR_SHARE}",
    )
    seed: int = _opt(0, "random seed (runs on the CPU are deterministic)")
    device: Literal["auto", "cpu", "cuda"] = _opt("auto", "auto: CUDA when available")

    def __post_init__(self) -> None:
        for (name, old), new in OLD_NAMES.items():
            if getattr(self, name) == old:
                setattr(self, name, new)
        for name, hint in get_type_hints(TrainConfig).items():
            setattr(self, name, _typed(name, hint, getattr(self, name)))
        for name in ("epochs", "batch_size", "lr", "members"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("judge_folds", "select_folds"):
            if getattr(self, name) < 0 or getattr(self, name) == 1:
                raise ValueError(f"{name} must be 0 (off) or 2 or more, got {getattr(self, name)}")
        if self.linear_l2 <= 0 and self.linear_l2 != -1:
            raise ValueError(f"linear_l2 must be -1 (from the inner folds) or positive, got {self.linear_l2}")
        if not 0 <= self.linear_share <= 1 and self.linear_share != -1:
            raise ValueError(f"linear_share must be -1 (auto) or from 0 to 1, got {self.linear_share}")
        if self.model == "blend" and self.prior:
            raise ValueError("model blend takes no prior: use auto, linear or mlp with a prior")
        if self.rank_weight < 0 and self.rank_weight != -1:
            raise ValueError(f"rank_weight must be -1 (auto), 0 or more, got {self.rank_weight}")
        if self.average_from < -1:
            raise ValueError(f"average_from must be -1 (auto), 0 (off) or an epoch, got {self.average_from}")
        if self.input_components < -1:
            raise ValueError(f"input_components must be -1 (auto), 0 or more, got {self.input_components}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown training option(s) {unknown}; known: {sorted(names)}")
        return cls(**d)

    @classmethod
    def recorded(cls, d: dict[str, Any]) -> TrainConfig:
        """A config as a checkpoint recorded it: an option it predates takes the value its head
        was trained with (a blend of before `average_from` kept its best epoch), not today's."""
        return cls.from_dict({**UNRECORDED, **d})

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        return cls.load(read_options(path))

    @classmethod
    def load(
        cls,
        values: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> TrainConfig:
        """The one way in for training options, whoever trains (`silva train`, `silva-run`, the
        launchpad): the defaults, then `values` (a `--config` file, a workspace's `training:`),
        then the environment (`SILVA_<OPTION>`, e.g. SILVA_EPOCHS=5, SILVA_PRIOR=you/judge), then
        `overrides` (command-line options, the launchpad's; None leaves an option as it is)."""
        merged = dict(values or {})
        from_env: dict[str, str] = {}
        for name, hint in get_type_hints(cls).items():
            variable = option_variable(name)
            raw = (env or {}).get(variable, "")
            if raw.strip():
                merged[name] = _typed(f"{name} ({variable})", hint, _from_text(variable, hint, raw))
                from_env[name] = variable
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        merged |= given
        try:
            return cls.from_dict(merged)
        except ValueError as e:  # a value out of range: name the variable it came from
            name = str(e).split(" ", 1)[0]
            if name in from_env and name not in given:
                raise ValueError(f"{from_env[name]}: {e}") from None
            raise

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    def components_for(self, n_train: int, dim: int) -> int:
        """The principal components a head trained on `n_train` `dim`-d rows reads (0: all
        dimensions): never more than the rows can span. Auto projects only when it reduces: a
        narrower backbone keeps per-dimension standardisation."""
        k = self.input_components
        if k == -1:
            k = AUTO_COMPONENTS if n_train >= AUTO_COMPONENTS_FROM and dim > AUTO_COMPONENTS else 0
        return min(k, dim, max(n_train - 1, 1)) if k else 0

    def averaged_from(self) -> int:
        """The epoch from which the MLP's weights are averaged, at most the last (0: the best
        epoch is kept)."""
        start = self.average_from
        if start == -1:
            start = AVERAGE_FROM if self.model == "blend" else 0
        return min(start, self.epochs)

    def rank_weight_for(self, n_train: int) -> float:
        """The RankNet term's weight for a head trained on `n_train` rows."""
        if self.rank_weight == -1:
            return AUTO_RANK_WEIGHT if n_train < AUTO_RANK_BELOW else 0.0
        return self.rank_weight

    def selects(self, n_train: int) -> bool:
        """Whether a head trained on `n_train` rows has its form chosen on inner folds."""
        return self.model == "auto" and self.select_folds > 0 and n_train < self.select_below

    def chosen_by_size(self, n_train: int, dim: int) -> dict[str, float | int | str]:
        """What the size-dependent options come to for this many `dim`-d train rows (for the
        model card: the same config trains a different head at 500 and at 20,000 ratings)."""
        return {
            "input_components": self.components_for(n_train, dim),
            "rank_weight": self.rank_weight_for(n_train),
            "model": self.model if self.model != "auto" or self.selects(n_train) else "mlp",
        }
