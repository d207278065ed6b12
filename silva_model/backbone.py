"""SigLIP2 image embedder over `transformers`: the frozen backbone silva's head reads.

Loading goes through `AutoModel` / `AutoImageProcessor`, so a Hub id
(`google/siglip2-so400m-patch14-384`) and a local `save_pretrained` folder take the same path.
Images are decoded and preprocessed in a thread pool a few batches ahead of the model, so
decoding overlaps the GPU; on CUDA the tower runs in bf16 with SDPA attention.

Preprocessing is pinned to transformers' PIL backend. Left to itself, `AutoImageProcessor`
picks the torchvision backend whenever torchvision happens to be installed, and its resize
differs slightly from PIL's: the same image would embed differently in two environments, and
a head trained in one would score with a shift in the other.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F
from tqdm.auto import tqdm

from silva_model.copies import SIGNATURE_DIM, pixel_signature
from silva_model.devices import resolve_device
from silva_model.images import NOT_OF_CONTENT, FastPixels, ImageFailure, load_rgb, to_rgb
from silva_model.provenance import DEFAULT_BACKBONE, BackboneSpec, weights_digest

__all__ = ["DEFAULT_BACKBONE", "EmbedBatch", "SiglipEmbedder", "check_backbone"]
POOLING = "pooler_output"
_PREPROCESS_KEYS = (
    "do_resize",
    "size",
    "resample",
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "image_mean",
    "image_std",
)
PREPROCESS_VARIANTS = ("exact", "draft")
PREPROCESS_BACKEND = "pil"  # the same pixels with or without torchvision installed (see above)
_DTYPES = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "fp32": torch.float32,
    "float32": torch.float32,
}


@dataclass
class EmbedBatch:
    """One batch of results: `embeddings[i]` and `signatures[i]` (the pixel signature that finds
    copies, `silva_model.copies`) belong to `paths[indices[i]]`."""

    indices: list[int]
    embeddings: np.ndarray
    failures: list[ImageFailure] = field(default_factory=list)
    signatures: np.ndarray = field(default_factory=lambda: np.zeros((0, SIGNATURE_DIM), np.float32))


def check_backbone(
    model: str, what: str = "backbone", fix: str = "pass --backbone with a SigLIP folder or model id"
) -> None:
    """Fail at once, in one line, for a backbone (or another checkpoint: `what`) that cannot load:
    neither a local folder nor in the Hugging Face cache nor reachable on the Hub (a label such as
    the demo's `synthetic-demo`, a typo, no network). Loading it anyway retried the Hub for minutes."""
    if Path(model).is_dir():
        return
    from huggingface_hub import HfApi, constants, try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(model)
    except HFValidationError:
        raise ValueError(f"{what} {model!r} is neither a local folder nor a Hub model id") from None
    if isinstance(try_to_load_from_cache(model, "config.json"), str):
        return  # downloaded before: loads offline
    why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else ""
    if not why:
        try:
            HfApi().model_info(model, timeout=10)
            return
        except Exception as e:  # not found, no network, refused: all the same to a person here
            why = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no answer'}"
    hint = " (a demo label: heads trained on the demo's synthetic vectors score only such vectors)"
    raise ValueError(
        f"{what} {model!r} is not a local folder, not in the Hugging Face cache and not reachable on "
        f"the Hub ({why}){hint if model == 'synthetic-demo' else ''}; {fix}"
    )


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' load chatter off while silva loads a backbone: the skipped text weights, a
    progress bar per load, and config notes about token ids of a text tower silva never runs."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _load_vision_tower(model_id: str, dtype: torch.dtype) -> torch.nn.Module:
    """The image tower alone for a SigLIP checkpoint: the text tower's weights are never read
    (half the memory of the whole model for SO400M) and its embeddings are bit-identical to
    `SiglipModel.get_image_features`. Any other architecture loads whole, as before."""
    from transformers import AutoConfig, AutoModel, SiglipVisionModel

    with quiet_transformers():
        kind = getattr(AutoConfig.from_pretrained(model_id), "model_type", None)
        if kind not in ("siglip", "siglip_vision_model"):
            return AutoModel.from_pretrained(model_id, dtype=dtype, attn_implementation="sdpa")
        return SiglipVisionModel.from_pretrained(model_id, dtype=dtype, attn_implementation="sdpa")


class SiglipEmbedder:
    """Batched, L2-normalised float32 image embeddings from a SigLIP / SigLIP2 checkpoint."""

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_BACKBONE,
        device: str = "auto",
        dtype: str | None = None,
        batch_size: int = 32,
        num_workers: int = 4,
        prefetch_batches: int = 2,
        preprocess: str = "exact",
    ) -> None:
        """`preprocess`: "exact" (the checkpoint's image processor's pixels) or "draft" (JPEGs
        decoded at a reduced scale first: faster, other pixels, recorded as another preprocess so
        its embeddings never mix with exact ones)."""
        from transformers import AutoImageProcessor

        if preprocess not in PREPROCESS_VARIANTS:
            raise ValueError(f"unknown preprocess {preprocess!r}; use one of {PREPROCESS_VARIANTS}")
        local = Path(model).expanduser()
        # a folder is recorded by its absolute path, so a head trained on it scores from anywhere
        self.model_id = str(local.resolve()) if local.is_dir() else str(model)
        check_backbone(self.model_id)
        self.device = resolve_device(device)
        if dtype is None:
            self.dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        elif dtype in _DTYPES:
            self.dtype = _DTYPES[dtype]
        else:
            raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}")
        self.batch_size = int(batch_size)
        self.num_workers = max(1, int(num_workers))
        self.prefetch_batches = max(1, int(prefetch_batches))
        with quiet_transformers():
            self.processor = AutoImageProcessor.from_pretrained(self.model_id, backend=PREPROCESS_BACKEND)
        self.fast_pixels = FastPixels.of(self.processor)
        self.draft = self.fast_pixels.size if preprocess == "draft" and self.fast_pixels else None
        self.model = _load_vision_tower(self.model_id, self.dtype)
        self.model.to(self.device).eval()
        self._spec: BackboneSpec | None = None

    @property
    def spec(self) -> BackboneSpec:
        """Where this embedder's vectors come from: model id, weights digest, preprocessing."""
        if self._spec is None:
            folder = Path(self.model_id)
            if not folder.is_dir():
                from huggingface_hub import snapshot_download

                folder = Path(snapshot_download(self.model_id, allow_patterns=["*.safetensors", "*.bin"]))
            cfg = self.processor.to_dict()
            preprocess = {"backend": PREPROCESS_BACKEND, **{k: cfg.get(k) for k in _PREPROCESS_KEYS}}
            if self.draft:
                preprocess["jpeg_draft"] = True
            self._spec = BackboneSpec(
                model=self.model_id,
                weights=weights_digest(folder),
                preprocess=json.dumps(preprocess, sort_keys=True, separators=(",", ":")),
                pooling=POOLING,
            )
        return self._spec

    @property
    def embed_dim(self) -> int:
        cfg = self.model.config
        return int(getattr(cfg, "vision_config", cfg).hidden_size)

    def _pixels(self, image: Image.Image) -> np.ndarray:
        if self.fast_pixels is not None:
            return self.fast_pixels(image)
        return self.processor(images=image, return_tensors="np")["pixel_values"][0]

    def _load_pixels(self, path: str) -> np.ndarray:
        return self._pixels(load_rgb(path, self.draft))

    def _decode(self, path: str) -> tuple[np.ndarray, np.ndarray]:
        """(pixels for the model, pixel signature) of one file, decoded once."""
        image = load_rgb(path, self.draft)
        return self._pixels(image), pixel_signature(image)

    @torch.inference_mode()
    def embed_pixels(self, pixel_values: np.ndarray | torch.Tensor) -> np.ndarray:
        """Preprocessed (B, 3, H, W) pixels -> (B, D) unit-norm float32."""
        px = torch.as_tensor(pixel_values)
        if self.device.type == "cuda":
            px = px.pin_memory()
        px = px.to(self.device, self.dtype, non_blocking=True)
        if hasattr(self.model, "get_image_features"):  # a checkpoint of another architecture
            out = self.model.get_image_features(pixel_values=px)
            emb = out.pooler_output if hasattr(out, "pooler_output") else out  # transformers 5 vs 4
        else:
            emb = self.model(pixel_values=px).pooler_output
        return F.normalize(emb.float(), dim=-1).cpu().numpy()

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.embed_dim), np.float32)
        return np.concatenate(
            [
                self.embed_pixels(
                    np.stack([self._pixels(to_rgb(im)) for im in images[s : s + self.batch_size]])
                )
                for s in range(0, len(images), self.batch_size)
            ]
        )

    def iter_embed_paths(self, paths: Sequence[str | os.PathLike[str]]) -> Iterator[EmbedBatch]:
        """Yield one EmbedBatch per batch of paths, decoding ahead of the model. An unreadable
        image becomes an ImageFailure naming its path; the rest of its batch goes on."""
        paths = [str(p) for p in paths]
        chunks = [
            range(s, min(s + self.batch_size, len(paths))) for s in range(0, len(paths), self.batch_size)
        ]
        with ThreadPoolExecutor(self.num_workers, thread_name_prefix="silva-decode") as pool:
            inflight: deque[tuple[range, list[Future[tuple[np.ndarray, np.ndarray]]]]] = deque()

            def submit(ci: int) -> None:
                inflight.append((chunks[ci], [pool.submit(self._decode, paths[i]) for i in chunks[ci]]))

            for ci in range(min(self.prefetch_batches, len(chunks))):
                submit(ci)
            next_ci = len(inflight)
            while inflight:
                idxs, futures = inflight.popleft()
                if next_ci < len(chunks):
                    submit(next_ci)
                    next_ci += 1
                ok, pixels, signatures, failures = [], [], [], []
                for i, fut in zip(idxs, futures, strict=True):
                    try:
                        px, sig = fut.result()
                        pixels.append(px)
                        signatures.append(sig)
                        ok.append(i)
                    except Exception as e:  # any decode error is the image's, not the run's
                        why = f"{type(e).__name__}: {e}"
                        failures.append(ImageFailure(paths[i], why, not isinstance(e, NOT_OF_CONTENT)))
                emb = (
                    self.embed_pixels(np.stack(pixels))
                    if pixels
                    else np.zeros((0, self.embed_dim), np.float32)
                )
                sigs = np.stack(signatures) if signatures else np.zeros((0, SIGNATURE_DIM), np.float32)
                yield EmbedBatch(ok, emb, failures, sigs)

    def embed_paths(self, paths: Sequence[str | os.PathLike[str]], progress: bool = False) -> EmbedBatch:
        """All paths at once: embeddings for the readable ones, failures for the rest. With
        `progress`, a bar on stderr shows images/s and the time left (hours, on a CPU)."""
        batches = []
        with tqdm(total=len(paths), desc="embed", unit="img", file=sys.stderr, disable=not progress) as bar:
            for b in self.iter_embed_paths(paths):
                batches.append(b)
                bar.update(len(b.indices) + len(b.failures))
        return EmbedBatch(
            [i for b in batches for i in b.indices],
            np.concatenate([b.embeddings for b in batches])
            if batches
            else np.zeros((0, self.embed_dim), np.float32),
            [f for b in batches for f in b.failures],
            np.concatenate([b.signatures for b in batches])
            if batches
            else np.zeros((0, SIGNATURE_DIM), np.float32),
        )
