"""The Laplace h-transform against the exact posterior of a quadratic likelihood."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from baselines.linear_gaussian import LINEAR_GAUSSIAN, exact_posterior, noisy_ou
from conftest import tiny_config

from langevin_uq.config import Config
from langevin_uq.errors import ConfigError
from langevin_uq.laplace import LaplaceTransform, data_term_hessian
from langevin_uq.prior import OUPrior
from langevin_uq.run import fit, sample_weights
from langevin_uq.sampler import Drift, LangevinSampler, pseudo_time_grid

S = 0.7
PRIOR_MEAN, START, CENTRE = (
    np.array([0.0, 0.5, -0.2]),
    np.array([0.3, 0.4, 0.1]),
    np.array([0.5, 0.2, 0.0]),
)
EIGVALS = np.array([0.0, 4.0, 400.0])


def _hessian():
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    return q @ np.diag(EIGVALS) @ q.T


def _exact_posterior(hessian, total):
    """Prior's law at ``total`` (from a point at START) times exp(-(w - m)^T H (w - m) / 2)."""
    a = np.exp(-total / S**2)
    mean_t, var_t = PRIOR_MEAN + a * (START - PRIOR_MEAN), S**2 * (1 - a**2)
    cov = np.linalg.inv(np.eye(3) / var_t + hessian)
    mean = cov @ (mean_t / var_t + hessian @ CENTRE)
    kl = 0.5 * (np.trace(cov) / var_t + (mean - mean_t) @ (mean - mean_t) / var_t - 3
                + 3 * np.log(var_t) - np.log(np.linalg.det(cov)))  # fmt: skip
    return mean, cov, kl


def test_laplace_transform_samples_the_posterior_of_a_quadratic_likelihood():
    """With no trained part the sampler's law at T is prior times the quadratic likelihood, and
    its path KL is that law's KL to the prior's (the h-transform is the optimal drift).

    Informed directions with eigenvalues 4 and 400 and one flat direction; prior mean, start
    and quadratic centre all different. Euler-Maruyama on the geometric grid errs at first
    order in 1 / steps: +9 % / +5 % / +2.3 % / +1.1 % in the covariance at 50 / 100 / 200 / 400
    steps (seen in float64 with 2e5 replicas). At 400 steps, 1e5 replicas add 0.5 % (one se).
    """
    steps = 400
    taus = pseudo_time_grid(steps, 1.0 / steps, "geometric", 1e-7)
    sampler = LangevinSampler(OUPrior(jnp.asarray(PRIOR_MEAN), S), taus,
                              jnp.asarray(START), 1e-4)  # fmt: skip
    centre = jnp.asarray(CENTRE, jnp.float32)
    laplace = LaplaceTransform.from_hessian(_hessian(), centre)
    drift = Drift(3, [4], time_dependent=True, laplace=laplace, key=jr.key(0))
    w, kl, _ = eqx.filter_jit(sampler.simulate)(drift, jr.key(1), 100_000)
    w, kl = np.asarray(w, np.float64), np.asarray(kl, np.float64)
    mean, cov, kl_exact = _exact_posterior(_hessian(), 1.0)
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(w.mean(0) - mean) < 0.05 * sd), (w.mean(0), mean)
    relative = (np.cov(w.T) - cov) / np.outer(sd, sd)
    assert np.all(np.abs(relative) < 0.025), relative
    assert abs(kl.mean() / kl_exact - 1) < 0.03, (kl.mean(), kl_exact)


def test_flat_directions_leave_the_prior_drift_unchanged():
    laplace = LaplaceTransform.from_hessian(np.diag([0.0, 9.0]), jnp.zeros(2))
    w = jnp.array([0.3, -0.4])
    g = laplace(w, jnp.asarray(0.2), jnp.zeros(2), 1.0)
    # w[1] = -0.4 lies below the centre 0: pulled up, and only there.
    assert float(g[0]) == 0.0 and float(g[1]) > 0


def test_negative_curvature_is_dropped():
    laplace = LaplaceTransform.from_hessian(np.diag([-3.0, 2.0]), jnp.zeros(2))
    assert np.allclose(np.sort(np.asarray(laplace.eigvals)), [0.0, 2.0])


def test_data_term_hessian_is_the_hessian_in_column_batches():
    a = jnp.asarray(np.random.default_rng(1).normal(size=(5, 5)), jnp.float32)

    def f(w):
        return jnp.sum(jnp.tanh(a @ w) ** 2) + 0.5 * jnp.sum(w**4)

    w = jnp.linspace(-0.5, 0.7, 5)
    h = data_term_hessian(f, w, batch=2)
    assert np.allclose(h, np.asarray(jax.hessian(f)(w)), rtol=1e-5, atol=1e-5)


def test_laplace_start_is_refused_where_it_has_no_meaning():
    with pytest.raises(ConfigError, match="energy score"):
        Config.from_dict({"sampler": {"drift_init": "laplace"},
                          "likelihood": {"kind": "energy-score"}})  # fmt: skip
    with pytest.raises(ConfigError, match="beta"):
        Config.from_dict({"sampler": {"drift_init": "laplace"}, "train": {"beta": 0.0}})
    with pytest.raises(ConfigError, match="drift_init"):
        Config.from_dict({"sampler": {"drift_init": "mle"}})


def test_laplace_start_is_the_posterior_of_a_linear_gaussian_model_before_training():
    """End to end (the data term's Hessian at the MLE, the transform, the sampler): where the
    model is linear in the stochastic weights the Laplace start is already exact, so a fit of
    one epoch at a negligible rate samples the exact posterior. The pre-fit runs 4000 epochs so
    that the MLE is the data term's minimum, which the Laplace start takes it to be (after 500
    epochs the draws' mean sat 0.5 sd from the exact one).

    A span of 4 prior relaxation times (the prior's law at T is within e^-8 of stationary) and
    400 steps (about 1 % discretisation error in the covariance, see above); 20000 draws add
    0.5 % to an sd and 0.007 to a correlation near 0.
    """
    sampler = {"replicas": 8, "steps": 400, "dtau": 0.01, "final_dtau": 1e-7,
               "drift_init": "laplace"}  # fmt: skip
    train = {**LINEAR_GAUSSIAN["train"], "epochs": 1, "lr": 1e-9, "mle_epochs": 4000}
    config = tiny_config(**{**LINEAR_GAUSSIAN, "train": train, "sampler": sampler})
    run = fit(noisy_ou(), config)
    w = np.asarray(sample_weights(run, 20_000, jr.key(3)), np.float64)
    w = w[:, np.asarray(run.partition.stochastic_mask)]
    mean, cov = exact_posterior(run, noisy_ou())
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(w.mean(0) - mean) < 0.05 * sd), (w.mean(0), mean, sd)
    assert np.all(np.abs(w.std(0) / sd - 1) < 0.03), (w.std(0), sd)
    rho = cov[0, 1] / np.prod(sd)
    assert abs(np.corrcoef(w.T)[0, 1] - rho) < 0.03, (np.corrcoef(w.T)[0, 1], rho)
