"""One module per stage: ratings -> embeddings -> manifest -> head -> out_of_fold -> evaluation ->
release, and the library beside it: library -> library_embeddings (per shard) -> library_scores ->
rating_queue."""

from silva_pipeline.assets.evaluation import evaluation
from silva_pipeline.assets.head import head
from silva_pipeline.assets.hub_release import hub_release
from silva_pipeline.assets.image_embeddings import image_embeddings
from silva_pipeline.assets.library import library, library_embeddings, library_scores, library_shards
from silva_pipeline.assets.manifest import manifest, manifest_checks
from silva_pipeline.assets.out_of_fold import out_of_fold
from silva_pipeline.assets.rating_queue import rating_queue
from silva_pipeline.assets.raw_ratings import raw_ratings
from silva_pipeline.release_gate import beats_last_release

# The model's chain, from the person's ratings to a release.
MODEL_ASSETS = [
    "raw_ratings",
    "image_embeddings",
    "manifest",
    "head",
    "out_of_fold",
    "evaluation",
    "hub_release",
]
ASSETS = [
    raw_ratings,
    image_embeddings,
    manifest,
    head,
    out_of_fold,
    evaluation,
    hub_release,
    library,
    library_embeddings,
    library_scores,
    rating_queue,
]
ASSET_CHECKS = [manifest_checks, beats_last_release]

__all__ = ["ASSETS", "ASSET_CHECKS", "MODEL_ASSETS", "library_shards"]
