"""The h-transform starting drifts against exact posteriors and exact h-transforms."""

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
from langevin_uq.htransform import GaussNewtonTransform, LaplaceTransform, data_term_hessian
from langevin_uq.model import build_model
from langevin_uq.prior import OUPrior
from langevin_uq.problem import GroupInputs, predict_groups
from langevin_uq.run import fit, sample_weights
from langevin_uq.sampler import Drift, LangevinSampler, pseudo_time_grid
from langevin_uq.weights import make_partition

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
    drift = Drift(3, [4], time_dependent=True, guide=laplace, key=jr.key(0))
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


def test_guided_starts_are_refused_where_they_have_no_meaning():
    with pytest.raises(ConfigError, match="energy score"):
        Config.from_dict({"sampler": {"drift_init": "laplace"},
                          "likelihood": {"kind": "energy-score"}})  # fmt: skip
    for kind in ("energy-score", "marginal-mixture"):
        with pytest.raises(ConfigError, match="gauss-newton"):
            Config.from_dict({"sampler": {"drift_init": "gauss-newton"},
                              "likelihood": {"kind": kind}})  # fmt: skip
    for init in ("laplace", "gauss-newton"):
        with pytest.raises(ConfigError, match="beta"):
            Config.from_dict({"sampler": {"drift_init": init}, "train": {"beta": 0.0},
                              "likelihood": {"kind": "gaussian"}})  # fmt: skip
    with pytest.raises(ConfigError, match="drift_init"):
        Config.from_dict({"sampler": {"drift_init": "mle"}})


@pytest.mark.parametrize("init", ["laplace", "gauss-newton"])
def test_guided_start_is_the_posterior_of_a_linear_gaussian_model_before_training(init):
    """End to end (the guide built after the MLE, the transform, the sampler): where the model
    is linear in the stochastic weights both starts are already exact, so a fit of one epoch at
    a negligible rate samples the exact posterior. The pre-fit runs 4000 epochs so that the MLE
    is the data term's minimum, which the Laplace start takes it to be (after 500 epochs the
    draws' mean sat 0.5 sd from the exact one); the Gauss-Newton start uses the residuals at
    each replica and needs no converged pre-fit, so it keeps the default 500 epochs.

    A span of 4 prior relaxation times (the prior's law at T is within e^-8 of stationary) and
    400 steps (about 1 % discretisation error in the covariance, see above); 20000 draws add
    0.5 % to an sd and 0.007 to a correlation near 0.
    """
    sampler = {"replicas": 8, "steps": 400, "dtau": 0.01, "final_dtau": 1e-7, "drift_init": init}
    train = {**LINEAR_GAUSSIAN["train"], "epochs": 1, "lr": 1e-9}
    if init == "laplace":
        train["mle_epochs"] = 4000
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


def _small_node(groups: int):
    """A 1-3-1 tanh NODE (10 weights, all stochastic) and inputs of ``groups`` groups x 4
    times: 1 group gives fewer predictions than weights, 6 groups more (the transform's two
    ways of forming the Jacobian)."""
    model = build_model(n_outputs=1, n_inputs=0, hidden_state=0, R_hidden=[3],
                        R_activation="tanh", observation="identity", Z_hidden=[],
                        Z_activation="tanh", substeps=1, key=jr.key(0))  # fmt: skip
    partition = make_partition(model, "full")
    t = jnp.tile(jnp.linspace(0.0, 1.5, 4), (groups, 1))
    inputs = GroupInputs(t=t, x=jnp.zeros((groups, 4, 0)),
                         y0=jnp.linspace(-1.0, 1.0, groups)[:, None])  # fmt: skip
    return partition, partition.flatten(model), inputs


@pytest.mark.parametrize(("groups", "iterations"), [(1, 0), (1, 2), (6, 1)])
def test_gauss_newton_transform_is_the_h_transform_of_the_linearised_model(groups, iterations):
    """Against ``2 grad_w log N(y_bar; y_hat(x) + J (mu(w) - x), D^-1 + v J J^T)`` with ``J``
    at ``x``, the h-transform of the model linearised at ``x``, written as a Gaussian density
    and differentiated by autodiff (no push-through identity, no eigendecomposition); ``x``
    starts at ``mu`` and each iteration is the Kalman update of ``w_T``'s mean in covariance
    form. Its derivative in ``w`` too (``J`` and ``x`` held fixed)."""
    jax.config.update("jax_enable_x64", True)
    try:
        partition, w0, inputs = _small_node(groups)
        w0 = w0.astype(jnp.float64)
        inputs = jax.tree.map(lambda a: a.astype(jnp.float64), inputs)
        rng = np.random.default_rng(groups)
        n_traj = 3 * groups
        group = jnp.asarray(np.arange(n_traj) % groups)
        y = jnp.asarray(rng.normal(size=(n_traj, 4, 1)))
        sigma, beta, s = jnp.asarray([0.3]), 0.5, 0.8
        guide = GaussNewtonTransform.from_data(partition, inputs, jnp.zeros(0), y, group,
                                               sigma, beta, iterations)  # fmt: skip
        prior_mean = w0 + 0.1
        w = w0 + 0.3 * jnp.asarray(rng.normal(size=w0.shape))
        remaining = jnp.asarray(0.37)

        def predict(x):
            return predict_groups(partition, x, inputs).ravel()

        a = jnp.exp(-remaining / s**2)
        v = s**2 * (1 - a**2)
        mu0 = prior_mean + a * (w - prior_mean)
        y_bar = jnp.asarray(np.stack([np.asarray(y)[np.asarray(group) == g].mean(0)
                                      for g in range(groups)]).ravel())  # fmt: skip
        noise = jnp.diag(jnp.full(groups * 4, sigma[0] ** 2 * beta / 3.0))
        x = mu0
        for _ in range(iterations):
            jac = jax.jacfwd(predict)(x)
            innovation = y_bar - predict(x) - jac @ (mu0 - x)
            x = mu0 + v * jac.T @ jnp.linalg.solve(noise + v * jac @ jac.T, innovation)
        jac = jax.jacfwd(predict)(x)
        cov = noise + v * jac @ jac.T

        def log_h(z):
            mean = predict(x) + jac @ (prior_mean + a * (z - prior_mean) - x)
            return jax.scipy.stats.multivariate_normal.logpdf(y_bar, mean, cov)

        np.testing.assert_allclose(guide(w, remaining, prior_mean, s), 2 * jax.grad(log_h)(w),
                                   rtol=1e-8, atol=1e-10)  # fmt: skip
        np.testing.assert_allclose(jax.jacfwd(guide)(w, remaining, prior_mean, s),
                                   2 * jax.hessian(log_h)(w), rtol=1e-8, atol=1e-10)  # fmt: skip
    finally:
        jax.config.update("jax_enable_x64", False)


def test_gauss_newton_transform_is_the_exact_score_at_the_end():
    """At ``tau = T`` (``v = 0``, ``a = 1``) the transform is ``2 grad log L(w)`` of the
    Gaussian likelihood itself, whatever the model's curvature."""
    partition, w0, inputs = _small_node(1)
    y = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 1)), jnp.float32)
    group = jnp.zeros(2, int)
    guide = GaussNewtonTransform.from_data(partition, inputs, jnp.zeros(0), y, group,
                                           jnp.asarray([0.5]), 1.0)  # fmt: skip

    def log_lik(x):
        return -0.5 * jnp.sum((y - predict_groups(partition, x, inputs)[group]) ** 2) / 0.25

    w = w0 + 0.2
    np.testing.assert_allclose(guide(w, jnp.asarray(0.0), w0, 1.0),
                               2 * jax.grad(log_lik)(w), rtol=2e-5, atol=1e-5)  # fmt: skip
