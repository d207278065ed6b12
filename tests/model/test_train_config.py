"""The one training config: options typed by name, unknown options named, file round trips, and
what the size-dependent options come to."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from silva_model.train_config import (
    AUTO_COMPONENTS,
    AUTO_COMPONENTS_FROM,
    AUTO_RANK_BELOW,
    AUTO_RANK_WEIGHT,
    TrainConfig,
)


def test_values_are_typed_by_the_option_they_set():
    cfg = TrainConfig(lr="3e-3", weight_decay=0, hidden=[64, 32], rank_weight=2)
    assert cfg.lr == 0.003 and isinstance(cfg.lr, float)  # PyYAML reads 3e-3 (no dot) as a string
    assert cfg.weight_decay == 0.0 and isinstance(cfg.weight_decay, float)
    assert cfg.hidden == (64, 32)
    assert cfg.rank_weight == 2.0 and isinstance(cfg.rank_weight, float)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("epochs", 2.5, "epochs must be an integer, got 2.5"),
        ("epochs", True, "epochs must be an integer, got True"),
        ("lr", "fast", "lr must be a number, got 'fast'"),
        ("lr", False, "lr must be a number, got False"),
        ("calibrate", "yes", "calibrate must be true or false, got 'yes'"),
        ("prior", 3, "prior must be a string, got 3"),
        ("hidden", 64, "hidden must be a list of integers, got 64"),
        ("hidden", [64, "32"], "hidden must be a list of integers"),
        ("device", "tpu", r"device must be one of \('auto', 'cpu', 'cuda'\), got 'tpu'"),
        ("threshold_init", "zero", r"threshold_init must be one of \('class_rates', 'uniform'\)"),
    ],
)
def test_a_wrongly_typed_value_is_refused_naming_the_option(option, value, message):
    with pytest.raises(ValueError, match=f"training option {message}"):
        TrainConfig(**{option: value})


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("epochs", 0, "^epochs must be positive, got 0$"),
        ("batch_size", -1, "^batch_size must be positive, got -1$"),
        ("lr", 0.0, "^lr must be positive, got 0.0$"),
        ("members", 0, "^members must be positive, got 0$"),
        ("judge_folds", 1, "judge_folds must be 0 \\(off\\) or 2 or more, got 1"),
        ("judge_folds", -1, "judge_folds must be 0"),
        ("rank_weight", -0.5, "rank_weight must be -1 \\(auto\\), 0 or more, got -0.5"),
        ("input_components", -2, "input_components must be -1 \\(auto\\), 0 or more, got -2"),
    ],
)
def test_out_of_range_values_are_refused(option, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{option: value})


def test_a_value_out_of_range_names_the_variable_it_came_from():
    """Breaker, round 4: SILVA_EPOCHS=-3 was refused with the whole config and no variable."""
    with pytest.raises(ValueError, match=r"^SILVA_EPOCHS: epochs must be positive, got -3$"):
        TrainConfig.load({}, {"SILVA_EPOCHS": "-3"})
    with pytest.raises(ValueError, match=r"^epochs must be positive"):  # an option given over it: no variable
        TrainConfig.load({}, {"SILVA_EPOCHS": "5"}, {"epochs": 0})


@pytest.mark.parametrize("option", ["lr", "rank_weight"])
def test_nan_is_refused_by_the_range_checks(option):
    """NaN passed every range check (a comparison with NaN is False), and training ran on a NaN loss."""
    with pytest.raises(ValueError, match=f"{option} must be a finite number"):
        TrainConfig(**{option: "nan"})


def test_from_dict_names_unknown_options_and_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown training option\(s\) \['epoch', 'learning_rate'\]") as e:
        TrainConfig.from_dict({"epoch": 3, "learning_rate": 0.1, "lr": 0.1})
    assert "'epochs'" in str(e.value) and "'lr'" in str(e.value)
    assert TrainConfig.from_dict({"epochs": 3}) == dataclasses.replace(TrainConfig(), epochs=3)


def test_from_yaml_reads_a_file_and_names_it_when_it_is_not_a_mapping(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("lr: 3e-3\nhidden: [64]\ncalibrate: false\n", encoding="utf-8")
    cfg = TrainConfig.from_yaml(path)
    assert (cfg.lr, cfg.hidden, cfg.calibrate) == (0.003, (64,), False)
    assert cfg.epochs == TrainConfig().epochs  # what the file leaves out keeps its default
    (tmp_path / "empty.yaml").write_text("", encoding="utf-8")
    assert TrainConfig.from_yaml(tmp_path / "empty.yaml") == TrainConfig()
    (tmp_path / "list.yaml").write_text("- lr\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"list\.yaml: expected a mapping of training options"):
        TrainConfig.from_yaml(tmp_path / "list.yaml")


def test_a_config_survives_a_round_trip_through_a_file(tmp_path):
    """Into the checkpoint and back: to_dict is plain YAML/JSON (hidden a list), from_dict reads it."""
    cfg = TrainConfig(
        lr=0.002, hidden=(32, 16), class_balance=True, threshold_init="uniform", prior="org/judge"
    )
    d = cfg.to_dict()
    assert d["hidden"] == [32, 16]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(d), encoding="utf-8")
    assert TrainConfig.from_yaml(path) == cfg


@pytest.mark.parametrize(
    ("input_components", "n_train", "dim", "expected"),
    [
        (-1, AUTO_COMPONENTS_FROM - 1, 1152, 0),  # auto below the size: every dimension
        (-1, AUTO_COMPONENTS_FROM, 1152, AUTO_COMPONENTS),  # auto from the size
        (-1, AUTO_COMPONENTS_FROM, AUTO_COMPONENTS, 0),  # auto never projects when it would not reduce
        (0, 50_000, 1152, 0),  # 0: every dimension, whatever the size
        (300, 5_000, 1152, 300),  # an explicit count at any size
        (300, 5_000, 64, 64),  # never more than the dimensions
        (300, 100, 1152, 99),  # never more than the rows can span
        (300, 1, 1152, 1),
    ],
)
def test_components_for(input_components, n_train, dim, expected):
    assert TrainConfig(input_components=input_components).components_for(n_train, dim) == expected


def test_rank_weight_for_picks_by_size_only_when_auto():
    auto = TrainConfig()
    assert auto.rank_weight_for(AUTO_RANK_BELOW - 1) == AUTO_RANK_WEIGHT
    assert auto.rank_weight_for(AUTO_RANK_BELOW) == 0.0
    assert TrainConfig(rank_weight=0.25).rank_weight_for(10) == 0.25
    assert TrainConfig(rank_weight=0).rank_weight_for(10) == 0.0
    assert auto.chosen_by_size(AUTO_COMPONENTS_FROM, 1152) == {
        "input_components": AUTO_COMPONENTS,
        "rank_weight": 0.0,
        "model": "mlp",
    }
