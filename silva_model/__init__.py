"""silva_model: a personal illustration aesthetic scorer over frozen SigLIP2 embeddings.

Plain Python + PyTorch. The pipeline (`silva_pipeline`) builds on this package; nothing here
imports Dagster or MLflow, so scoring needs only what a user already has.
"""

from silva_model.head import HeadConfig, OrdinalHead
from silva_model.scorer import Scorer

__all__ = ["HeadConfig", "OrdinalHead", "Scorer", "__version__"]
__version__ = "0.1.0"
