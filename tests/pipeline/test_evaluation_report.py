"""What the evaluation says of each split, wherever it is shown: the run's summary, the MLflow run
and the registry version."""

import numpy as np

from silva_model.metrics import MIN_EVAL_ROWS
from silva_model.train_config import TrainConfig
from silva_pipeline.evaluation_report import headline, metric_lines, tracked_metrics
from silva_pipeline.records import EvaluationReport


def _m(n: int, spearman: float) -> dict:
    return {"n": n, "spearman": spearman, "qwk": 0.5, "mae": 0.4}


def test_a_split_too_small_to_measure_is_named_not_scored():
    """Walker's finding: val and test of 2 and 3 images printed "spearman 0.0000 [0.000, 0.000]"."""
    metrics = {"val": _m(2, 0.0), "test": _m(MIN_EVAL_ROWS, 0.61), "oof": _m(120, 0.95)}
    intervals = {"val": {"spearman": (0.0, 0.0)}, "test": {"spearman": (0.2, 0.8)}}
    lines = metric_lines(metrics, intervals)
    assert lines[0].startswith("5-fold out-of-fold: spearman 0.9500") and "(n=120)" in lines[0]
    assert lines[1] == f"val: 2 image(s), too few to measure (it takes {MIN_EVAL_ROWS})"
    assert lines[2] == f"test: spearman 0.6100 [0.200, 0.800]  qwk 0.5000  mae 0.4000  (n={MIN_EVAL_ROWS})"


def test_a_split_whose_images_all_carry_one_rating_has_no_order_to_measure():
    """Walker's finding: a test split of 15 images all rated 4 printed "spearman 0.0000"."""
    one = {**_m(15, 0.0), "ratings_given": 1}
    report = EvaluationReport({"test": one, "oof": {**_m(120, 0.8), "ratings_given": 5}}, intervals={})
    lines = metric_lines(report.metrics, report.intervals)
    assert lines[1] == "test: 15 image(s), all given one rating: no order to measure"
    assert lines[0].startswith("5-fold out-of-fold: spearman 0.8000")
    tracked = tracked_metrics(report)
    assert tracked["eval_test_n"] == 15 and "eval_test_spearman" not in tracked


def test_the_headline_and_a_judges_split_give_no_number_where_the_split_says_nothing():
    """Breaker: with every test image rated 3, the judge-alone row, the headline (the registry
    version's description, the Dagster metadata) and the held-out number still said 0.0000."""
    from silva_model.evaluate import evaluation_of, split_metrics

    y, score = np.full(12, 3), np.linspace(0.1, 0.9, 12)
    judged = split_metrics(y, score, np.full(12, 3))
    report = EvaluationReport(
        {"test": evaluation_of("test", y, score, np.full(12, 3)).metrics, "test_judge_alone": judged}
    )
    assert judged["ratings_given"] == 1
    assert not any("0.0000" in line for line in metric_lines(report.metrics, {}))
    assert not any(k.endswith("spearman") for k in tracked_metrics(report))
    said = headline(report.metrics, {})
    assert said == "no Spearman on 12 test images: all given one rating: no order to measure", said
    assert report.heldout_spearman() is None
    assert headline({"test": _m(9, 1.0)}, {}).startswith("no Spearman on 9 test images: too few")


def test_mlflow_and_the_registry_get_no_number_for_a_split_too_small_to_measure():
    """Walker's finding: the card said "too few to measure" of a 6-image test split while its MLflow
    run and registry version recorded Spearman 0.0000 for it."""
    from silva_pipeline.assets.hub_release import _version_description

    report = EvaluationReport(
        {"test": _m(6, 0.0), "oof": _m(60, 0.71)},
        intervals={"test": {"spearman": [0.0, 0.0]}, "oof": {"spearman": [0.6, 0.8]}},
    )
    tracked = tracked_metrics(report)
    assert tracked["eval_test_n"] == 6 and "eval_test_spearman" not in tracked
    assert "eval_test_spearman_ci_low" not in tracked
    assert tracked["eval_oof_spearman"] == 0.71 and tracked["eval_oof_spearman_ci_high"] == 0.8

    class Head:
        n_train, train_config, best_epoch = 60, TrainConfig(), 3

    described = _version_description(report, Head())
    assert f"test: 6 image(s), too few to measure (it takes {MIN_EVAL_ROWS})" in described
    assert "Spearman 0.0000" not in described and "spearman 0.0000" not in described
