"""NUTS against the exact linear-Gaussian posterior, to Monte Carlo tolerance.

Tolerances are in units of the Monte Carlo standard error from the chains' own effective
sample size: means within 4 SE (``sd / sqrt(ESS)``), sds within 4 SE of an sd
(``1 / sqrt(2 ESS)`` relative), the correlation within 4 SE (``(1 - rho^2) / sqrt(ESS)``).
"""

import json

import numpy as np
import pytest
from conftest import tiny_config
from linear_gaussian import LINEAR_GAUSSIAN, exact_posterior, noisy_ou

from langevin_uq.config import Config
from langevin_uq.errors import ConfigError
from langevin_uq.posterior import EmpiricalPosterior
from langevin_uq.run import fit, load_run


@pytest.fixture(scope="module", params=[1.0, 0.25], ids=["beta=1", "beta=0.25"])
def fitted(request, tmp_path_factory):
    """NUTS on the linear-Gaussian problem; at beta = 0.25 its target is prior times the
    likelihood to the power 4, the law the Langevin sampler's and BBVI's loss + beta KL have."""
    method = {"kind": "nuts", "warmup": 300, "samples": 500, "chains": 2}
    train = {**LINEAR_GAUSSIAN["train"], "beta": request.param}
    config = tiny_config(**{**LINEAR_GAUSSIAN, "train": train}, method=method)
    run_dir = tmp_path_factory.mktemp("nuts") / "run"
    return fit(noisy_ou(), config, run_dir=run_dir), run_dir


def test_nuts_matches_the_exact_posterior(fitted):
    run, _ = fitted
    mean, cov = exact_posterior(run, noisy_ou())
    sd = np.sqrt(np.diag(cov))
    w = np.asarray(run.posterior.samples, np.float64)
    ess = np.min(np.asarray(load_run(fitted[1]).diagnostics["ess_min"]))
    assert ess > 100
    np.testing.assert_array_less(np.abs(w.mean(0) - mean), 4 * sd / np.sqrt(ess))
    np.testing.assert_allclose(w.std(0), sd, rtol=4 / np.sqrt(2 * ess))
    rho = cov[0, 1] / (sd[0] * sd[1])
    assert abs(np.corrcoef(w.T)[0, 1] - rho) < 4 * (1 - rho**2) / np.sqrt(ess)


def test_diagnostics_are_reported(fitted):
    run, run_dir = fitted
    diag = json.loads((run_dir / "nuts.json").read_text())
    assert diag == run.diagnostics
    assert diag["chains"] == 2 and diag["draws_per_chain"] == 500
    assert diag["r_hat_max"] < 1.05
    assert diag["divergences"] == 0
    assert diag["ess_per_second_min"] > 0
    with np.load(run_dir / "nuts.npz") as f:
        assert f["w"].shape == (2, 500, run.partition.n_stochastic)
        assert f["diverging"].shape == (2, 500)
    loaded = load_run(run_dir)
    assert isinstance(loaded.posterior, EmpiricalPosterior)
    np.testing.assert_array_equal(loaded.posterior.samples, run.posterior.samples)


@pytest.mark.parametrize(
    "changes",
    [{"likelihood": {"kind": "energy-score"}},
     {"partition": {"variant": "bll-reopt"}},
     {"train": {"beta": 0.0}}],
)  # fmt: skip
def test_nuts_refuses_what_it_cannot_sample(changes):
    raw = {"method": {"kind": "nuts"}, **changes}
    with pytest.raises(ConfigError, match="nuts"):
        Config.from_dict(raw)


def test_chains_run_in_parallel_on_several_devices(tmp_path, data_file, config_file):
    """With as many devices as chains, the chains run one per device (here: two host devices
    forced through XLA_FLAGS in a fresh process, as on a multi-GPU machine)."""
    import os
    import subprocess
    import sys

    config = tmp_path / "nuts.toml"
    method = '[method]\nkind = "nuts"\nwarmup = 20\nsamples = 10\nchains = 2\n'
    config.write_text(config_file.read_text() + '\n[likelihood]\nkind = "gaussian"\n\n' + method)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    run = tmp_path / "run"
    code = "from langevin_uq.cli import main; main()"
    args = ["fit", str(data_file), "--config", str(config), "--out", str(run), "--no-progress"]
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    diagnostics = json.loads((run / "nuts.json").read_text())
    assert diagnostics["chain_method"] == "parallel"
    with np.load(run / "nuts.npz") as f:
        assert f["w"].shape[:2] == (2, 10)
