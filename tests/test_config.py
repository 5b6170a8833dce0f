"""The TOML config: defaults, overrides, validation, hash."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from importlib import resources

import pytest

from pipeline.config import Config, config_hash, load_config
from pipeline.screening.score import FEATURES

DEFAULT_TEXT = resources.files("pipeline").joinpath("default_config.toml").read_text("utf-8")


def write(tmp_path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults():
    config = load_config(None)
    assert (config.max_inr, config.min_platelets, config.window_days) == (1.5, 50.0, 30)
    assert config.weights["acute_level"] == 30.0
    assert config == Config()     # dataclass defaults and the shipped file agree


def test_dataclass_defaults_match_the_shipped_file():
    shipped = tomllib.loads(DEFAULT_TEXT)
    config = Config()
    for key in ("max_inr", "min_platelets", "window_days"):
        assert getattr(config, key) == shipped[key], key
    assert config.weights == {name: float(value) for name, value in shipped["weights"].items()}


def test_every_weight_has_a_score_feature():
    assert set(Config().weights) == set(FEATURES)


def test_every_setting_is_documented_where_it_is_set():
    """Each ``key = value`` line of the shipped file follows a comment."""
    lines = DEFAULT_TEXT.splitlines()
    settings = [number for number, line in enumerate(lines)
                if re.match(r"^\w+\s*=", line)]
    assert len(settings) == 3 + len(Config().weights)
    for number in settings:
        assert lines[number - 1].startswith("#"), lines[number]
    for source in ("Patel", "J Vasc Interv Radiol 2019", "ACR Appropriateness Criteria",
                   "Management of Vertebral Compression Fractures", "NASS"):
        assert source in DEFAULT_TEXT


def test_user_file_overrides_only_the_keys_it_sets(tmp_path):
    config = load_config(write(tmp_path, "max_inr = 2.0\n[weights]\noedema = 40\n"))
    assert config.max_inr == 2.0
    assert config.min_platelets == 50.0 and config.window_days == 30
    assert config.weights["oedema"] == 40.0
    assert config.weights["acute_level"] == 30.0


def test_integer_thresholds_become_floats(tmp_path):
    config = load_config(write(tmp_path, "max_inr = 2\nmin_platelets = 75\n"))
    assert config.max_inr == 2.0 and isinstance(config.max_inr, float)
    assert config.min_platelets == 75.0


@pytest.mark.parametrize("text, key", [
    ("max_inrr = 2.0\n", "max_inrr"),
    ("[weights]\noedma = 3\n", "weights.oedma"),
    ("[scoring]\nx = 1\n", "scoring"),
])
def test_unknown_key_is_an_error_naming_it(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as error:
        load_config(path)
    message = str(error.value)
    assert f"unknown config key '{key}'" in message
    assert str(path) in message
    assert "\n" not in message


@pytest.mark.parametrize("text, fragment", [
    ("max_inr = 'high'\n", "max_inr must be a positive number"),
    ("max_inr = 0\n", "max_inr must be a positive number"),
    ("min_platelets = -1\n", "min_platelets must be a number >= 0"),
    ("window_days = 30.5\n", "window_days must be a whole number"),
    ("window_days = true\n", "window_days must be a whole number"),
    ("[weights]\noedema = 'a lot'\n", "weights.oedema must be a number"),
    ("weights = 3\n", "'weights' must be a table"),
    ("[max_inr]\nvalue = 2\n", "'max_inr' must be a value"),
    ("max_inr = \n", "not valid TOML"),
])
def test_invalid_values_are_one_line_errors(tmp_path, text, fragment):
    with pytest.raises(ValueError) as error:
        load_config(write(tmp_path, text))
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "nope.toml")


def test_config_is_frozen_and_owns_its_weights():
    weights = {"oedema": 40.0}
    config = Config(weights=weights)
    weights["oedema"] = 0.0
    assert config.weights["oedema"] == 40.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_inr = 3.0  # type: ignore[misc]


def test_unknown_weight_in_constructor():
    with pytest.raises(ValueError, match="unknown config key 'weights.bogus'"):
        Config(weights={"bogus": 1.0})


def test_to_dict_round_trips():
    config = Config(max_inr=1.8, weights={"pain": 7})
    data = config.to_dict()
    assert data["max_inr"] == 1.8 and data["weights"]["pain"] == 7.0
    assert list(data["weights"]) == sorted(data["weights"])
    assert Config(**data) == config


def test_hash_is_of_content_not_of_file_bytes(tmp_path):
    default_hash = config_hash(load_config(None))
    assert re.fullmatch(r"[0-9a-f]{64}", default_hash)
    # Same values, different comments and order: same hash.
    same = write(tmp_path, "# mine\n[weights]\nacute_level = 30\n")
    assert config_hash(load_config(same)) == default_hash
    assert config_hash(Config(max_inr=2.0)) != default_hash
    assert config_hash(Config(weights={"oedema": 21})) != default_hash
