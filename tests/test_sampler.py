"""The Langevin sampler against exact answers: the OU path KL and a grid posterior."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from langevin_uq.config import Config
from langevin_uq.htransform import GaussianStart
from langevin_uq.prior import OUPrior
from langevin_uq.run import fit, sample_weights
from langevin_uq.sampler import (
    Drift,
    LangevinSampler,
    anneal_gamma,
    pseudo_time_grid,
)
from langevin_uq.systems.ou import OUSystem, ou_true_weights, simulate_ou


def _start(lam, centre, rank=None):
    """A Gaussian start with diagonal precision ``lam`` and centre (prior units)."""
    lam, centre = np.asarray(lam, np.float64), np.asarray(centre, np.float64)
    rank = lam.size if rank is None else rank
    order = np.argsort(lam)[::-1][:rank]
    q = np.eye(lam.size)[:, order]
    rest = lam.copy()
    rest[order] = 0.0
    f32 = jnp.float32
    return GaussianStart(jnp.asarray(centre, f32), jnp.asarray(q, f32),
                         jnp.asarray(lam[order], f32), jnp.asarray(rest, f32),
                         float(lam.max()))  # fmt: skip


def _exact_posterior(lam, centre, total):
    """The law at T of the prior OU from 0 tilted by the Gaussian likelihood (diagonal)."""
    v = 1 - np.exp(-2 * total)
    prec = 1 / v + lam
    return lam * centre / prec, 1 / prec, v


LAM, CENTRE = np.array([0.0, 3.0, 400.0]), np.array([0.0, 0.8, -0.3])


@pytest.mark.parametrize("rank", [3, 1])
def test_gaussian_tilt_draws_the_exact_posterior_and_its_kl(rank):
    """`GaussianTilt` is the exact h-transform: the law at T is prior x likelihood, whether a
    direction's precision sits in the low-rank part or the diagonal, and the path KL is the
    KL between the end laws (Girsanov: the h-transform's path KL is E log L - log Z)."""
    total = 4.0
    taus = pseudo_time_grid(200, total / 200, "geometric", 1e-3 / LAM.max())
    sampler = LangevinSampler(OUPrior(jnp.zeros(3), 1.0), taus, jnp.zeros(3), 0.0)
    drift = Drift(_start(LAM, CENTRE, rank), [4], key=jr.key(0))
    w, kl, _ = eqx.filter_jit(sampler.simulate)(drift, jr.key(1), 20000)
    w, kl = np.asarray(w, np.float64), np.asarray(kl, np.float64)
    mean, var, v = _exact_posterior(LAM, CENTRE, total)
    n = w.shape[0]
    assert np.all(np.abs(w.mean(0) - mean) < 4 * np.sqrt(var / n)), (w.mean(0), mean)
    # 4 standard errors of a variance (2.8 %) plus 2 % for the discretisation.
    assert np.all(np.abs(w.var(0) / var - 1) < 4 * np.sqrt(2 / n) + 0.02), (w.var(0), var)
    exact_kl = 0.5 * np.sum(var / v + mean**2 / v - 1 + np.log(v / var))
    se = kl.std(ddof=1) / np.sqrt(n)
    assert abs(kl.mean() - exact_kl) < 4 * se + 0.03 * exact_kl, (kl.mean(), exact_kl)


def test_the_sticking_gradient_vanishes_at_the_exact_drift():
    """At the exact h-transform of a Gaussian likelihood every path's log ratio plus data term
    is the same constant, so the sticking-the-landing gradient of the ELBO is zero for every key
    up to the grid's error, while the plain one is Monte Carlo noise (measured at 100 and 400
    steps: sd across keys 0.106 and 0.127 plain, 0.0097 and 0.0027 sticking; the mean, the
    grid's bias, 0.044-0.049 and 0.012-0.013 for both). Both have the same mean."""
    lam, centre = np.array([4.0, 4.0]), np.array([1.5, -0.5])
    drift = Drift(_start(lam, centre), [8], key=jr.key(0))
    sampler = LangevinSampler(OUPrior(jnp.zeros(2), 1.0), pseudo_time_grid(200, 0.02),
                              jnp.zeros(2), 1e-3)  # fmt: skip

    def loss(d, key, sticking):
        w, kl, _ = sampler.simulate(d, key, 64, sticking=sticking)
        return jnp.mean(0.5 * jnp.sum(lam * (w - centre) ** 2, -1) + kl)

    def gradients(sticking):
        keys = jr.split(jr.key(1), 16)
        grad = jax.vmap(lambda k: eqx.filter_grad(loss)(drift, k, sticking))(keys)
        leaves = jax.tree.leaves(eqx.filter(grad, eqx.is_array))
        return np.concatenate([np.asarray(x).reshape(16, -1) for x in leaves], axis=1)

    plain, sticking = gradients(False), gradients(True)
    spread = np.sqrt(np.sum(plain.var(0))), np.sqrt(np.sum(sticking.var(0)))
    assert spread[1] < spread[0] / 10, spread
    # same expectation: the difference of the means is within the plain one's standard error
    assert np.linalg.norm(plain.mean(0) - sticking.mean(0)) < 3 * spread[0] / np.sqrt(16)


def test_prior_start_follows_the_prior_ou_exactly():
    """With ``prior_start`` the chain is the prior's exact transition at any step size: the end
    law is N(m + e^-T (c - m), s^2 (1 - e^-2T) + eps^2 s^2 e^-2T) and the KL is ~0."""
    m, c, scale, eps, total = np.array([0.0, 0.5]), np.array([0.3, 0.4]), 0.2, 0.05, 2.0
    taus = pseudo_time_grid(10, total / 10, "uniform")
    sampler = LangevinSampler(OUPrior(jnp.asarray(m), scale), taus, jnp.asarray(c), eps)
    drift = Drift(_start([5.0, 1.0], [0.0, 0.0]), [4], prior_start=True, key=jr.key(0))
    w, kl, _ = sampler.simulate(drift, jr.key(3), 20000)
    w = np.asarray(w, np.float64)
    a = np.exp(-total)
    mean = m + a * (c - m)
    var = scale**2 * (1 - a**2) + (eps * scale * a) ** 2
    assert np.all(np.abs(w.mean(0) - mean) < 4 * np.sqrt(var / w.shape[0]))
    assert np.all(np.abs(w.var(0) / var - 1) < 4 * np.sqrt(2 / w.shape[0]))
    assert float(jnp.max(kl)) < 1e-4


def test_grid_ends_at_total_time():
    for schedule in ("uniform", "geometric"):
        taus = pseudo_time_grid(50, 0.02, schedule, final_dtau=1e-3)
        assert taus[0] == 0 and np.isclose(taus[-1], 1.0) and np.all(np.diff(taus) > 0)
    geometric = pseudo_time_grid(50, 0.02, "geometric", final_dtau=1e-3)
    assert np.isclose(np.diff(geometric)[-1], 1e-3)


def test_refined_grid_splits_every_step_and_keeps_the_drift():
    taus = pseudo_time_grid(20, 0.2, "geometric", 1e-3)
    sampler = LangevinSampler(OUPrior(jnp.zeros(3), 1.0), taus, jnp.zeros(3), 0.0)
    fine = sampler.refined()
    coarse_r, fine_r = np.asarray(sampler.remaining), np.asarray(fine.remaining)
    assert fine_r.shape == (41,) and np.all(np.diff(fine_r) < 0)
    np.testing.assert_allclose(fine_r[0::2], coarse_r, rtol=1e-6)
    assert fine_r[-2] == pytest.approx(0.5e-3) and fine.feature_step == sampler.feature_step
    drift = Drift(_start(LAM, CENTRE), [4], key=jr.key(0))
    u = jr.normal(jr.key(1), (5, 3))
    for r in (4.0, 0.3, 1e-3):
        np.testing.assert_array_equal(sampler.drift_correction(drift, u, jnp.asarray(r)),
                                      fine.drift_correction(drift, u, jnp.asarray(r)))  # fmt: skip


def test_discretisation_check_passes_a_fine_grid_and_flags_a_coarse_one():
    """The exact tilt on a fine geometric grid: twice the steps changes nothing beyond Monte
    Carlo error. On 4 uniform steps of 1 the last step's noise alone (sd 0.93 in prior units)
    is far wider than the posterior along the precision-400 direction (0.05): the law moves."""
    from langevin_uq.sample_quality import discretisation_check

    drift = Drift(_start(LAM, CENTRE), [4], key=jr.key(0))
    prior = OUPrior(jnp.zeros(3), 1.0)
    fine = LangevinSampler(prior, pseudo_time_grid(200, 0.02, "geometric", 2.5e-6), jnp.zeros(3),
                           0.0)  # fmt: skip
    good = discretisation_check(fine, drift, jr.key(2), n=8192)
    assert good["verdict"] is None and good["steps"] == 200, good
    assert good["mean_shift"] < good["mean_tolerance"] and good["sd_change"] < good["sd_tolerance"]
    coarse = LangevinSampler(prior, pseudo_time_grid(4, 1.0, "uniform"), jnp.zeros(3), 0.0)
    bad = discretisation_check(coarse, drift, jr.key(2), n=8192)
    assert bad["sd_change"] > 2 * bad["sd_tolerance"], bad  # measured 3.4x on 4 keys
    assert bad["verdict"].startswith("the pseudo-time grid is too coarse"), bad
    # Draws passed in set the count, and the tolerances follow it.
    given = jr.normal(jr.key(3), (512, 3))
    small = discretisation_check(fine, drift, jr.key(2), coarse=given)
    assert small["draws"] == 512
    assert small["sd_tolerance"] == pytest.approx(good["sd_tolerance"] * np.sqrt(8192 / 512))


def test_gamma_annealing():
    assert float(anneal_gamma(0, 3.0, 10)) == 3.0
    assert float(anneal_gamma(5, 3.0, 10)) == 2.0
    assert float(anneal_gamma(20, 3.0, 10)) == 1.0
    assert float(anneal_gamma(7, 3.0, 0)) == 1.0


HALF_WIDTH = 2.5


def _grid_posterior(data, sigma, prior_var, w_center):
    """Exact posterior of (w1, w2) on a grid for dx/dt = w1 x + w2 under Heun (as the model)."""
    from langevin_uq.model import build_model
    from langevin_uq.weights import make_partition

    model = build_model(n_outputs=1, n_inputs=0, hidden_state=0, R_hidden=[],
                        R_activation="tanh", observation="identity", Z_hidden=[],
                        Z_activation="softplus", key=jr.key(0))  # fmt: skip
    part = make_partition(model)
    t = jnp.asarray(data.t[0])
    x = jnp.zeros((t.shape[0], 0))
    y0 = jnp.asarray(data.y0[0])

    def loglik(w):
        pred = part.predict(w, t, x, y0)
        return -0.5 * jnp.sum((jnp.asarray(data.y) - pred[None]) ** 2) / sigma**2

    g1 = np.linspace(w_center[0] - HALF_WIDTH, w_center[0] + HALF_WIDTH, 501)
    g2 = np.linspace(w_center[1] - HALF_WIDTH, w_center[1] + HALF_WIDTH, 501)
    W = np.stack(np.meshgrid(g1, g2, indexing="ij"), -1).reshape(-1, 2)
    ll = np.asarray(jax.jit(jax.vmap(loglik))(jnp.asarray(W, jnp.float32)), np.float64)
    lp = ll - 0.5 * np.sum((W - w_center) ** 2, -1) / prior_var
    p = np.exp(lp - lp.max())
    p /= p.sum()
    mean = p @ W
    sd = np.sqrt(p @ (W - mean) ** 2)
    corr = (p @ np.prod(W - mean, axis=1)) / np.prod(sd)
    edges = p.reshape(501, 501)
    assert max(edges[[0, -1]].max(), edges[:, [0, -1]].max()) < 1e-6  # the grid holds it all
    return mean, sd, corr


# The second seed of each recovery check runs with `-m slow` (the suite's 15-minute budget).
@pytest.mark.parametrize("seed", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_gaussian_likelihood_recovers_exact_posterior(seed):
    """METHOD 7(a): with a known sigma the sampled law is the Bayesian posterior; issue 16
    item 4: a 2-weight ODE whose posterior correlation is -0.97, with the default sampler
    (fewer replicas and epochs only): sds within 5 %, correlation within 0.05.

    Seen (seed 2): sds +3.4 % / +2.8 %, correlation -0.973 as exact, means within 0.02 sd; the
    untrained start had sds -9 % / -12 % (Euler's first-order error at 100 steps, which
    training removes) and means 0.24 sd off."""
    system = OUSystem(theta_mean=1.0, theta_sd=0.0, mu_mean=1.0, mu_sd=0.0, n=8, n_times=16,
                      t_end=3.0)  # fmt: skip
    sigma = 0.1
    data = simulate_ou(system, jr.key(4), noise_sd=sigma)
    cfg = Config.from_dict({
        "data": {"scaling": "none", "validation_fraction": 0.0},
        "model": {"R_hidden": []},
        "sampler": {"replicas": 128},
        "likelihood": {"kind": "gaussian", "sigma": sigma},
        "train": {"epochs": 400, "seed": seed},
    })  # fmt: skip
    run = fit(data, cfg)
    w = np.asarray(sample_weights(run, 8000, jr.key(5)), np.float64)
    sampler = run.posterior.sampler
    _, prior_var = sampler.prior.transition(float(sampler.total_time), 0.0, cfg.sampler.init_noise)
    mean, sd, corr = _grid_posterior(
        data, sigma, float(prior_var[0]), np.asarray(run.w_mle, np.float64)
    )
    # Monte Carlo error of 8000 draws is ~1 % in the sds; the tolerances are the issue's.
    assert np.all(np.abs(w.mean(0) - mean) < 0.2 * sd), (w.mean(0), mean, sd)
    assert np.all(np.abs(w.std(0) / sd - 1) < 0.05), (w.std(0), sd)
    assert abs(np.corrcoef(w.T)[0, 1] - corr) < 0.05, (np.corrcoef(w.T)[0, 1], corr)


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_energy_score_recovers_the_law_of_the_data_generating_weights(seed):
    """METHOD 7(c), issue 2 item 2 at a size that runs in seconds: trained on the energy score,
    the sampled (w1, w2) reproduce the law of the weights behind the trajectories, within the
    issue's tolerances (sds 10 %, correlation 0.1, means 0.25 sd).

    Compared with the empirical law of the 1024 trajectories' own weights (all are trained on),
    so the data's sampling error is not in the comparison; 4096 draws add 1.1 % to an sd.
    Seen: sds +0.8 % / +6.3 %, correlation +0.008 (seed 0); +0.2 % / +3.5 %, +0.006 (seed 1).
    With 256 trajectories the path KL against the unit prior still widened the sds by up to
    15 %: the data term grows with N, the KL does not.
    """
    system = OUSystem(n=1024, n_times=20)
    data = simulate_ou(system, jr.key(seed))
    truth = np.asarray(ou_true_weights(system, jr.key(seed)), np.float64)
    cfg = Config.from_dict({
        "data": {"scaling": "none", "validation_fraction": 0.0},
        "model": {"R_hidden": []},
        "sampler": {"replicas": 128},
        "likelihood": {"kind": "energy-score"},
        "train": {"epochs": 1500, "mle_epochs": 500, "batch_trajectories": 256, "seed": seed},
    })  # fmt: skip
    w = np.asarray(sample_weights(fit(data, cfg), 4096, jr.key(9)), np.float64)
    sd = truth.std(0)
    assert np.all(np.abs(w.mean(0) - truth.mean(0)) < 0.25 * sd), (w.mean(0), truth.mean(0))
    assert np.all(np.abs(w.std(0) / sd - 1) < 0.1), (w.std(0), sd)
    corr, corr_truth = np.corrcoef(w.T)[0, 1], np.corrcoef(truth.T)[0, 1]
    assert abs(corr - corr_truth) < 0.1, (corr, corr_truth)


def test_last_steps_below_float32_resolution_at_t_are_kept():
    """At T = 4, float32 resolves pseudo-times only to 5e-7: steps of 1e-7 would vanish if the
    grid were stored as tau_k, not T - tau_k."""
    taus = pseudo_time_grid(400, 0.01, "geometric", 1e-7)
    sampler = LangevinSampler(OUPrior(jnp.zeros(2), 1.0), taus, jnp.zeros(2, jnp.float32), 0.01)
    steps = np.asarray(sampler.remaining[:-1] - sampler.remaining[1:])
    np.testing.assert_allclose(steps, np.diff(taus), rtol=1e-5)
    drift = Drift(_start([1e6, 1.0], [0.1, 0.0]), [8], key=jr.key(0))
    w, kl, _ = sampler.simulate(drift, jr.key(1), 64)
    assert np.all(np.isfinite(w)) and np.all(np.isfinite(kl))
