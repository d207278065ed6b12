"""The SigLIP2 embedder as a resource: one GPU leased per process, the backbone as set up."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import dagster as dg
from pydantic import Field, PrivateAttr

from silva_app.setup import Setup
from silva_model.backbone import SiglipEmbedder
from silva_model.devices import lease_gpu
from silva_pipeline.resources.workspace import InWorkspace, fail_on


class SiglipEmbedderResource(InWorkspace):
    """The SigLIP2 image tower on the GPU (or CPU). The model loads on first use, so runs that
    only reuse cached or precomputed embeddings never pay for it."""

    SETTING: ClassVar[dict[str, str]] = {"model": "backbone"}
    model: str = Field(
        default="", description="Hub model id or local save_pretrained folder; empty: as set up"
    )
    device: Literal["auto", "cuda", "cpu"] = "auto"
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        default="auto", description="auto: bf16 on CUDA, fp32 on CPU"
    )
    batch_size: int = 32
    decode_workers: int = Field(default=8, description="threads decoding images ahead of the model")
    flush_every: int = Field(default=512, description="images per cache shard (the resume granularity)")
    preprocess: Literal["exact", "draft"] = Field(
        default="exact",
        description="draft: decode JPEGs at a reduced scale first (faster, other pixels; a cache and "
        "provenance of its own, so it never mixes with exact embeddings)",
    )

    _embedder: SiglipEmbedder | None = PrivateAttr(default=None)
    _lease: object = PrivateAttr(default=None)

    def _device(self) -> str:
        """`auto` on a host with several GPUs: one GPU per worker process, leased for the life of
        the process, so workers started side by side (one per `gpu` pool slot) never share one."""
        import torch

        if self.device != "auto" or not torch.cuda.is_available() or torch.cuda.device_count() < 2:
            return self.device
        index, self._lease = lease_gpu(self.workspace.home().gpu_leases, torch.cuda.device_count())
        return f"cuda:{index}"

    def backbone(self) -> str:
        return str(self.setting("model")[0])

    def problems(self, setup: Setup | None = None) -> list[str]:
        """A backbone named by a path must be a folder (a name is a Hub id, checked when it loads)."""
        model, where = self.setting("model", setup)
        path = Path(str(model)).expanduser()
        if path.is_absolute() and not path.is_dir():
            return [f"{where}: the backbone folder {path} does not exist"]
        return []

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        fail_on(self.problems())

    def cache_key(self) -> str:
        """What the embedding cache is keyed by: the backbone, and the preprocessing if not exact."""
        model = self.backbone()
        return model if self.preprocess == "exact" else f"{model}#{self.preprocess}"

    def get(self) -> SiglipEmbedder:
        if self._embedder is None:
            self._embedder = SiglipEmbedder(
                self.backbone(),
                device=self._device(),
                dtype=None if self.dtype == "auto" else self.dtype,
                batch_size=self.batch_size,
                num_workers=self.decode_workers,
                preprocess=self.preprocess,
            )
        return self._embedder
