"""The pairwise judgements a head trains on: the ratings source's pairs file and the comparisons
the source itself records (pictoria's annotations), resolved against the manifest. A compared
image that no rating has trains through pictoria's vector, unless that vector came from another
backbone than the manifest's or is a copy of a val or test image."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from silva_model.manifest import ManifestArrays, copy_rule_of
from silva_model.pairs import Pairs, clear_of, manifest_keys, read_pairs
from silva_model.provenance import BackboneSpec
from silva_pipeline.resources import RatingsSource
from silva_pipeline.sources import BadRow


@dataclass
class JudgedPairs:
    pairs: Pairs | None
    bad: list[BadRow] = field(default_factory=list)  # judgements left out, and why
    counts: dict[str, int] = field(default_factory=dict)  # what was read, used and not used


def judged_pairs(manifest: pa.Table, arrays: ManifestArrays, source: RatingsSource) -> JudgedPairs:
    """Every judgement the source has, as `Pairs` over the manifest (a PairsError for a bad pairs
    file, which the person wrote for silva; bad annotations are listed, not fatal)."""
    keys = manifest_keys(manifest)
    pairs_file = source.pairs_path()
    pairs = read_pairs(pairs_file, keys) if pairs_file else None
    out = JudgedPairs(pairs, counts={"pairs_file": len(pairs) if pairs is not None else 0})
    judged = source.judgements()
    if judged is None:
        return out
    out.counts.update(judged.counts)
    out.bad = list(judged.bad)
    if "post_id" in keys:
        rows_by_post = {int(p): i for i, p in enumerate(keys["post_id"].to_pylist())}
    else:  # some rows have no post id (rated in silva from a path): match by content
        rows_by_sha = {s: i for i, s in enumerate(keys["image_sha256"].to_pylist())}
        rows_by_post = {p: rows_by_sha[s] for p, s in judged.shas.items() if s in rows_by_sha}
    theirs, bad = judged.to_pairs(rows_by_post, len(arrays), int(arrays.embeddings.shape[1]))
    out.bad += bad
    if theirs is not None and theirs.extra is not None:
        theirs = _trainable_extras(theirs, manifest, arrays, source, out.counts)
    if theirs is not None and len(theirs):
        out.pairs = theirs if pairs is None else pairs.plus(theirs)
    out.counts["pairs_used"] = len(out.pairs) if out.pairs is not None else 0
    return out


def _trainable_extras(
    pairs: Pairs, manifest: pa.Table, arrays: ManifestArrays, source: RatingsSource, counts: dict[str, int]
) -> Pairs:
    assert pairs.extra is not None
    theirs = BackboneSpec(model=source.precomputed_backbone, pooling="pooler_output")
    if theirs.differences(arrays.backbone()):
        keep = np.zeros(len(pairs.extra), dtype=bool)
        counts["unrated_images_other_backbone"] = len(keep)
    else:
        held_out = arrays.embeddings[~arrays.mask("train")]
        keep = clear_of(pairs.extra, held_out, copy_rule_of(manifest).cosine)
        counts["unrated_images_copies_of_held_out"] = int((~keep).sum())
    counts["unrated_images_compared"] = int(keep.sum())
    return pairs.keep_extras(keep, len(arrays))
