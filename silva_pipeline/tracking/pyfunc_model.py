"""The released head as an MLflow pyfunc model, so the registry can serve it (its code:
`pyfunc_head.py`).

The model carries its own copy of `silva_model` (`code_paths`) and pins what that code
imports: silva itself is not on PyPI, so `mlflow models serve` could not install it by name.
"""

from importlib.metadata import version
from pathlib import Path

import numpy as np
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec


def model_code() -> str:
    """The pyfunc's code file (`pyfunc_head.py`), logged as code: nothing is pickled."""
    return str(Path(__file__).with_name("pyfunc_head.py"))


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
