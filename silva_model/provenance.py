"""Where an embedding came from: the backbone's id, a digest of its weights, its preprocessing
and pooling. A head is only meaningful on embeddings from the backbone it was trained on, so this
record travels with every embedding row into the manifest and from there into the head's config.

A field left empty means "not known" (vectors precomputed by another tool, or an old manifest).
Two specs are compatible when nothing known about them differs: the weights digest decides when
both have one (the same weights under a Hub id and a local folder are the same backbone),
otherwise the model id does.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

DEFAULT_BACKBONE = "google/siglip2-so400m-patch14-384"


class BackboneMismatchError(ValueError):
    """Embeddings (or a head and an embedder) come from different backbones."""


@dataclass(frozen=True)
class BackboneSpec:
    model: str = ""  # Hub id, local folder, or a label such as "synthetic-demo"; "" = unknown
    weights: str = ""  # sha256 digest of the weight files; "" = unknown
    preprocess: str = ""  # canonical description of the image preprocessing; "" = unknown
    pooling: str = ""  # which output is the embedding, e.g. "pooler_output"; "" = unknown

    @classmethod
    def from_value(cls, value: Any) -> BackboneSpec:
        """A spec from its dict, its JSON, or a bare model id (what older heads stored)."""
        if isinstance(value, BackboneSpec):
            return value
        if isinstance(value, str):
            if value.startswith("{"):
                value = json.loads(value)
            else:
                return cls(model=value)
        if not isinstance(value, dict):
            raise ValueError(f"not a backbone description: {value!r}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: str(v) for k, v in value.items() if k in known})

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def to_json(self) -> str:
        """Canonical JSON: equal specs give equal strings (used as a dictionary value per row)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def known(self) -> bool:
        return bool(self.model or self.weights)

    def differences(self, other: BackboneSpec) -> list[str]:
        """What is known on both sides and differs; empty when the two are compatible."""
        diffs = []
        if self.weights and other.weights:
            if self.weights != other.weights:
                diffs.append(f"weights {self.weights[:12]}… vs {other.weights[:12]}…")
        elif self.model and other.model and self.model != other.model:
            diffs.append(f"model {self.model!r} vs {other.model!r}")
        for name in ("preprocess", "pooling"):
            a, b = getattr(self, name), getattr(other, name)
            if a and b and a != b:
                diffs.append(f"{name} {a!r} vs {b!r}")
        return diffs

    def merge(self, other: BackboneSpec) -> BackboneSpec:
        """The union of what two compatible specs know."""
        return BackboneSpec(
            **{f.name: getattr(self, f.name) or getattr(other, f.name) for f in fields(BackboneSpec)}
        )

    def describe(self) -> str:
        parts = [self.model or "unknown model"]
        if self.weights:
            parts.append(f"weights {self.weights[:12]}…")
        return ", ".join(parts)


def common_backbone(specs: list[BackboneSpec], where: list[str] | None = None) -> BackboneSpec:
    """The one backbone a set of embeddings shares, or a BackboneMismatchError naming both sides.
    `where[i]` says where the rows of `specs[i]` are, for the message."""
    if not specs:
        return BackboneSpec()
    merged = specs[0]
    for i, spec in enumerate(specs[1:], 1):
        diffs = merged.differences(spec)
        if diffs:
            here = f" ({where[0]} vs {where[i]})" if where else ""
            raise BackboneMismatchError(
                f"embeddings come from different backbones{here}: {'; '.join(diffs)}. "
                "Train on embeddings from one backbone (re-embed the others)."
            )
        merged = merged.merge(spec)
    return merged


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


_HEX64 = re.compile(r"[0-9a-f]{64}")


def weights_digest(folder: str | os.PathLike[str]) -> str:
    """sha256 over a checkpoint folder's weight files. In the Hugging Face cache a weight file
    links to a blob named by its own sha256, which is used as it is instead of re-reading GBs."""
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        return ""
    h = hashlib.sha256()
    for f in files:
        target = f.resolve().name
        h.update(f"{f.name}\0{target if _HEX64.fullmatch(target) else sha256_file(f)}\n".encode())
    return h.hexdigest()
