"""The pairwise judgements a head trains on, from every place a person gives them: the ratings
source's pairs file, the comparisons the source itself records (pictoria's annotations) and the
rating page's pair and rank modes (silva's ratings log), resolved against the manifest.

A compared image that no rating has trains through an embedding made already: pictoria's stored
vector, or silva's embedding cache (the library chain embeds every library image). It is left out
when that embedding came from another backbone than the manifest's, or is a copy of a val or test
image (`clear_of`): such an image carries comparisons, never a rating.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa

from silva_app.ratings_log import RatingsLog
from silva_model.manifest import ManifestArrays, copy_rule_of
from silva_model.pairs import Pairs, clear_of, manifest_keys, read_pairs
from silva_model.provenance import BackboneSpec
from silva_pipeline.embedding_cache import EmbeddingCache
from silva_pipeline.resources import RatingsSource
from silva_pipeline.sources import BadRow, Judgements


@dataclass
class JudgedPairs:
    pairs: Pairs | None = None
    bad: list[BadRow] = field(default_factory=list)  # judgements left out, and why
    counts: dict[str, int] = field(default_factory=dict)  # what was read, used and not used

    def add(self, pairs: Pairs | None, n_rows: int) -> None:
        if pairs is not None and len(pairs):
            self.pairs = pairs if self.pairs is None else self.pairs.plus(pairs, n_rows)


def judged_pairs(
    manifest: pa.Table, arrays: ManifestArrays, source: RatingsSource, cache: EmbeddingCache, log: RatingsLog
) -> JudgedPairs:
    """Every judgement there is, as `Pairs` over the manifest (a PairsError for a bad pairs file,
    which the person wrote for silva; bad annotations and comparisons are listed, not fatal)."""
    keys = manifest_keys(manifest)
    rows_by_sha = {s: i for i, s in enumerate(keys["image_sha256"].to_pylist())}
    n = len(arrays)
    out = JudgedPairs()
    pairs_file = source.pairs_path()
    if pairs_file:
        out.add(read_pairs(pairs_file, keys), n)
        out.counts["pairs_file"] = len(out.pairs) if out.pairs is not None else 0
    judged = source.judgements()
    if judged is not None:
        out.counts.update(judged.counts)
        out.bad += judged.bad
        if "post_id" in keys:
            rows_by_post = {int(p): i for i, p in enumerate(keys["post_id"].to_pylist())}
        else:  # some rows have no post id (rated in silva from a path): match by content
            rows_by_post = {p: rows_by_sha[s] for p, s in judged.shas.items() if s in rows_by_sha}
        pictoria = BackboneSpec(model=source.precomputed_backbone, pooling="pooler_output")
        out.add(_resolved(judged, rows_by_post, manifest, arrays, pictoria, out, "pictoria"), n)
    compared = log.pairs()
    if compared.num_rows:
        frame = pl.from_arrow(compared.select(["a", "b", "winner", "weight", "id"]))
        frame = frame.with_columns(pl.format("ratings log comparison {}", "id").alias("ref")).drop("id")
        named = (set(frame["a"].to_list()) | set(frame["b"].to_list())) - set(rows_by_sha)
        mine = Judgements(frame, vectors=cache.lookup(named))
        out.counts["log_pairs"] = frame.height
        out.add(_resolved(mine, rows_by_sha, manifest, arrays, cache.spec(), out, "log"), n)
    out.counts["pairs_used"] = len(out.pairs) if out.pairs is not None else 0
    return out


def _resolved(
    judged: Judgements,
    rows: dict,
    manifest: pa.Table,
    arrays: ManifestArrays,
    extras_backbone: BackboneSpec,
    out: JudgedPairs,
    where: str,
) -> Pairs | None:
    pairs, bad = judged.to_pairs(rows, len(arrays), int(arrays.embeddings.shape[1]))
    out.bad += bad
    if pairs is None or pairs.extra is None:
        return pairs
    if extras_backbone.differences(arrays.backbone()):
        keep = np.zeros(len(pairs.extra), dtype=bool)
        out.counts[f"{where}_unrated_images_other_backbone"] = len(keep)
    else:
        held_out = arrays.embeddings[~arrays.mask("train")]
        keep = clear_of(pairs.extra, held_out, copy_rule_of(manifest).cosine)
        out.counts[f"{where}_unrated_images_copies_of_held_out"] = int((~keep).sum())
    out.counts[f"{where}_unrated_images_compared"] = int(keep.sum())
    return pairs.keep_extras(keep, len(arrays))
