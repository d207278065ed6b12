"""Checkpoints and releases as safetensors + JSON. Nothing is ever unpickled.

Three layouts, all loadable by `load_head`:
- training checkpoint: `best.safetensors` + `best.json` (config, metrics, epoch, manifest fingerprint);
- release (Hugging Face convention): `config.json` + `model.safetensors` + model card `README.md`;
- a head published by `silva-scorer` (its `config.json` + `model.safetensors`; see `interop.py`).

silva's own layouts record the SHA-256 of every file beside their JSON (`files` in it), and
`load_head` verifies them: a weight changed by one byte after release is refused, not scored.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from silva_model.atomic import atomic_path, atomic_write_text
from silva_model.head import CALIBRATION_KEYS, HeadConfig, OrdinalHead
from silva_model.interop import SILVA_SCORER, SilvaScorerHead, is_silva_scorer_config
from silva_model.metrics import unmeasured
from silva_model.provenance import sha256_file
from silva_model.select import describe
from silva_model.tables import md_table
from silva_model.train_config import TrainConfig

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
BEST_WEIGHTS = "best.safetensors"
BEST_META = "best.json"
RELEASE_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)
FORMAT = "silva-ordinal-head"


def head_for(config: HeadConfig) -> OrdinalHead:
    """An empty head of this config, with an empty judge of the kind its `prior` records: the
    judge's weights arrive with the head's own (`judge.*` in its safetensors)."""
    if config.prior is None:
        return OrdinalHead(config)
    prior = config.prior
    if prior["kind"] == SILVA_SCORER:
        judge: torch.nn.Module = SilvaScorerHead(prior["config"])
    else:
        judge = head_for(HeadConfig.from_dict(prior["config"]))
    return OrdinalHead(config, judge=judge)


class IntegrityError(ValueError):
    """A file of a head differs from the digest recorded when the head was written."""


def _write_weights(head: torch.nn.Module, path: Path) -> str:
    """Write the weights; their SHA-256 (hashed from the written file, so it is what a reader sees)."""
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in head.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "silva_format": FORMAT})
        return sha256_file(tmp)


def verify_files(directory: Path, meta: dict[str, Any], meta_name: str) -> None:
    """Check every file the head's JSON lists under `files` against its recorded SHA-256."""
    for name, digest in (meta.get("files") or {}).items():
        path = directory / name
        found = sha256_file(path) if path.is_file() else "missing"
        if found != digest:
            raise IntegrityError(
                f"{path} does not match the sha256 recorded in {meta_name} "
                f"({digest[:12]}…, found {found[:12]}…): it changed after the head was written; "
                "refusing to load it (--no-verify, or verify=False, loads it anyway)"
            )


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"


def save_checkpoint(head: OrdinalHead, directory: str | Path, meta: dict[str, Any]) -> Path:
    """Write best.safetensors then best.json, each atomically (the JSON last, so its presence
    means the weights beside it are complete)."""
    directory = Path(directory)
    digest = _write_weights(head, directory / BEST_WEIGHTS)
    meta = {"head_config": head.config.to_dict(), **meta, "files": {BEST_WEIGHTS: digest}}
    atomic_write_text(directory / BEST_META, _dumps(meta))
    return directory


def _prior_section(prior: dict[str, Any] | None, weight: float | None) -> str:
    """Where the judge inside the head came from, and how much it counts."""
    if not prior:
        return "None: this head was trained from the person's ratings alone."
    lines = [
        f"This head starts from a published judge ({prior['kind']} head) whose weights are held inside "
        f"`{WEIGHTS_NAME}` (frozen). Its latent, standardised on the train split, is added to the "
        f"personal latent with a learned weight of {weight:.3f}.",
        "",
        f"- source: `{prior['source']}`",
        f"- revision: `{prior['revision'] or 'a local folder'}`",
        *(f"- sha256 of its `{name}`: `{digest}`" for name, digest in sorted(prior["files"].items())),
    ]
    return "\n".join(lines)


def _evaluation_table(config: dict[str, Any]) -> str:
    """The metrics recorded with the release, one row per split, with Spearman's interval."""
    metrics, intervals = config.get("metrics") or {}, config.get("intervals") or {}
    keys = ("n", "spearman", "pearson", "qwk", "mae", "rmse", "top5_precision")

    def ci(split: str) -> str:
        low, high = (intervals.get(split) or {}).get("spearman", (None, None))
        return f"{low:.3f} – {high:.3f}" if low is not None else ""

    rows = []
    for split, m in metrics.items():
        if isinstance(m, dict):
            n, rho, *rest = (m.get(k, float("nan")) for k in keys)
            if why := unmeasured(m):  # as the run's summary says it: no number that means nothing
                rows.append([split, n, why, *[""] * 6])
            else:
                rows.append([split, n, rho, ci(split), *rest])
    headers = ["split", "n", "Spearman", "Spearman 95 % CI", "Pearson", "QWK", "MAE", "RMSE"]
    return (
        md_table([*headers, "Top-5 % precision"], rows)
        if rows
        else "No evaluation was recorded for this head."
    )


def _training_lines(config: dict[str, Any]) -> str:
    """What the defaults chose by size, and how the head's form was chosen on inner folds."""
    data, training = config.get("data") or {}, config.get("training") or {}
    chosen = ", ".join(f"{k} = {v}" for k, v in sorted((training.get("chosen_by_size") or {}).items()))
    lines = []
    if chosen:
        lines += [
            f"- Options the defaults choose by size, as chosen for {data.get('n_train', 'its')} train "
            f"ratings: {chosen}.",
            f"- The whole training config: `training.config` in `{CONFIG_NAME}`.",
        ]
    selection = config["head_config"].get("selection")
    if selection:
        lines.append(f"- {describe(selection)} Every candidate's score: `head_config.selection`.")
    return "\n".join(lines) or "- not recorded"


def _model_card(config: dict[str, Any], judge_weight: float | None = None) -> str:
    hc = config["head_config"]
    head_config = HeadConfig.from_dict(hc)
    mlp = " -> ".join(str(w) for w in [head_config.mlp_inputs, *head_config.hidden])
    linear_part = ", plus a linear term of its inputs (`linear_weight`)" if head_config.linear_part else ""
    backbone = hc["backbone"]["model"] or "an unrecorded backbone"
    provenance = "\n".join(f"- {k}: `{v}`" for k, v in hc["backbone"].items() if v)
    data = config.get("data") or {}
    data_lines = "\n".join(f"- {k}: {v}" for k, v in sorted(data.items())) or "- not recorded"
    return f"""---
library_name: silva
base_model: {backbone}
tags:
- silva
- aesthetic-scoring
- ordinal-regression
---

# silva personal aesthetic head

An ordinal head that scores illustrations by **one person's** taste, learned from their own
1-5 ratings. It is not a universal quality model. Input: the {hc["embed_dim"]}-d image
embedding of `{backbone}`, at any scale (the head L2-normalises it). Output: a score in [0, 1] and
an expected rating 1 + 4 * score. A head trained with calibration (the default) maps its latent
through a baked, strictly increasing table so that expected ratings spread like the person's own
ratings; without one, the score is the fraction of the 4 quality bars cleared.

## Use

```bash
silva score image.jpg --head path/to/this/folder
```

```python
from silva_model import Scorer
scorer = Scorer.from_pretrained("path/or/repo-id")
scores = scorer.score_embeddings(embeddings)  # (N, {hc["embed_dim"]}) float32 -> (N,) in [0, 1]
```

## Evaluation

{_evaluation_table(config)}

## Training data

{data_lines}

## Training

{_training_lines(config)}

## Prior

{_prior_section(hc.get("prior"), judge_weight)}

## Backbone the training embeddings came from

{provenance or "- not recorded"}

## Details

- Inputs: {head_config.describe_inputs()}.
- MLP {mlp} -> 1 (GELU, dropout {hc["dropout"]}){linear_part},
  {hc["num_classes"] - 1} monotone thresholds (first + cumulative softplus gaps).
- Weights: `{WEIGHTS_NAME}` (safetensors, fp32), sha256 `{(config.get("files") or {}).get(WEIGHTS_NAME, "")}`;
  configuration: `{CONFIG_NAME}`. Loading verifies every file against the sha256 in `{CONFIG_NAME}`.
- Released: {config.get("released_at", "")}
"""


def save_pretrained(
    head: OrdinalHead,
    directory: str | Path,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a release folder. The folder is assembled beside the target and swapped in, so a
    reader never sees a half-written release. `config.json` records the SHA-256 of the weights
    and of the model card (which shows the weights' digest too)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    config = {
        "format": FORMAT,
        "head_config": head.config.to_dict(),
        "metrics": metrics or {},
        "released_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        config["files"] = {WEIGHTS_NAME: _write_weights(head, tmp / WEIGHTS_NAME)}
        weight = head.learned_judge_weight if getattr(head, "has_judge", False) else None
        (tmp / CARD_NAME).write_text(_model_card(config, weight), encoding="utf-8")
        config["files"][CARD_NAME] = sha256_file(tmp / CARD_NAME)
        (tmp / CONFIG_NAME).write_text(_dumps(config), encoding="utf-8")
        old = directory.with_name(f".{directory.name}.old")
        if directory.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def head_files(directory: str | Path) -> tuple[Path, Path]:
    """(metadata, weights) of a head folder, a release's or a training checkpoint's; a folder
    holding neither is refused by name (a run checks its judge's folder with this before any step)."""
    directory = Path(directory)
    for meta, weights in ((CONFIG_NAME, WEIGHTS_NAME), (BEST_META, BEST_WEIGHTS)):
        if (directory / meta).is_file() and (directory / weights).is_file():
            return directory / meta, directory / weights
    raise FileNotFoundError(
        f"{directory} holds no silva head: expected {CONFIG_NAME} + {WEIGHTS_NAME} "
        f"(a release) or {BEST_META} + {BEST_WEIGHTS} (a training checkpoint)"
    )


def load_head(
    directory: str | Path, device: str | torch.device = "cpu", verify: bool = True
) -> tuple[OrdinalHead | SilvaScorerHead, dict[str, Any]]:
    """Load a release folder, a training checkpoint folder, or a silva-scorer head, its files
    verified against the digests it recorded (`verify=False` skips that, knowingly)."""
    meta_path, weights_path = head_files(directory)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if is_silva_scorer_config(meta):
            head: OrdinalHead | SilvaScorerHead = SilvaScorerHead(meta)
        else:
            head = head_for(HeadConfig.from_dict(meta["head_config"]))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{meta_path} is not a silva head configuration: {e}") from e
    if verify:
        verify_files(meta_path.parent, meta, meta_path.name)
    try:
        state = load_file(str(weights_path), device="cpu")
        missing, unexpected = head.load_state_dict(state, strict=False)
        if unexpected or set(missing) - CALIBRATION_KEYS:  # heads saved before calibration lack only those
            raise ValueError(f"missing {sorted(missing)}, unexpected {sorted(unexpected)}")
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"{weights_path} could not be loaded into a head of {head.config}: {e}") from e
    head.to(device).eval()
    return head, meta


@dataclass
class TrainedHead:
    """A trained head, saved as a training checkpoint (best.safetensors + best.json): the module
    (whose config records the backbone its training embeddings came from) and what training knew
    about it, its config included."""

    head: OrdinalHead
    best_epoch: int
    val_metrics: dict[str, float]
    train_config: TrainConfig
    manifest_fingerprint: str
    n_train: int
    n_val: int
    seconds: float = 0.0
    tracking: dict[str, str] = field(default_factory=dict)  # e.g. the MLflow run id

    def meta(self) -> dict[str, Any]:
        return {
            "epoch": self.best_epoch,
            "val_metrics": self.val_metrics,
            "train_config": self.train_config.to_dict(),
            "manifest_fingerprint": self.manifest_fingerprint,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "seconds": self.seconds,
            "tracking": self.tracking,
        }

    def save(self, directory: str | Path) -> Path:
        return save_checkpoint(self.head, directory, self.meta())

    @classmethod
    def load(cls, directory: str | Path) -> TrainedHead:
        head, meta = load_head(directory)
        if not isinstance(head, OrdinalHead) or "epoch" not in meta:
            raise ValueError(f"{directory} is not a silva training checkpoint")
        return cls(
            head,
            int(meta["epoch"]),
            meta["val_metrics"],
            TrainConfig.recorded(meta["train_config"]),
            meta["manifest_fingerprint"],
            int(meta["n_train"]),
            int(meta["n_val"]),
            float(meta.get("seconds", 0.0)),
            dict(meta.get("tracking") or {}),
        )


def resolve_pretrained(path_or_repo_id: str | Path, revision: str | None = None) -> Path:
    """A local folder as it is; otherwise a Hugging Face Hub repo id, fetched with
    `snapshot_download` (which honours HF_HUB_OFFLINE, HF_HOME and the local cache)."""
    p = Path(path_or_repo_id).expanduser()
    if p.is_dir():
        return p
    if p.exists():
        raise NotADirectoryError(f"{p} is a file; a silva head is a folder or a Hub repo id")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    try:
        return Path(
            snapshot_download(
                repo_id=str(path_or_repo_id), revision=revision, allow_patterns=list(RELEASE_FILES)
            )
        )
    except HFValidationError as e:
        raise FileNotFoundError(f"{path_or_repo_id} is neither a local folder nor a valid Hub repo id") from e
