"""pictoria's annotation tables: absolute judgements as ratings, pairs and rankings as pairs."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import TINY_DIM
from pipeline_support import add_unrated_posts, annotate, make_pictoria_db

from silva_model.parquet import embeddings_from_arrow
from silva_pipeline.sources.pictoria import read_pictoria, read_pictoria_judgements

# make_pictoria_db(n=40): posts 1..40 rated 1 + (7i + 5) % 5 (post 1: 1, post 2: 3, post 3: 5),
# post 41 unrated with a file, post 42 a duplicate of post 1; vectors for posts 1..10
UNRATED_WITH_VECTORS = [100, 101, 102, 103, 104]
NO_VECTOR = 105


def annotated_db(tmp_path) -> tuple:
    """Every annotation table, with edits, skips, ties, duplicates, bad rows and a ranking that
    names a post without a vector."""
    db, vectors = make_pictoria_db(tmp_path, n=40, n_with_vectors=10, annotations=True)
    rng = np.random.default_rng(1)
    add_unrated_posts(db, UNRATED_WITH_VECTORS, rng.standard_normal((5, TINY_DIM)).astype(np.float32))
    add_unrated_posts(db, [NO_VECTOR], None)
    absolute = [
        (41, "overall", 5, 4, None),  # an unscored post becomes rated
        (2, "overall", 5, 5, "2026-05-01"),  # over posts.score 3, corrected once
        (3, "overall", 5, 4, None),
        (3, "overall", 3, 1, None),  # the latest for post 3 is 3-point: not a rating
        (42, "overall", 5, 4, None),  # the duplicate stands for post 1
        (4, "color", 5, 1, None),  # another dimension
        (999, "overall", 5, 3, None),  # no such post
        (5, "overall", 5, 9, None),  # off the scale
    ]
    for i, (post, dim, scale, value, edited) in enumerate(absolute):
        annotate(
            db,
            "absolute_annotations",
            post_id=post,
            dimension=dim,
            scale=scale,
            value=value,
            edited_at=edited,
            created_at=f"2026-01-01T00:00:{i:02d}",
        )
    pairwise = [
        (1, 2, "a", None),
        (3, 4, "b", "2026-05-02"),
        (5, 6, "tie", None),
        (7, 8, "skip", None),
        (100, 101, "a", None),  # neither rated: pictoria's vectors
        (102, 999, "a", None),  # no such post
        (42, 1, "a", None),  # an image against its own duplicate
        (103, 41, "b", None),  # 41 is rated by its annotation
        (104, NO_VECTOR, "a", None),  # 105 can be judged by nothing
    ]
    for a, b, winner, edited in pairwise:
        annotate(
            db,
            "pairwise_annotations",
            post_a=a,
            post_b=b,
            dimension="overall",
            winner=winner,
            edited_at=edited,
        )
    annotate(db, "pairwise_annotations", post_a=1, post_b=3, dimension="color", winner="a")
    rankings = [
        ([1, 2, 3, 100, NO_VECTOR], [100, 1, NO_VECTOR, 2, 3], "2026-05-03"),  # 10 pairs, 4 name 105
        ([4, 5, 6], [], None),  # a skip
        ([1, 2], [1, 7], None),  # names a post not shown
    ]
    for shown, ranking, edited in rankings:
        annotate(
            db,
            "listwise_annotations",
            post_ids=json.dumps(shown),
            ranking=json.dumps(ranking),
            dimension="overall",
            edited_at=edited,
        )
    for flag in ("love", "hate"):
        annotate(db, "content_flag_events", post_id=9, flag=flag)
    return db, vectors  # posts 1..10's vectors, as pictoria stored them


def test_absolute_annotations_rate_over_under_or_beside_posts_score(tmp_path):
    db, _ = annotated_db(tmp_path)
    before = db.read_bytes()

    def ratings(**kw):
        load = read_pictoria(db, tmp_path / "library", use_vectors=False, **kw)
        return dict(zip(load.rows["post_id"].to_list(), load.rows["rating"].to_list(), strict=True)), load

    over, load = ratings()
    assert len(over) == 41 and (over[41], over[2], over[1], over[3]) == (4, 5, 4, 5)
    assert {b.where: b.reason for b in load.bad} == {
        "absolute_annotations id 7": "post 999 is not a post",
        "absolute_annotations id 8": "value 9 is outside 1..5",
    }
    assert load.notes == {
        "absolute_read": 8 - 1,
        "absolute_edited": 1,
        "absolute_other_scale_not_used": 1,
        "absolute_used": 3,
        "absolute_over_score": 2,
    }
    under, load = ratings(absolute="under_score")
    assert (under[41], under[2], under[1]) == (4, 3, 1) and load.notes["absolute_used"] == 1
    assert len(ratings(absolute="ignore")[0]) == 40
    assert ratings(dimension="color")[0] == {4: 1}  # posts.score is the overall rating only
    with pytest.raises(ValueError, match="dimension 'colour' is not one of"):
        read_pictoria(db, dimension="colour")
    assert db.read_bytes() == before


def test_pairs_and_rankings_become_pairs_with_every_left_out_row_named(tmp_path):
    db, _ = annotated_db(tmp_path)
    j = read_pictoria_judgements(db)
    assert j.counts == {
        "pairwise_read": 9,
        "pairwise_skipped": 1,
        "pairwise_ties": 1,
        "pairwise_edited": 1,
        "listwise_read": 3,
        "listwise_skipped": 1,
        "listwise_partial": 0,
        "listwise_edited": 1,
        "listwise_pairs": 10,
        "flags_not_used": 2,
        "superseded": 1,  # the ranking judges 1 against 2 again, after the pair did
        "pairs": 15,
    }
    bad = {(b.where, b.reason) for b in j.bad}
    assert ("pairwise_annotations id 6", "post 999 is not a post") in bad
    assert ("pairwise_annotations id 7", "posts 42 and 1 are one image (a duplicate and its original)") in bad
    assert (
        any(w == "listwise_annotations id 3" and "names one not shown" in r for w, r in bad) and len(bad) == 3
    )
    ranked = j.pairs.filter(j.pairs["ref"] == "listwise_annotations id 1")
    assert ranked.select("a", "b").rows()[:4] == [(100, 1), (100, NO_VECTOR), (100, 2), (100, 3)]
    assert set(ranked["winner"]) == {"a"} and ranked["weight"].sum() == pytest.approx(4)  # n - 1 of 5
    assert set(j.vectors) == {1, 2, 3, 4, 5, 6, 100, 101, 103, 104}  # the named posts pictoria has vectors of

    rows_by_post = {p: p - 1 for p in range(1, 42)}  # a manifest of posts 1..41, row = post - 1
    pairs, left_out = j.to_pairs(rows_by_post, 41, TINY_DIM)
    assert len(pairs) == 10 and len(left_out) == 5
    assert all(f"post {NO_VECTOR} is not rated and has no embedding" in b.reason for b in left_out)
    assert pairs.extra.shape == (3, TINY_DIM)  # posts 100, 101, 103: 104's only pair names 105
    first = j.pairs.rows()[0]
    assert first[:3] == (3, 4, "b") and (pairs.a[0], pairs.b[0], pairs.outcome[0]) == (2, 3, -1.0)
    assert pairs.outcome.tolist().count(0.0) == 1 and pairs.outcome.tolist().count(-1.0) == 2
    assert sorted(set(pairs.weight.tolist())) == pytest.approx([0.4, 1.0])  # the ranking's, the pairs'


def test_a_pair_judged_again_keeps_its_latest_judgement_and_a_partial_ranking_is_counted(tmp_path):
    db, _ = make_pictoria_db(tmp_path, n=8, n_with_vectors=0, annotations=True)
    events = [
        ("pairwise_annotations", dict(post_a=1, post_b=2, winner="a")),
        ("pairwise_annotations", dict(post_a=3, post_b=4, winner="a")),
        ("pairwise_annotations", dict(post_a=2, post_b=1, winner="a")),  # 1 vs 2 again: now 2 is better
        ("pairwise_annotations", dict(post_a=3, post_b=4, winner="skip")),  # a skip says nothing new
        ("listwise_annotations", dict(post_ids="[5, 6, 7, 8]", ranking="[7, 5]")),  # 2 of the 4 shown
        ("pairwise_annotations", dict(post_a=5, post_b=7, winner="a")),  # overrules the ranking's 7 > 5
        ("pairwise_annotations", dict(post_a=10, post_b=3, winner="tie")),  # post 10 is post 1's duplicate
        (
            "pairwise_annotations",
            dict(post_a=1, post_b=3, winner="b", dimension="color"),
        ),  # another dimension
    ]
    for i, (table, row) in enumerate(events):
        row = {"dimension": "overall", **row, "created_at": f"2026-01-01T00:00:{i:02d}"}
        annotate(db, table, **row)
    j = read_pictoria_judgements(db)
    assert j.pairs.select("a", "b", "winner", "ref").rows() == [
        (3, 4, "a", "pairwise_annotations id 2"),
        (2, 1, "a", "pairwise_annotations id 3"),
        (5, 7, "a", "pairwise_annotations id 5"),
        (1, 3, "tie", "pairwise_annotations id 6"),
    ]
    assert j.counts["superseded"] == 2 and j.counts["pairs"] == 4
    assert j.counts["listwise_partial"] == 1 and j.bad == []  # its order of the posts it ranks trains


def test_an_annotation_or_its_correction_changes_the_fingerprint(tmp_path):
    from silva_pipeline.sources.pictoria import fingerprint_pictoria

    db, _ = annotated_db(tmp_path)
    first = fingerprint_pictoria(db)
    annotate(db, "pairwise_annotations", post_a=9, post_b=10, dimension="overall", winner="a")
    second = fingerprint_pictoria(db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE pairwise_annotations SET winner = 'b', edited_at = 'now' WHERE post_a = 9")
    assert len({first, second, fingerprint_pictoria(db)}) == 3


def test_an_annotated_library_trains_end_to_end_and_stays_untouched(tiny_backbone, tmp_path):
    from pipeline_support import meta, pictoria_resources, run

    db, vectors = annotated_db(tmp_path)
    before = db.read_bytes()
    r = run(
        pictoria_resources(tiny_backbone, db),
        selection=["raw_ratings", "image_embeddings", "manifest", "head"],
    )
    assert r.success
    assert meta(r, "raw_ratings", "dagster/row_count") == 41  # post 41 rated by its annotation
    assert meta(r, "raw_ratings", "precomputed_embeddings") == 10  # duplicate and unrated posts skipped
    assert meta(r, "image_embeddings", "precomputed") == 10 and meta(r, "image_embeddings", "embedded") == 31
    m = pq.read_table(meta(r, "manifest", "dagster/uri"))
    first = embeddings_from_arrow(m.column("embedding"))[m.column("post_id").to_numpy() == 1][0]
    np.testing.assert_array_equal(first, vectors[0])  # post 1's vector came from vec0
    assert "| absolute_over_score | 2 |" in meta(r, "raw_ratings", "annotations")
    assert meta(r, "head", "pairs") == 10
    assert meta(r, "head", "bad_judgements_count") == 3 + 5
    assert f"post {NO_VECTOR} is not rated" in meta(r, "head", "bad_judgements")
    judgements = meta(r, "head", "judgements")
    assert "| pictoria_unrated_images_compared | 3 |" in judgements and "| flags_not_used | 2 |" in judgements
    assert "| superseded | 1 |" in judgements
    assert db.read_bytes() == before  # read-only
