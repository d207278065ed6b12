"""silva's own ratings log: durable appends, two writers at once, the latest rating wins, and a
rating given in silva reaches the retrain sensor."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg
import pytest
from pipeline_support import make_ratings_file, rated_images, resources, run

from silva_model.ratings_log import RatingsLog
from silva_pipeline.sources import sha256_file


@pytest.fixture(autouse=True)
def silva_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SILVA_HOME", str(tmp_path / "silva-home"))
    return tmp_path / "silva-home"


WRITER = """
import sys
from pathlib import Path
from silva_model.ratings_log import RatingsLog
log = RatingsLog(Path(sys.argv[1]))
for i in range(100):
    log.append(f"{int(sys.argv[2]) * 1000 + i:064x}", 1 + i % 5)
"""


def test_two_writers_at_once_lose_nothing(tmp_path):
    path = tmp_path / "log.sqlite"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w)]) for w in (1, 2)]
    assert all(p.wait(timeout=120) == 0 for p in writers)
    entries = RatingsLog(path).entries()
    assert entries.num_rows == 200 and len(set(entries["id"].to_pylist())) == 200
    assert len(set(entries["image_sha256"].to_pylist())) == 200


def test_a_bad_rating_raises_and_records_nothing(tmp_path):
    log = RatingsLog(tmp_path / "log.sqlite")
    log.append("a" * 64, 4)
    with pytest.raises(ValueError, match="outside 1..5"):
        log.append("b" * 64, 6)
    with pytest.raises(Exception, match="CHECK"):
        log.append("short", 3)
    assert log.entries()["image_sha256"].to_pylist() == ["a" * 64]


def test_the_latest_logged_rating_wins_over_the_source(tiny_backbone, tmp_path):
    csv = make_ratings_file(tmp_path / "rated", 10)
    sha = sha256_file(sorted((tmp_path / "rated" / "images").iterdir())[0])
    extra, _ = rated_images(tmp_path / "library", 1, seed=7)  # an image the source does not have
    log = RatingsLog.default()
    log.append(sha, 5)
    log.append(sha, 2, rerate=True)  # re-rated: this one wins
    log.append(sha256_file(extra[0]), 4, path=str(extra[0]))
    log.append("c" * 64, 3)  # rated in silva with no path and not in the source
    r = run(resources(tiny_backbone, kind="file", path=str(csv)), selection=["raw_ratings"])
    assert r.success
    import pyarrow.parquet as pq

    meta = r.asset_materializations_for_node("raw_ratings")[0].metadata
    rows = pq.read_table(meta["dagster/uri"].value).to_pydict()
    by_sha = dict(zip(rows["image_sha256"], rows["rating"], strict=True))
    assert by_sha[sha] == 2 and by_sha[sha256_file(extra[0])] == 4
    assert meta["dagster/row_count"].value == 11
    assert "ratings log id 4" in meta["bad_rows"].value


def test_a_rating_in_the_log_reaches_the_retrain_sensor(tmp_path):
    from silva_pipeline.automation import new_ratings_sensor
    from silva_pipeline.resources import RatingsSource

    src = RatingsSource(kind="file", path=str(make_ratings_file(tmp_path / "rated", 5)))
    instance = dg.DagsterInstance.ephemeral()

    def tick(cursor):
        ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"ratings_source": src})
        return new_ratings_sensor(ctx), ctx.cursor

    out, cursor = tick(None)
    assert isinstance(out, dg.SkipReason)
    RatingsLog.default().append("d" * 64, 5, path=str(tmp_path / "anything.png"))
    out, _ = tick(cursor)
    assert isinstance(out, dg.RunRequest) and out.job_name in (None, "retrain")


def test_first_rating_keeps_the_rating_before_the_latest(tmp_path):
    import polars as pl

    from silva_pipeline.sources import RatingsLoad, with_log

    source = RatingsLoad(
        pl.DataFrame(
            {
                "image_sha256": ["a" * 64, "b" * 64],
                "rating": [3, 4],
                "path": ["a.png", "b.png"],
                "source": "file",
            },
            schema_overrides={"rating": pl.Int8},
        )
    )
    log = RatingsLog(tmp_path / "log.sqlite")
    log.append("a" * 64, 5, rerate=True)  # in the source: first = the source's 3
    log.append("c" * 64, 2, path="c.png")  # only in the log, twice: first = 2, latest = 1
    log.append("c" * 64, 1, path="c.png", rerate=True)
    rows = with_log(source, log.entries()).rows.sort("image_sha256")
    assert rows["rating"].to_list() == [5, 4, 1]
    assert rows["first_rating"].to_list() == [3, None, 2]


@pytest.mark.slow
def test_the_evaluation_shows_the_raters_own_consistency(tiny_backbone, tmp_path):
    from pipeline_support import FAST_HEAD

    csv = make_ratings_file(tmp_path / "rated", 60)
    images = sorted((tmp_path / "rated" / "images").iterdir())
    import polars as pl

    given = dict(pl.read_csv(csv).iter_rows())
    log = RatingsLog.default()
    for k, img in enumerate(images[:25]):  # 25 repeats: 15 agree, 10 move by one
        old = given[f"images/{img.name}"]
        log.append(sha256_file(img), old if k < 15 else (old % 5) + 1, rerate=True)
    r = run(resources(tiny_backbone, kind="file", path=str(csv)), run_config=FAST_HEAD)
    assert r.success
    meta = r.asset_materializations_for_node("evaluation")[0].metadata
    assert meta["rater_repeats"].value == 25 and meta["rater_exact"].value == pytest.approx(15 / 25)
    assert "Your own consistency" in meta["report"].value and "images rated twice" in meta["report"].value
