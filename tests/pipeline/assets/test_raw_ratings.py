"""raw_ratings: bad rows listed, dropped or fatal."""

from __future__ import annotations

from pipeline_support import (
    meta,
    rated_images,
    resources,
    run,
    write_ratings_csv,
)


def test_bad_rows_are_listed_and_dropped_or_fail(tiny_backbone, tmp_path):
    root = tmp_path / "rated"
    paths, ratings = rated_images(root / "images", 30)
    (root / "images" / "copy.jpg").write_bytes(paths[0].read_bytes())
    (root / "images" / "corrupt.png").write_bytes(b"\x89PNG broken")
    rows = [(p.relative_to(root), r) for p, r in zip(paths, ratings, strict=True)] + [
        ("images/missing.jpg", 3),
        (paths[1].relative_to(root), 0),
        (paths[2].relative_to(root), 6),
        (paths[3].relative_to(root), "great"),
        ("images/copy.jpg", ratings[0] % 5 + 1),
        ("images/corrupt.png", 4),
    ]
    # paths[1..3] appear twice: once fine, once bad; the rated-twice image conflicts with paths[0]
    csv = write_ratings_csv(root / "ratings.csv", rows)
    res_defs = resources(tiny_backbone, kind="file", path=str(csv))
    r = run(res_defs, selection=["raw_ratings", "image_embeddings"])
    assert r.success
    bad = meta(r, "raw_ratings", "bad_rows")
    assert meta(r, "raw_ratings", "bad_rows_count") == 6
    from silva_pipeline.summary import dropped_lines

    said = dropped_lines(r)  # what silva-run prints: never dropped in silence (breaker, round 4)
    assert len(said) == 2 and said[0].startswith("raw_ratings: 6 rating row(s) dropped (first: ")
    assert said[1].startswith("image_embeddings: 1 rated image(s) could not be decoded (first: ")
    assert "corrupt.png" in said[1]
    for needle in (
        "missing.jpg",
        "image file is missing",
        "rating '0' is outside 1..5",
        "rating '6' is outside",
        "'great' is not a number",
        "rated differently",
        "copy.jpg",
    ):
        assert needle in bad, needle
    assert meta(r, "raw_ratings", "dagster/row_count") == 30 - 1 + 1  # img 0 and copy dropped, corrupt kept
    assert meta(r, "image_embeddings", "failed") == 1
    assert "corrupt.png" in meta(r, "image_embeddings", "failures")

    r = run(
        res_defs,
        selection=["raw_ratings"],
        run_config={"ops": {"raw_ratings": {"config": {"on_bad_rows": "fail"}}}},
    )
    assert not r.success
    failure = r.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "6 bad rating row(s)" in failure.description and "ratings.csv row" in failure.description
