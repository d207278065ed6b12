"""The released head as an MLflow pyfunc model, so the registry can serve it.

The model carries its own copy of `silva_model` (`code_paths`) and pins what that code
imports: silva itself is not on PyPI, so `mlflow models serve` could not install it by name.
"""

from importlib.metadata import version
from pathlib import Path

import mlflow.pyfunc
import numpy as np
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec


class SilvaHeadModel(mlflow.pyfunc.PythonModel):
    """Input: (N, D) float32 embeddings. Output: (N,) scores in [0, 1]."""

    def load_context(self, context) -> None:
        from silva_model import Scorer

        self.scorer = Scorer.from_pretrained(context.artifacts["release"], device="cpu")

    # The ndarray hint tells MLflow not to infer a schema from the hint: the explicit tensor
    # signature below is the contract (and a DataFrame of one list column still works).
    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        x = model_input
        if hasattr(x, "iloc"):
            x = np.stack(x.iloc[:, 0].to_numpy()) if x.shape[1] == 1 else x.to_numpy()
        return self.scorer.score_embeddings(np.asarray(x, dtype=np.float32))


def signature(embed_dim: int) -> ModelSignature:
    """(N, embed_dim) float32 in, (N,) float32 out: MLflow checks the input shape and dtype."""
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, embed_dim))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1,))]),
    )


# What `silva_model` imports to load a release and score embeddings (distribution names).
SCORING_DEPENDENCIES = (
    "torch",
    "numpy",
    "safetensors",
    "huggingface_hub",
    "pillow",
    "pyarrow",
    "scipy",
    "pyyaml",
    "tqdm",
)


def pip_requirements() -> list[str]:
    """The scoring dependencies pinned to the versions here (without local tags like +cu132)."""
    return [f"{name}=={version(name).split('+')[0]}" for name in SCORING_DEPENDENCIES]


def code_paths() -> list[str]:
    import silva_model

    return [str(Path(silva_model.__file__).parent)]
