"""The h-transform starting drifts against exact posteriors and exact h-transforms."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from conftest import tiny_config
from methods.linear_gaussian import LINEAR_GAUSSIAN, exact_posterior, noisy_ou
from test_sampler import _start

from langevin_uq.config import Config
from langevin_uq.errors import ConfigError
from langevin_uq.htransform import (
    GaussNewtonTransform,
    calibrate_start,
    choose_rank,
    gaussian_start,
)
from langevin_uq.model import build_model
from langevin_uq.prior import OUPrior
from langevin_uq.problem import GroupInputs, predict_groups
from langevin_uq.run import fit, sample_weights
from langevin_uq.sampler import Drift
from langevin_uq.weights import make_partition


def test_gaussian_start_splits_the_gauss_newton_matrix():
    """``Lambda = (J S)^T D (J S)``: its top eigenpairs (those >= 1: informed) plus the rest of
    its diagonal, from either Gram matrix (fewer or more predictions than weights)."""
    rng = np.random.default_rng(0)
    for n_pred in (3, 12):
        jac = rng.normal(size=(n_pred, 6))
        precision = rng.uniform(0.5, 50.0, size=n_pred)
        scale = jnp.asarray(rng.uniform(0.2, 2.0, size=6), jnp.float32)
        start = gaussian_start(jac, precision, jnp.zeros(6, jnp.float32), scale, max_rank=32)
        b = np.sqrt(precision)[:, None] * jac * np.asarray(scale, np.float64)
        lam_full = np.sort(np.linalg.eigvalsh(b.T @ b))[::-1]
        rank = int(np.sum(lam_full >= 1.0))
        assert start.eigvals.shape == (max(rank, 2),)
        np.testing.assert_allclose(np.asarray(start.eigvals), lam_full[: max(rank, 2)],
                                   rtol=1e-4, atol=1e-4)  # fmt: skip
        q = np.asarray(start.eigvecs, np.float64)
        approx = q @ np.diag(np.asarray(start.eigvals)) @ q.T + np.diag(np.asarray(start.diag))
        np.testing.assert_allclose(np.diag(approx), np.diag(b.T @ b), rtol=1e-4)
        assert np.isclose(start.max_precision, lam_full[0], rtol=1e-6)
    assert choose_rank(np.array([100.0, 5.0, 0.5]), 10, 32) == 2
    assert choose_rank(np.array([100.0, 5.0, 3.0, 2.0]), 10, 3) == 3


def test_guided_starts_are_refused_where_they_have_no_meaning():
    for kind in ("energy-score", "marginal-mixture"):
        with pytest.raises(ConfigError, match="gauss-newton"):
            Config.from_dict({"sampler": {"drift_init": "gauss-newton"},
                              "likelihood": {"kind": kind}})  # fmt: skip
    with pytest.raises(ConfigError, match="drift_init"):
        Config.from_dict({"sampler": {"drift_init": "mle"}})


@pytest.mark.parametrize("init", ["laplace", "gauss-newton"])
def test_guided_start_is_the_posterior_of_a_linear_gaussian_model_before_training(init):
    """End to end (the guide built after the MLE, the transform, the sampler): where the model
    is linear in the stochastic weights both starts are already exact, so a fit with no
    training epochs samples the exact posterior (training with the guide is tested in
    `test_run`). The pre-fit runs 4000 epochs so that the MLE
    is the data term's minimum, which the Laplace start takes it to be (after 500 epochs the
    draws' mean sat 0.5 sd from the exact one); the Gauss-Newton start uses the residuals at
    each replica and needs no converged pre-fit, so it keeps the default 500 epochs.

    A span of 4 prior relaxation times (the prior's law at T is within e^-8 of stationary) and
    400 steps (about 1 % discretisation error in the covariance, see above); 20000 draws add
    0.5 % to an sd and 0.007 to a correlation near 0.
    """
    sampler = {"replicas": 8, "steps": 400, "dtau": 0.01, "final_dtau": 1e-7, "drift_init": init}
    train = {**LINEAR_GAUSSIAN["train"], "epochs": 0}
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
                        Z_activation="tanh", key=jr.key(0))  # fmt: skip
    partition = make_partition(model)
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
    form. Its derivative in ``w`` too, with ``x`` and ``J`` moving with ``w``: training
    differentiates through the guide, and only the whole derivative makes that the ELBO's
    gradient (with them held fixed, `bench/guide_gradient.py` measured a directional derivative
    of the ELBO 0.31x its central difference on a 33-weight NODE)."""
    jax.config.update("jax_enable_x64", True)
    try:
        partition, w0, inputs = _small_node(groups)
        w0 = w0.astype(jnp.float64)
        inputs = jax.tree.map(lambda a: a.astype(jnp.float64), inputs)
        rng = np.random.default_rng(groups)
        n_traj = 3 * groups
        group = jnp.asarray(np.arange(n_traj) % groups)
        # data of a nearby model, where every Gauss-Newton step lowers the objective (the
        # transform takes it whole; see the damping test below)
        y_true = predict_groups(partition, w0 + 0.2 * jnp.asarray(rng.normal(size=w0.shape)),
                                inputs)  # fmt: skip
        y = y_true[group] + 0.1 * jnp.asarray(rng.normal(size=(n_traj, 4, 1)))
        sigma, beta, s = jnp.asarray([0.3]), 0.5, 0.8
        guide = GaussNewtonTransform.from_data(partition, inputs, jnp.zeros(0), y, group,
                                               sigma, beta, iterations)  # fmt: skip
        prior_mean = w0 + 0.1
        w = w0 + 0.3 * jnp.asarray(rng.normal(size=w0.shape))
        remaining = jnp.asarray(0.37)

        def predict(x):
            return predict_groups(partition, x, inputs).ravel()

        a = jnp.exp(-remaining)
        v = s**2 * (1 - a**2)
        y_bar = jnp.asarray(np.stack([np.asarray(y)[np.asarray(group) == g].mean(0)
                                      for g in range(groups)]).ravel())  # fmt: skip
        noise = jnp.diag(jnp.full(groups * 4, sigma[0] ** 2 * beta / 3.0))

        def drift(w):
            """``2 s grad_z log h(z)`` at ``z = w``, ``h`` linearised at ``x(w)``."""
            mu0 = prior_mean + a * (w - prior_mean)
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

            return 2 * s * jax.grad(log_h)(w)

        # In prior units u = (w - prior_mean) / s: dg_u/du = s dg_u/dw.
        prior = OUPrior(prior_mean, s)
        u = prior.whiten(w)
        # jitted: run op by op, the nested derivatives of the ODE solve took 17-33 s a case
        g, dg = jax.jit(lambda u: (guide(u, remaining, prior),
                                   jax.jacfwd(guide)(u, remaining, prior)))(u)  # fmt: skip
        ref, dref = jax.jit(lambda w: (drift(w), s * jax.jacfwd(drift)(w)))(w)
        np.testing.assert_allclose(g, ref, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(dg, dref, rtol=1e-7, atol=1e-9)
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
    prior = OUPrior(w0, 1.0)
    np.testing.assert_allclose(guide(prior.whiten(w), jnp.asarray(0.0), prior),
                               2 * jax.grad(log_lik)(w), rtol=2e-5, atol=1e-5)  # fmt: skip


def test_the_guide_moves_a_replica_far_from_the_data_by_at_most_three_conditional_sds():
    """Data 500 noise sds from the predictions: the Kalman mean of ``u_T`` would lie far outside
    ``N(a u, v I)``; the guide holds it within `NEWTON_LIMIT` sds ``sqrt(v)`` per weight, so
    its drift ``2 a (m - a u) / v`` is at most ``2 a 3 / sqrt(v)``, and reaches that bound."""
    from langevin_uq.htransform import NEWTON_LIMIT

    partition, w0, inputs = _small_node(1)
    y = jnp.full((2, 4, 1), 50.0)
    prior = OUPrior(w0, 1.0)
    remaining = jnp.asarray(0.5)
    a, v = np.exp(-0.5), 1 - np.exp(-1.0)
    bound = 2 * a * NEWTON_LIMIT / np.sqrt(v)
    for iterations in (0, 1):
        guide = GaussNewtonTransform.from_data(partition, inputs, jnp.zeros(0), y,
                                               jnp.zeros(2, int), jnp.asarray([0.1]), 1.0,
                                               iterations)  # fmt: skip
        g = np.abs(np.asarray(guide(jnp.zeros_like(w0), remaining, prior)))
        assert np.all(np.isfinite(g)) and g.max() <= bound * (1 + 1e-5)
        assert g.max() >= 0.999 * bound


def test_the_guide_at_a_replica_whose_model_overflows_is_zero_and_leaves_gradients_finite():
    from blowup import INPUTS, Riccati

    from langevin_uq.htransform import guide_drift

    partition = make_partition(Riccati(jnp.zeros(1)))
    y = jnp.ones((2, 9, 1))
    guide = GaussNewtonTransform.from_data(partition, INPUTS, jnp.zeros(0), y,
                                           jnp.zeros(2, int), jnp.ones(1) * 0.1, 1.0)  # fmt: skip
    prior = OUPrior(jnp.zeros(1), 1.0)
    u = jnp.array([[0.1], [50.0]])
    g = eqx.filter_jit(guide_drift)(u, guide, jnp.asarray(0.5), prior)
    assert np.isfinite(g[0, 0]) and g[1, 0] == 0.0
    np.testing.assert_array_equal(guide.overflows(prior.unwhiten(u)), [False, True])
    grad = jax.jit(jax.grad(lambda u: jnp.sum(guide_drift(u, guide, jnp.asarray(0.5), prior))))(u)
    assert np.all(np.isfinite(grad)) and grad[1, 0] == 0.0


def test_the_guide_never_points_where_its_own_objective_is_higher():
    """Far from the data a linearisation proposes Gauss-Newton steps that raise the objective
    of ``u_T`` given ``u`` (misfit plus ``|x - a u|^2 / 2v``); the guide's mean ``m = a u + v g /
    (2 a)`` never does, while the undamped Kalman step from ``a u`` does for some replicas."""
    partition, w0, inputs = _small_node(1)
    rng = np.random.default_rng(0)
    y = jnp.asarray(3.0 * rng.normal(size=(3, 4, 1)))  # far from anything the NODE predicts
    guide = GaussNewtonTransform.from_data(partition, inputs, jnp.zeros(0), y, jnp.zeros(3, int),
                                           jnp.asarray([0.1]), 1.0, 1)  # fmt: skip
    prior = OUPrior(w0, 1.0)
    remaining = jnp.asarray(0.5)
    a, v = jnp.exp(-remaining), -jnp.expm1(-2 * remaining)
    u = jnp.asarray(2.0 * rng.normal(size=(64, w0.shape[0])), jnp.float32)

    def predict(x):
        return predict_groups(partition, prior.unwhiten(x), inputs).ravel()

    def objective(x, mu):
        misfit = 0.5 * jnp.sum(guide.precision.ravel() * (predict(x) - guide.target.ravel()) ** 2)
        return misfit + 0.5 * jnp.sum((x - mu) ** 2) / v

    def undamped(mu):
        jac = jax.jacfwd(predict)(mu)
        noise = jnp.diag(1.0 / guide.precision.ravel())
        return mu + v * jac.T @ jnp.linalg.solve(noise + v * jac @ jac.T,
                                                 guide.target.ravel() - predict(mu))  # fmt: skip

    mu = a * u
    m = mu + v * jax.jit(jax.vmap(guide, in_axes=(0, None, None)))(u, remaining, prior) / (2 * a)
    objectives = jax.jit(jax.vmap(objective))
    at_mu = objectives(mu, mu)
    assert np.all(np.asarray(objectives(m, mu)) <= np.asarray(at_mu) * (1 + 1e-5))
    raised = np.asarray(objectives(jax.jit(jax.vmap(undamped))(mu), mu)) > np.asarray(at_mu)
    assert raised.sum() >= 5, raised.sum()


def test_calibrate_start_takes_the_lowest_loss():
    drift = Drift(_start([0.0, 0.0], [0.0, 0.0]), [4], key=jr.key(0))

    def loss(d):  # lowest where the extra precision is 10
        return (jnp.log10(jnp.exp(d.tilt.log_diag[0])) - 1.0) ** 2

    chosen, extra, tried = calibrate_start(drift, loss, max_precision=1e3)
    assert extra == 10.0 and np.isclose(float(jnp.exp(chosen.tilt.log_diag[0])), 10.0)
    assert max(t[0] for t in tried) == 1e3  # nothing above the data's largest precision
    # ... or above what the last step resolves, 0.01 / final_dtau, where that is more
    _, _, tried = calibrate_start(drift, loss, max_precision=5.0, final_dtau=1e-5)
    assert max(t[0] for t in tried) == 1e3
