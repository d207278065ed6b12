"""silva_model: a personal illustration aesthetic scorer over frozen SigLIP2 embeddings.

Plain Python + PyTorch. The pipeline (`silva_pipeline`) builds on this package; nothing here
imports Dagster or MLflow, so scoring needs only what a user already has. The names below load
on first use, so `silva --help` and light modules never pay for importing torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from silva_model.head import HeadConfig, OrdinalHead
    from silva_model.scorer import Scorer

__all__ = ["HeadConfig", "OrdinalHead", "Scorer", "__version__"]
__version__ = "0.1.0"
_HOMES = {"HeadConfig": "silva_model.head", "OrdinalHead": "silva_model.head", "Scorer": "silva_model.scorer"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'silva_model' has no attribute {name!r}")
