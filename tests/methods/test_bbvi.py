"""BBVI against the exact linear-Gaussian posterior (tests/methods/linear_gaussian.py).

The Gaussian family contains the exact posterior, so the full-covariance guide must reach it;
the mean-field guide must reach the known mean-field optimum: the exact mean and variances
``1 / diag(precision)``. The guide is compared through its parameters (no sampling error);
what remains is the optimiser's noise, which the decaying rate keeps to ~3 %.
"""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from conftest import tiny_config
from linear_gaussian import LINEAR_GAUSSIAN, exact_posterior, noisy_ou

from langevin_uq.methods import bbvi
from langevin_uq.posterior import GaussianPosterior
from langevin_uq.run import fit, load_run, sample_weights


@pytest.fixture(scope="module", params=["bbvi-full", "bbvi-meanfield"])
def fitted(request, tmp_path_factory):
    config = tiny_config(**LINEAR_GAUSSIAN, method={"kind": request.param, "particles": 32})
    run_dir = tmp_path_factory.mktemp(request.param) / "run"
    return fit(noisy_ou(), config, run_dir=run_dir), run_dir


def test_guide_matches_the_exact_posterior(fitted):
    run, _ = fitted
    mean, cov = exact_posterior(run, noisy_ou())
    sd = np.sqrt(np.diag(cov))
    q = run.posterior
    assert isinstance(q, GaussianPosterior)
    tril = np.asarray(q.scale_tril, np.float64)
    q_cov = tril @ tril.T
    np.testing.assert_array_less(np.abs(np.asarray(q.loc) - mean) / sd, 0.1)
    if run.config.method.kind == "bbvi-full":
        np.testing.assert_allclose(np.sqrt(np.diag(q_cov)), sd, rtol=0.1)
        corr = q_cov[0, 1] / np.sqrt(q_cov[0, 0] * q_cov[1, 1])
        assert abs(corr - cov[0, 1] / (sd[0] * sd[1])) < 0.05
    else:
        np.testing.assert_array_equal(tril, np.diag(np.diag(tril)))
        np.testing.assert_allclose(np.diag(tril), 1 / np.sqrt(np.diag(np.linalg.inv(cov))),
                                   rtol=0.1)  # fmt: skip


def test_run_directory_round_trip(fitted):
    run, run_dir = fitted
    loaded = load_run(run_dir)
    np.testing.assert_array_equal(loaded.posterior.loc, run.posterior.loc)
    np.testing.assert_array_equal(loaded.posterior.scale_tril, run.posterior.scale_tril)
    w = np.asarray(sample_weights(loaded, 8, jr.key(0)))
    assert w.shape == (8, run.partition.n_weights)
    assert np.all(w[:, ~np.asarray(run.partition.stochastic_mask)] == w[0, ~np.asarray(
        run.partition.stochastic_mask)])  # fmt: skip
    with np.load(run_dir / "samples.npz") as s:
        assert s["w"].shape == (run.config.sampler.posterior_samples, run.partition.n_weights)
    assert (run_dir / "history.csv").read_text().count("\n") == run.config.train.epochs + 1


@pytest.mark.parametrize("full", [True, False])
def test_init_params_constrain_back(full):
    loc = jnp.asarray([0.5, -1.0, 2.0])
    params = bbvi.init_params(loc, 0.03, full, None)
    q = bbvi.posterior(params, full)
    np.testing.assert_allclose(q.loc, loc)
    np.testing.assert_allclose(q.scale_tril, 0.03 * np.eye(3), rtol=1e-5, atol=1e-7)


def test_bll_reopt_optimises_the_deterministic_weights(tmp_path):
    """With ``bll-reopt`` the guide covers the last layer and ``w_D`` is trained with it."""
    config = tiny_config(model={"R_hidden": [4]}, partition={"variant": "bll-reopt"},
                       method={"kind": "bbvi-meanfield", "particles": 8})  # fmt: skip
    run = fit(noisy_ou(), config, run_dir=tmp_path / "run")
    w_d_mle = np.asarray(run.partition.split(run.w_mle)[1])
    assert run.partition.n_stochastic == 5 and w_d_mle.size == 8
    assert not np.array_equal(np.asarray(run.w_d), w_d_mle)
    np.testing.assert_array_equal(load_run(tmp_path / "run").w_d, run.w_d)
    w = np.asarray(sample_weights(run, 4, jr.key(0)))
    np.testing.assert_array_equal(w[:, ~np.asarray(run.partition.stochastic_mask)][0], run.w_d)
