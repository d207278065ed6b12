"""What to rate next: re-rates every fourth place while they last, new images by the rule, and
why each was picked, with the model's numbers and without them."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pyarrow as pa

from silva_app.queue import QUEUE_COLUMNS
from silva_pipeline.queue_choice import WHY_RERATE, interleave, new_rows


def _rows(kind: str, n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "image_sha256": [f"{kind}{i}" for i in range(n)],
            "path": [None] * n,
            "post_id": list(range(n)),
            "kind": [kind] * n,
            "reason": ["r"] * n,
            "expected_rating": [3.0] * n,
            "given_rating": [None] * n,
            "rating_sd": [0.5] * n,
            "why": [WHY_RERATE] * n,
        },
        schema_overrides={"given_rating": pl.Int8, "expected_rating": pl.Float32, "rating_sd": pl.Float32},
    )


def test_every_fourth_image_is_a_re_rate_while_they_last():
    queue = interleave(_rows("rerate", 2), _rows("new", 9))
    assert queue.columns == list(QUEUE_COLUMNS)
    assert queue["kind"].to_list() == ["new"] * 3 + ["rerate"] + ["new"] * 3 + ["rerate"] + ["new"] * 3


def test_new_images_say_why_without_a_score_and_never_repeat_a_rated_one():
    rng = np.random.default_rng(0)
    n = 40
    probs = rng.dirichlet(np.ones(5), n).astype(np.float32)
    scores = pa.table(
        {
            "image_sha256": [f"{i:064x}" for i in range(n)],
            "path": [f"/lib/{i}.png" for i in range(n)],
            "post_id": pa.array([None] * n, pa.int64()),
            **{f"p{k + 1}": probs[:, k] for k in range(5)},
            "expected_rating": (probs @ np.arange(1, 6)).astype(np.float32),
            "rated": [i < 10 for i in range(n)],
        }
    )
    embeddings = pa.table(
        {
            "image_sha256": scores.column("image_sha256"),
            "embedding": pa.FixedSizeListArray.from_arrays(
                pa.array(rng.standard_normal(n * 8, np.float32)), 8
            ),
        }
    )
    from silva_model.active import OutOfFold
    from silva_pipeline.queue_choice import QueueSettings

    settings = QueueSettings(size=12, rerate_share=0.25, rule="entropy-diverse", rerate_margin=1.5, seed=0)
    new = new_rows(scores, [embeddings], OutOfFold(np.zeros(0), [], np.zeros(0), np.zeros(0)), 12, settings)
    assert new.height == 12 and not set(new["image_sha256"]) & set(scores["image_sha256"][:10].to_pylist())
    assert all(re.search(r"\d", r) for r in new["reason"])  # the model's view, with its numbers
    assert not any(re.search(r"\d", w) for w in new["why"])  # a blind page's, without any
