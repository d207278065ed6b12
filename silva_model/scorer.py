"""Score illustrations with a released head: from embeddings, or from image files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from silva_model.backbone import EmbedBatch, SiglipEmbedder
from silva_model.devices import resolve_device
from silva_model.head import OrdinalHead, expected_rating, predict
from silva_model.interop import SilvaScorerHead
from silva_model.provenance import BackboneMismatchError
from silva_model.release import load_head, resolve_pretrained, save_pretrained


class Scorer:
    """A trained head ready to score. Scores are in [0, 1]; `expected_rating` maps them to 1..5."""

    def __init__(
        self, head: OrdinalHead | SilvaScorerHead, meta: dict[str, Any] | None = None, device: str = "auto"
    ) -> None:
        self.device = resolve_device(device)
        self.head = head.to(self.device).eval()
        self.meta = meta or {}

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | os.PathLike[str],
        revision: str | None = None,
        device: str = "auto",
        verify: bool = True,
    ) -> Scorer:
        """A local folder (release or training checkpoint) or a Hugging Face Hub repo id; its files
        are checked against the digests recorded at release (`verify=False` skips that)."""
        head, meta = load_head(resolve_pretrained(path_or_repo_id, revision), verify=verify)
        return cls(head, meta, device)

    def save_pretrained(self, directory: str | os.PathLike[str], **kwargs: Any) -> Path:
        return save_pretrained(self.head, directory, **kwargs)

    @property
    def config(self):
        return self.head.config

    def predict(self, embeddings: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings -> (score in [0, 1], predicted class 1..5); rejects wrong shapes and NaN."""
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.config.embed_dim:
            raise ValueError(f"embeddings must have shape (N, {self.config.embed_dim}), got {x.shape}")
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        if bad.size:
            raise ValueError(f"embedding rows {bad[:5].tolist()} contain NaN or inf")
        return predict(self.head, torch.from_numpy(np.ascontiguousarray(x)))

    def score_embeddings(self, embeddings: np.ndarray | torch.Tensor) -> np.ndarray:
        return self.predict(embeddings)[0]

    @staticmethod
    def expected_rating(scores: np.ndarray) -> np.ndarray:
        return expected_rating(np.asarray(scores))

    def embedder(self, backbone: str | None = None, **kwargs: Any) -> SiglipEmbedder:
        """The backbone this head was trained on, unless another is named, with the preprocessing
        it was trained on (exact, or the JPEG draft variant)."""
        model = backbone or self.config.backbone.model
        if not model:
            raise ValueError("this head does not record its backbone: name one (--backbone)")
        if '"jpeg_draft":true' in self.config.backbone.preprocess:
            kwargs.setdefault("preprocess", "draft")
        return SiglipEmbedder(model, device=str(self.device), **kwargs)

    def check_embedder(self, embedder: SiglipEmbedder) -> None:
        """Refuse an embedder whose vectors this head was not trained on: the scores would be
        numbers without meaning."""
        if embedder.embed_dim != self.config.embed_dim:
            raise BackboneMismatchError(
                f"backbone {embedder.model_id} gives {embedder.embed_dim}-d embeddings but this head "
                f"expects {self.config.embed_dim}-d ({self.config.backbone.describe()})"
            )
        diffs = self.config.backbone.differences(embedder.spec)
        if diffs:
            raise BackboneMismatchError(
                f"this head was trained on embeddings of {self.config.backbone.describe()}, but the "
                f"embedder is {embedder.spec.describe()} ({'; '.join(diffs)}); "
                "pass --allow-backbone-mismatch to score anyway"
            )

    def score_paths(
        self,
        paths: Sequence[str | os.PathLike[str]],
        embedder: SiglipEmbedder,
        allow_backbone_mismatch: bool = False,
        progress: bool = False,
    ) -> tuple[EmbedBatch, np.ndarray]:
        """Embed and score image files; returns the embedding batch (indices, failures) and scores."""
        if not allow_backbone_mismatch:
            self.check_embedder(embedder)
        batch = embedder.embed_paths(paths, progress=progress)
        return batch, self.score_embeddings(batch.embeddings)
