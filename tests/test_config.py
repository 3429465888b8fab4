"""Config parsing, validation and the resolved TOML round trip."""

import re
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


OWN_MODEL = {
    "model": {"module": "/abs/model.py:Chain", "args": {"k": [1.0, 2.0], "name": "a b"},
              "fixed": ["c"], "substeps": 4},
    "partition": {"stochastic": ["theta", "log_sigma"], "rest": "reoptimise"},
    "prior": {"mean": {"theta": [1.0, 0.05], "R.layers.0.weight": 0.0},
              "scale": {"theta": [[0.5], [0.05]]}, "default_mean": "zero", "default_scale": 2},
    "likelihood": {"sigma": "learn"},
}  # fmt: skip


def test_tables_lists_and_module_keys_round_trip_through_toml():
    cfg = Config.from_dict(OWN_MODEL)
    assert Config.from_dict(tomllib.loads(cfg.to_toml())) == cfg
    assert cfg.partition.reoptimise and cfg.prior.default_scale == 2.0


@pytest.mark.parametrize(
    "raw, fragment",
    [({"prior": {"scale": {"theta": -1.0}}}, "prior.scale.theta"),
     ({"prior": {"scale": {"theta": [1.0, 0.0]}}}, "positive numbers"),
     ({"prior": {"mean": {"theta": "one"}}}, "prior.mean.theta"),
     ({"prior": {"mean": "median"}}, "prior.mean"),
     ({"partition": {"stochastic": "some"}}, "partition.stochastic"),
     ({"partition": {"stochastic": []}}, "partition.stochastic"),
     ({"partition": {"variant": "bll-fixed", "stochastic": ["R"]}}, "preset"),
     ({"partition": {"rest": "thaw"}}, "partition.rest"),
     ({"partition": {"rest": "reoptimise"}, "method": {"kind": "nuts"}}, "re-optimise"),
     ({"likelihood": {"kind": "energy-score", "sigma": "learn"}}, "needs likelihood.kind"),
     ({"model": {"args": {"k": 1}}}, "model.module, which is not set"),
     ({"model": {"module": "m.py:M", "R_hidden": [4]}}, "model.R_hidden"),
     ({"model": {"fixed": "c"}}, "model.fixed")],
)  # fmt: skip
def test_bad_model_partition_and_prior_keys_are_refused(raw, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        Config.from_dict(raw)


def test_the_fewest_particles_are_the_methods_own():
    """BBVI declares that it needs 2 particles (`BBVIMethod.min_particles`); the other methods
    never draw particles, so 1 is theirs."""
    with pytest.raises(ConfigError, match=r"method\.particles must be at least 2, got 1"):
        Config.from_dict({"method": {"kind": "bbvi-full", "particles": 1}})
    assert Config.from_dict({"method": {"kind": "ls", "particles": 1}}).method.particles == 1


def test_a_relative_module_is_resolved_against_the_config_file(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "c.toml"
    path.write_text('[model]\nmodule = "../m.py:M"\n')
    assert Config.load(path).model.module == f"{tmp_path.resolve()}/m.py:M"
    path.write_text('[model]\nmodule = "mypackage.models:M"\n')
    assert Config.load(path).model.module == "mypackage.models:M"
