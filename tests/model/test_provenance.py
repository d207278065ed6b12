"""Backbone provenance: compatible specs merge and the head records them."""

from __future__ import annotations

import numpy as np
from helpers import (
    SMALL_TRAIN,
)

from silva_model.manifest import build_table
from silva_model.provenance import BackboneSpec
from silva_model.splits import assign_split_codes, content_hash
from silva_model.train import train
from silva_model.train_config import TrainConfig


def test_compatible_backbone_specs_merge_and_the_head_records_them(taste_data):
    """Vectors from pictoria (weights unknown) and from silva's embedder (weights known) of the same
    model train together; the head keeps what is known."""
    n = 600
    pictoria = BackboneSpec(model="google/siglip2-so400m-patch14-384", pooling="pooler_output")
    silva = BackboneSpec(
        model="google/siglip2-so400m-patch14-384", weights="ab" * 32, pooling="pooler_output"
    )
    x, y = taste_data.embeddings[:n], taste_data.ratings[:n]
    table = build_table(
        x, y, assign_split_codes(content_hash(x)), None, ((np.arange(n) % 2), [pictoria, silva])
    )
    res = train(table, TrainConfig(**SMALL_TRAIN), progress=False)
    assert res.head.config.backbone == silva
