"""Your own data model (INTERFACE.md "Your own model"): the Heun solve of any module, the
refusals of a module that is not a data model, and fit / resume / load_run with one."""

import inspect
import json
import textwrap
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from conftest import TINY_TOML

from langevin_uq import checkpoint as ckpt
from langevin_uq import rundir
from langevin_uq.data import Scaler
from langevin_uq.datamodel import check_data_model, solve
from langevin_uq.errors import ConfigError, RunDirError
from langevin_uq.prepare import data_model, partition_of
from langevin_uq.run import fit, load_run, sample_weights


class Decay(eqx.Module):
    """dh/dt = -k (h - level), h(0) = y0."""

    log_k: jax.Array
    level: jax.Array

    def __init__(self, k=1.0, level=0.0):
        self.log_k = jnp.log(jnp.asarray([k]))
        self.level = jnp.asarray([level])

    def vector_field(self, t, h, x):
        return -jnp.exp(self.log_k) * (h - self.level)


IMPORTS = "import equinox as eqx\nimport jax\nimport jax.numpy as jnp\n\n\n"
DECAY = IMPORTS + inspect.getsource(Decay)
"""`Decay` as the file a user writes."""


def test_solve_integrates_any_module_and_a_stateless_one_is_a_static_map():
    t = jnp.linspace(0.0, 2.0, 41)
    y = solve(Decay(k=0.5, level=1.0), t, jnp.zeros((41, 0)), jnp.array([3.0]), substeps=2)
    exact = 1.0 + 2.0 * np.exp(-0.5 * np.asarray(t))
    np.testing.assert_allclose(y[:, 0], exact, rtol=1e-4)

    class Stress(eqx.Module):  # no ODE: stress from strain at each time
        modulus: jax.Array

        def initial_state(self, y0, x0):
            return jnp.zeros(0)

        def observe(self, h, x):
            return self.modulus * x[:1]

    x = jnp.linspace(0.0, 1.0, 5)[:, None]
    np.testing.assert_allclose(solve(Stress(jnp.array(2.0)), t[:5], x, jnp.zeros(1)), 2 * x)


def _model_file(tmp_path: Path, source: str, name: str = "model.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def _config_file(tmp_path: Path, spec: str, extra: str = "") -> Path:
    """The tiny config with ``[model]`` replaced by ``module = spec``."""
    base = TINY_TOML.replace("[model]\nR_hidden = []\n", "")
    path = tmp_path / "config.toml"
    path.write_text(f'{base}\n[model]\nmodule = "{spec}"\n{extra}')
    return path


NO_FIELD = DECAY.replace("def vector_field", "def field")
WRONG_SHAPE = DECAY.replace("return -jnp.exp(self.log_k) * (h - self.level)",
                            "return jnp.zeros(3)")  # fmt: skip
NON_FINITE = DECAY.replace("return -jnp.exp(self.log_k) * (h - self.level)",
                           "return h / 0.0")  # fmt: skip


@pytest.mark.parametrize(
    "source, spec, extra, mentions",
    [
        (None, "missing.py:Decay", "", ["missing.py", "does not exist"]),
        ("import numpy as np\ndef broken(:\n", "model.py:Decay", "", ["model.py", "does not import",
                                                                    "SyntaxError"]),
        ("import not_a_package_here\n", "model.py:Decay", "", ["does not import",
                                                              "not_a_package_here"]),
        (DECAY, "model.py:Decoy", "", ["has no 'Decoy'"]),
        (DECAY, "model.py", "", ["FILE.py:NAME"]),
        (NO_FIELD, "model.py:Decay", "", ["no vector_field"]),
        (WRONG_SHAPE, "model.py:Decay", "", ["vector_field returned shape (3,)"]),
        (NON_FINITE, "model.py:Decay", "", ["non-finite"]),
        (DECAY, "model.py:Decay", "[model.args]\nrate = 2.0\n", ["building 'Decay'", "rate"]),
        (DECAY, "model.py:Decay", "hidden_state = 2\n", ["model.hidden_state", "do not apply"]),
        (DECAY, "model.py:Decay", "[model.args]\nk = 1.0\n[partition]\nvariant = 'bll-fixed'\n",
         ["preset of the built-in model"]),
        (DECAY, "model.py:Decay", "[partition]\nstochastic = ['log_kk']\n", ["log_kk", "log_k"]),
        (DECAY, "model.py:Decay", "[prior.scale]\nlevl = 0.5\n", ["prior.scale", "levl"]),
        (DECAY, "model.py:Decay", "[prior.mean]\nlog_k = [0.0, 1.0]\n", ["shape (2,)", "(1,)"]),
    ],
)  # fmt: skip
def test_a_module_that_is_not_a_data_model_is_refused_and_nothing_is_written(
    cli, tmp_path, data_file, source, spec, extra, mentions
):
    from test_cli import assert_refused

    if source is not None:
        _model_file(tmp_path, source)
    config = _config_file(tmp_path, spec, extra)
    out = tmp_path / "run"
    assert_refused(cli("fit", data_file, "--config", config, "--out", out), *mentions)
    assert not out.exists()


def test_check_data_model_refuses_a_wrong_observation():
    class TwoOut(eqx.Module):
        w: jax.Array

        def vector_field(self, t, h, x):
            return -h

        def observe(self, h, x):
            return jnp.concatenate([h, h])

    with pytest.raises(ConfigError, match=r"observe returned shape \(2,\)"):
        check_data_model(TwoOut(jnp.ones(1)), 1, 0, jnp.float32, where="TwoOut")
    with pytest.raises(ConfigError, match="not an Equinox module"):
        check_data_model(lambda t, h, x: h, 1, 0, jnp.float32, where="f")


def _samples(run_dir: Path) -> np.ndarray:
    return ckpt.load_arrays(run_dir / rundir.SAMPLES)["w"]


@pytest.fixture(scope="module")
def python_run(tmp_path_factory, ou_data, make_config):
    """A run of `Decay` given in Python: the fixed ``level``, a prior table and a learned noise,
    at a constant rate (with the cosine decay over train.epochs, 10 epochs then 10 more is
    another schedule than 20). Returns its run directory and `FittedRun`."""
    config = make_config(
        model={"fixed": ["level"]},
        prior={"scale": {"log_k": 0.3}},
        likelihood={"sigma": "learn"},
        train={"lr_schedule": "constant"},
    )
    run_dir = tmp_path_factory.mktemp("python") / "run"
    return run_dir, fit(ou_data, config, run_dir=run_dir, model=Decay(k=0.5, level=1.0))


def test_cli_fit_resume_and_sample_with_a_module_are_exact(cli, tmp_path, data_file, python_run):
    """The same model and config through a config file: half the epochs, then ``--resume`` to
    all of them, give the samples of the uninterrupted run (`python_run`), bit for bit."""
    _model_file(tmp_path, DECAY)
    extra = ("fixed = ['level']\n[model.args]\nk = 0.5\nlevel = 1.0\n[likelihood]\n"
             "sigma = 'learn'\n[prior.scale]\nlog_k = 0.3\n")  # fmt: skip
    config = _config_file(tmp_path, "model.py:Decay", extra)
    config.write_text(
        config.read_text().replace("[train]\n", "[train]\nlr_schedule = 'constant'\n")
    )
    whole, part = python_run[0], tmp_path / "part"
    half = tmp_path / "half.toml"
    half.write_text(config.read_text().replace("\nepochs = 20", "\nepochs = 10"))
    assert cli("fit", data_file, "--config", half, "--out", part, "--no-progress")[0] == 0
    code, _, err = cli("fit", data_file, "--config", config, "--out", part, "--resume",
                       "--no-progress")  # fmt: skip
    assert code == 0, err
    np.testing.assert_array_equal(_samples(part), _samples(whole))
    names = list(np.load(part / rundir.SAMPLES)["names"])
    assert names == ["log_k[0]", "log_sigma[0]"]  # level is a constant
    meta = json.loads((part / rundir.METADATA).read_text())["model"]
    assert meta["kind"] == "module" and meta["module"].endswith("model.py:Decay")
    out = tmp_path / "draws.npz"
    assert cli("sample", part, "--out", out, "--n", "7")[0] == 0
    assert np.load(out)["w"].shape == (7, 2)
    # predict --noise adds each sample's own learned noise sd.
    plain, noisy = tmp_path / "plain.nc", tmp_path / "noisy.nc"
    for path, flags in ((plain, []), (noisy, ["--noise"])):
        code, _, err = cli("predict", part, "--data", data_file, "--out", path, "--n", "64",
                           *flags)  # fmt: skip
        assert code == 0, err
    sigma = np.exp(_samples(part)[:, 1]).mean()
    spread = [float(xr.open_dataset(p)["std"].mean()) for p in (plain, noisy)]
    assert spread[1] > spread[0] and spread[1] > 0.5 * sigma
    # A changed model file is refused by every later command.
    _model_file(tmp_path, DECAY.replace("(h - self.level)", "(h - 2 * self.level)"))
    from test_cli import assert_refused

    assert_refused(cli("sample", part, "--out", out), "source file changed")
    assert_refused(cli("fit", data_file, "--config", config, "--out", part, "--resume"),
                   "source file changed")  # fmt: skip


def test_python_model_fit_and_load_run(python_run):
    run_dir, run = python_run
    assert run.partition.names == ("log_k[0]", "log_sigma[0]")
    assert float(run.posterior.sampler.prior.scale[0]) == pytest.approx(0.3)
    with pytest.raises(RunDirError, match="pass one of the same structure as model="):
        load_run(run_dir)
    with pytest.raises(RunDirError, match="names and shapes"):
        load_run(run_dir, model=eqx.tree_at(lambda m: m.level, Decay(), jnp.zeros(1, int)))
    again = load_run(run_dir, model=Decay(k=7.0, level=1.0))  # values are the run's
    np.testing.assert_array_equal(again.w_mle, run.w_mle)
    assert again.epoch == run.epoch
    key = jax.random.key(3)
    np.testing.assert_array_equal(sample_weights(again, 50, key), sample_weights(run, 50, key))


def test_a_package_module_spec_is_imported(ou_data, make_config):
    """``"package.module:NAME"``: here this test file, which pytest puts on the path."""
    own = {"module": f"{__name__}:Decay", "args": {"k": 2.0}, "fixed": ["level"],
           "R_hidden": [16, 16]}  # the tiny config's R_hidden = [] back at its default  # fmt: skip
    config = make_config(model=own)
    model, is_own = data_model(config.model, 0, 1, 0, jnp.float32)
    assert is_own and type(model).__name__ == "Decay"
    assert float(jnp.exp(model.log_k[0])) == pytest.approx(2.0)  # built with [model.args]
    layout = partition_of(model, is_own, Scaler.fit(ou_data, "none"), partition=config.partition,
                          model_options=config.model, likelihood=config.likelihood)  # fmt: skip
    assert layout.names == ("log_k[0]",)
    with pytest.raises(ConfigError, match="does not import"):
        fit(ou_data, make_config(model={**own, "module": "no_such_package.models:Decay"}))
