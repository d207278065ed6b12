"""The released head as an MLflow pyfunc, logged as code ("models from code"): MLflow stores this
file and runs it when the model loads, so nothing is pickled. It imports only `silva_model` (which
the logged model carries) and MLflow, as `mlflow models serve` has them."""

import mlflow.pyfunc
import numpy as np
from mlflow.models import set_model


class SilvaHeadModel(mlflow.pyfunc.PythonModel):
    """Input: (N, D) float32 embeddings. Output: (N,) scores in [0, 1]."""

    def load_context(self, context) -> None:
        from silva_model import Scorer

        self.scorer = Scorer.from_pretrained(context.artifacts["release"], device="cpu")

    # The ndarray hint tells MLflow not to infer a schema from the hint: the explicit tensor
    # signature is the contract (and a DataFrame of one list column still works).
    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        x = model_input
        if hasattr(x, "iloc"):
            x = np.stack(x.iloc[:, 0].to_numpy()) if x.shape[1] == 1 else x.to_numpy()
        return self.scorer.score_embeddings(np.asarray(x, dtype=np.float32))


set_model(SilvaHeadModel())
