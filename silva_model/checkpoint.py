"""Checkpoints and releases as safetensors + JSON. Nothing is ever unpickled.

Two layouts, both loadable by `load_head`:
- training checkpoint: `best.safetensors` + `best.json` (config, metrics, epoch, manifest fingerprint);
- release (Hugging Face convention): `config.json` + `model.safetensors` + model card `README.md`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from silva_model.atomic import atomic_path, atomic_write_text
from silva_model.head import HeadConfig, OrdinalHead

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
BEST_WEIGHTS = "best.safetensors"
BEST_META = "best.json"
RELEASE_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)
FORMAT = "silva-ordinal-head"


def _write_weights(head: OrdinalHead, path: Path) -> None:
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in head.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "silva_format": FORMAT})


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"


def save_checkpoint(head: OrdinalHead, directory: str | Path, meta: dict[str, Any]) -> Path:
    """Write best.safetensors then best.json, each atomically (the JSON last, so its presence
    means the weights beside it are complete)."""
    directory = Path(directory)
    _write_weights(head, directory / BEST_WEIGHTS)
    atomic_write_text(directory / BEST_META, _dumps({"head_config": head.config.to_dict(), **meta}))
    return directory


def _model_card(config: dict[str, Any]) -> str:
    metrics = config.get("metrics") or {}
    rows = []
    for split, m in metrics.items():
        if isinstance(m, dict):
            rows.append(
                f"| {split} | {m.get('n', '')} | {m.get('spearman', float('nan')):.3f} | "
                f"{m.get('pearson', float('nan')):.3f} | {m.get('qwk', float('nan')):.3f} | "
                f"{m.get('mae', float('nan')):.3f} | {m.get('rmse', float('nan')):.3f} | "
                f"{m.get('top5_precision', float('nan')):.3f} |"
            )
    table = (
        "| split | n | Spearman | Pearson | QWK | MAE | RMSE | Top-5 % precision |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
        if rows
        else "No evaluation was recorded for this head."
    )
    hc = config["head_config"]
    data = config.get("data") or {}
    data_lines = "\n".join(f"- {k}: {v}" for k, v in sorted(data.items())) or "- not recorded"
    return f"""---
library_name: silva
base_model: {hc["backbone"]}
tags:
- silva
- aesthetic-scoring
- ordinal-regression
---

# silva personal aesthetic head

An ordinal head that scores illustrations by **one person's** taste, learned from their own
1-5 ratings. It is not a universal quality model. Input: the L2-normalised
{hc["embed_dim"]}-d image embedding of `{hc["backbone"]}`. Output: a score in [0, 1] (the
fraction of the 4 quality bars cleared) and an expected rating 1 + 4 * score.

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

{table}

## Training data

{data_lines}

## Details

- MLP {hc["embed_dim"]} -> {" -> ".join(str(h) for h in hc["hidden"])} -> 1 (GELU, dropout {hc["dropout"]}),
  {hc["num_classes"] - 1} monotone thresholds (first + cumulative softplus gaps).
- Weights: `{WEIGHTS_NAME}` (safetensors, fp32); configuration: `{CONFIG_NAME}`.
- Released: {config.get("released_at", "")}
"""


def save_pretrained(
    head: OrdinalHead,
    directory: str | Path,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a release folder. The folder is assembled beside the target and swapped in, so a
    reader never sees a half-written release."""
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
        _write_weights(head, tmp / WEIGHTS_NAME)
        (tmp / CONFIG_NAME).write_text(_dumps(config), encoding="utf-8")
        (tmp / CARD_NAME).write_text(_model_card(config), encoding="utf-8")
        old = directory.with_name(f".{directory.name}.old")
        if directory.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def load_head(
    directory: str | Path, device: str | torch.device = "cpu"
) -> tuple[OrdinalHead, dict[str, Any]]:
    """Load a release folder or a training checkpoint folder."""
    directory = Path(directory)
    if (directory / CONFIG_NAME).is_file() and (directory / WEIGHTS_NAME).is_file():
        meta_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    elif (directory / BEST_META).is_file() and (directory / BEST_WEIGHTS).is_file():
        meta_path, weights_path = directory / BEST_META, directory / BEST_WEIGHTS
    else:
        raise FileNotFoundError(
            f"{directory} holds no silva head: expected {CONFIG_NAME} + {WEIGHTS_NAME} "
            f"(a release) or {BEST_META} + {BEST_WEIGHTS} (a training checkpoint)"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        config = HeadConfig.from_dict(meta["head_config"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{meta_path} is not a silva head configuration: {e}") from e
    head = OrdinalHead(config)
    try:
        state = load_file(str(weights_path), device="cpu")
        head.load_state_dict(state, strict=True)
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"{weights_path} could not be loaded into a head of {config}: {e}") from e
    head.to(device).eval()
    return head, meta


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
