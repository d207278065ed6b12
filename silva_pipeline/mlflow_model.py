"""The released head as an MLflow pyfunc model, so the registry can serve it."""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np


class SilvaHeadModel(mlflow.pyfunc.PythonModel):
    """Input: (N, D) embeddings (an array, or a DataFrame of one list column). Output: scores in [0, 1]."""

    def load_context(self, context) -> None:
        from silva_model import Scorer

        self.scorer = Scorer.from_pretrained(context.artifacts["release"], device="cpu")

    def predict(self, context, model_input, params=None):
        x = model_input
        if hasattr(x, "iloc"):
            x = np.stack(x.iloc[:, 0].to_numpy()) if x.shape[1] == 1 else x.to_numpy()
        return self.scorer.score_embeddings(np.asarray(x, dtype=np.float32))
