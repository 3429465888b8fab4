"""Issue 16's test matrix: the default configuration fits the library's own systems.

{OU, Schloegl, linear-Gaussian} x {gaussian, energy-score} x {built-in NODE 1-16-16-1, linear
right-hand side}, each with the default config except fewer replicas, pseudo-time steps and
epochs, and no ``ksd.json`` (tested in `test_sample_quality`; and, for the linear model,
``R_hidden = []``): the fit must not diverge, its draws must
be finite, the training loss must not rise from the first epochs to the last (Monte Carlo noise
aside), and where an exact answer exists the draws must recover it (the linear model on
noisy linear-Gaussian data, gaussian likelihood: the grid posterior of `test_sampler`).
"""

import itertools

import jax.random as jr
import numpy as np
import pytest
from test_sampler import _grid_posterior

from langevin_uq.config import Config
from langevin_uq.run import fit, sample_weights
from langevin_uq.rundir import read_history
from langevin_uq.systems.ou import OUSystem, simulate_ou
from langevin_uq.systems.schlogl import SchloglSystem, simulate_schlogl

SIGMA = 0.1


def _data(system: str):
    if system == "ou":
        return simulate_ou(OUSystem(n=64, n_times=20), jr.key(0))
    if system == "schlogl":
        return simulate_schlogl(SchloglSystem(n=64, n_times=21), jr.key(0))
    # linear-Gaussian: one relaxation with observation noise, so the posterior is epistemic
    law = OUSystem(theta_mean=1.0, theta_sd=0.0, mu_mean=1.0, mu_sd=0.0, n=8, n_times=16,
                   t_end=3.0)  # fmt: skip
    return simulate_ou(law, jr.key(4), noise_sd=SIGMA)


CASES = list(itertools.product(["ou", "schlogl", "linear-gaussian"],
                               ["gaussian", "energy-score"], ["node", "linear"]))  # fmt: skip


@pytest.fixture(scope="module")
def datasets():
    return {name: _data(name) for name in ("ou", "schlogl", "linear-gaussian")}


@pytest.mark.parametrize(("system", "kind", "model"), CASES)
def test_the_default_config_fits_without_divergence(system, kind, model, datasets, tmp_path):
    data = datasets[system]
    config = Config().replace(
        likelihood={"kind": kind},
        sampler={"replicas": 32, "steps": 20, "posterior_samples": 64},
        train={"epochs": 40, "mle_epochs": 200, "checkpoint_every": 40, "diagnostics": False},
    )
    if model == "linear":
        config = config.replace(model={"R_hidden": []})
    run = fit(data, config, run_dir=tmp_path / "run")
    assert run.epoch == 40
    w = np.asarray(sample_weights(run, 256, jr.key(1)))
    assert np.all(np.isfinite(w))
    loss = np.array([row[1] for row in read_history(tmp_path / "run" / "history.csv")])
    assert np.all(np.isfinite(loss))
    first, last = loss[:10].mean(), loss[-10:].mean()
    spread = loss[:10].std() + loss[-10:].std()
    assert last <= first + spread, (first, last)


def test_the_default_config_recovers_an_exact_posterior(datasets):
    """The linear model on the linear-Gaussian data with the gaussian likelihood (known sigma),
    default sampler with 64 replicas and 300 epochs: the grid posterior's sds within 10 % and
    its correlation (-0.97) within 0.05 (the full-size check is in `test_sampler`)."""
    data = datasets["linear-gaussian"]
    config = Config().replace(
        data={"scaling": "none", "validation_fraction": 0.0},
        model={"R_hidden": []},
        likelihood={"kind": "gaussian", "sigma": SIGMA},
        sampler={"replicas": 64},
        train={"epochs": 300},
    )
    run = fit(data, config)
    w = np.asarray(sample_weights(run, 4000, jr.key(5)), np.float64)
    mean, sd, corr = _grid_posterior(data, SIGMA, 1.0, np.asarray(run.w_mle, np.float64))
    assert np.all(np.abs(w.mean(0) - mean) < 0.2 * sd), (w.mean(0), mean, sd)
    assert np.all(np.abs(w.std(0) / sd - 1) < 0.10), (w.std(0), sd)
    assert abs(np.corrcoef(w.T)[0, 1] - corr) < 0.05, (np.corrcoef(w.T)[0, 1], corr)
