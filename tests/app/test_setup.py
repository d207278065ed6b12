"""A workspace's setup: the one loader of its settings (setup.yaml < variables < options), recorded
so a later run in any shell reads the same sources."""

from __future__ import annotations

import os

import pytest
import yaml

from silva_app.home import Home
from silva_app.setup import Setup, forget_person_settings


def test_each_layer_overrides_the_one_below_and_says_where_a_setting_came_from(tmp_path):
    home = Home(tmp_path / "home")
    (tmp_path / "rated").mkdir()
    Setup.load(home, {"SILVA_SOURCE": "folder", "SILVA_RATINGS": "rated"}, cwd=tmp_path).record()
    recorded = Setup.load(home, {}, cwd=tmp_path / "elsewhere")
    assert recorded["ratings.source"] == "folder" and recorded["ratings.path"] == str(tmp_path / "rated")
    assert recorded.where("ratings.path") == f"ratings.path in {home.root / 'setup.yaml'}"
    shell = Setup.load(home, {"SILVA_RATINGS": "/other"}, cwd=tmp_path)
    assert shell["ratings.path"] == "/other" and shell.where("ratings.path") == "SILVA_RATINGS"
    option = Setup.load(home, {"SILVA_RATINGS": "/other"}, {"ratings.path": "/third"}, cwd=tmp_path)
    assert option["ratings.path"] == "/third"
    assert recorded.where("library.path") == "SILVA_LIBRARY"  # a default is named by its variable


def test_relative_paths_are_recorded_absolute_and_a_backbone_name_stays_a_hub_id(tmp_path):
    home = Home(tmp_path / "home")
    (tmp_path / "trial").mkdir()
    env = {
        "SILVA_SOURCE": "file",
        "SILVA_RATINGS": "r.csv",
        "SILVA_BACKBONE": "trial",
        "SILVA_LIBRARY": "a:b",
    }
    setup = Setup.load(home, env, cwd=tmp_path)
    assert setup["ratings.path"] == str(tmp_path / "r.csv")
    assert setup["backbone"] == str(tmp_path / "trial")  # a folder here
    assert setup["library.path"] == os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")])
    assert Setup.load(home, {"SILVA_BACKBONE": "google/siglip2-base"}, cwd=tmp_path)["backbone"] == (
        "google/siglip2-base"
    )


def test_a_bad_value_is_refused_by_its_variable_or_its_place_in_the_file(tmp_path):
    home = Home(tmp_path / "home")
    with pytest.raises(ValueError, match=r"SILVA_SOURCE: ratings.source must be one of .*got 'folders'"):
        Setup.load(home, {"SILVA_SOURCE": "folders"})
    with pytest.raises(ValueError, match=r"epochs \(SILVA_EPOCHS\) must be an integer"):
        Setup.load(home, {"SILVA_EPOCHS": "many"})
    home.root.mkdir(parents=True)
    (home.root / "setup.yaml").write_text("demo:\n  size: lots\n")
    with pytest.raises(ValueError, match=r"demo.size in .*setup.yaml: demo.size must be a whole number"):
        Setup.load(home, {})


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("ratngs: 3\n", r"unknown setting\(s\) \['ratngs'\]: misspelled\?"),
        ("ratings:\n  source: folder\n  pth: x\n", r"unknown setting\(s\) \['ratings.pth'\]"),
        ("ratings: 5\n", r"ratings must hold settings \(pairs, path, .*\), got 5"),
        ("training:\n  epochs: abc\n", r"training: training option epochs must be an integer, got 'abc'"),
        ("training:\n  epochz: 3\n", r"training: unknown training option\(s\) \['epochz'\]"),
        (b"\xff\xfe", r"is not UTF-8 text"),
    ],
)
def test_a_hand_edited_setup_file_is_refused_naming_the_file_and_the_key(tmp_path, text, refusal):
    """Breaker, round 4: a misspelled key was ignored without a word (and the run released), and a
    bad training option or encoding did not name the file."""
    home = Home(tmp_path / "home")
    home.root.mkdir(parents=True)
    file = home.root / "setup.yaml"
    file.write_bytes(text) if isinstance(text, bytes) else file.write_text(text)
    with pytest.raises(ValueError, match=f"^{file}:? .*{refusal}"):
        Setup.load(home, {})


def test_the_record_keeps_what_was_set_and_the_judge_not_one_runs_options(tmp_path):
    home = Home(tmp_path / "home")
    env = {"SILVA_SOURCE": "demo", "SILVA_PRIOR": "you/judge", "SILVA_EPOCHS": "3"}
    setup = Setup.load(home, env)
    assert setup.train_config().epochs == 3 and setup.train_config({"epochs": 5}).epochs == 5
    setup.record()
    data = yaml.safe_load((home.root / "setup.yaml").read_text())
    assert data == {"ratings": {"source": "demo"}, "training": {"prior": "you/judge"}}
    again = Setup.load(home, {})
    assert again.train_config().prior == "you/judge" and again.train_config().epochs == 20
    assert not Setup.load(Home(tmp_path / "fresh"), {}).configured


def test_the_demo_forgets_the_persons_settings_but_keeps_its_own_sizes():
    env = {
        "SILVA_SOURCE": "folder",
        "SILVA_PRIOR": "x",
        "MLFLOW_TRACKING_URI": "http://x",
        "SILVA_DEMO_SIZE": "9",
    }
    forget_person_settings(env)
    assert env == {"SILVA_DEMO_SIZE": "9"}
