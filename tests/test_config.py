"""Config parsing, validation and the resolved TOML round trip."""

import tomllib

import pytest

from langevin_uq.config import Config
from langevin_uq.errors import ConfigError


def test_defaults_round_trip_through_toml():
    cfg = Config()
    assert Config.from_dict(tomllib.loads(cfg.to_toml())) == cfg


def test_values_are_read_and_ints_widen_to_floats():
    cfg = Config.from_dict({"sampler": {"dtau": 1, "replicas": 8}, "model": {"R_hidden": []},
                            "likelihood": {"sigma": 0.05}})  # fmt: skip
    assert cfg.sampler.dtau == 1.0 and isinstance(cfg.sampler.dtau, float)
    assert cfg.model.R_hidden == [] and cfg.likelihood.sigma == 0.05
    assert Config.from_dict(tomllib.loads(cfg.to_toml())) == cfg


def test_replace_validates():
    cfg = Config().replace(train={"seed": 7})
    assert cfg.train.seed == 7
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        Config().replace(train={"epochs": -1})


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"nonsense": {}}, "section [nonsense]"),
        ({"train": {"epoch": 3}}, "train.epoch"),
        ({"train": {"epochs": "many"}}, "train.epochs"),
        ({"train": {"x64": 1}}, "train.x64"),
        ({"likelihood": {"kind": "foo"}}, "likelihood.kind"),
        ({"likelihood": {"marginal": True}}, "likelihood.marginal"),
        ({"prior": {"scale": 0}}, "prior.scale"),
        ({"sampler": {"final_dtau": 0.5}}, "sampler.final_dtau"),
        ({"model": {"R_hidden": [16, -1]}}, "model.R_hidden"),
        ({"data": {"validation_fraction": 1.0}}, "data.validation_fraction"),
        ({"data": 3}, "[data] table"),
    ],
)
def test_bad_values_name_the_key(raw, fragment):
    with pytest.raises(ConfigError, match=__import__("re").escape(fragment)):
        Config.from_dict(raw)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Config.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nepochs = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Config.load(bad)
