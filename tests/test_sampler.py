"""The Langevin sampler against exact answers: the OU path KL and a grid posterior."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy.integrate import quad

from langevin_uq.config import Config
from langevin_uq.prior import OUPrior
from langevin_uq.run import fit, sample_weights
from langevin_uq.sampler import Drift, LangevinSampler, anneal_gamma, pseudo_time_grid
from langevin_uq.systems.ou import OUSystem, ou_true_weights, simulate_ou

# Two OU processes per coordinate: prior dw = -(w - m)/s^2 dtau + sqrt(2) dB and posterior
# dw = -a (w - c) dtau + sqrt(2) dB, written as the sampler's f_p + g with a linear g.
S, M, CENTER, EPS = 1.0, np.array([0.0, 0.5]), np.array([0.3, 0.4]), 0.05
A, C = np.array([3.0, 6.0]), np.array([0.8, -0.2])


def _linear_ou_sampler(taus):
    sampler = LangevinSampler(
        prior=OUPrior(mean=jnp.asarray(M), scale=S),
        taus=jnp.asarray(taus),
        init_center=jnp.asarray(CENTER),
        init_noise=EPS,
    )
    drift = Drift(2, [4], time_dependent=False, key=jr.key(0))
    # g(w) = k w + d with k = 1/s^2 - a, d = a c - m/s^2; the drift sees u = (w - center)/s
    # and the sampler divides its output by s, so g = (W u + b)/s.
    k, d = 1 / S**2 - A, A * C - M / S**2
    weight = jnp.diag(jnp.asarray(k * S**2))
    bias = jnp.asarray(S * (k * CENTER + d))
    drift = eqx.tree_at(lambda m: (m.linear.weight, m.linear.bias), drift, (weight, bias))
    return sampler, drift, k, d


def _continuous_kl(t_end):
    """Closed-form path KL: int_0^T E|g(w_tau)|^2 / 4 under the posterior OU law."""
    k, d = 1 / S**2 - A, A * C - M / S**2
    total = 0.0
    for i in range(2):

        def integrand(tau, i=i):
            mean = C[i] + (CENTER[i] - C[i]) * np.exp(-A[i] * tau)
            var = (1 - np.exp(-2 * A[i] * tau)) / A[i] + EPS**2 * np.exp(-2 * A[i] * tau)
            return (k[i] ** 2 * (var + mean**2) + 2 * k[i] * d[i] * mean + d[i] ** 2) / 4

        total += quad(integrand, 0, t_end)[0]
    return total


def _discrete_kl(taus):
    """Exact expectation of the Euler-Maruyama estimator on grid ``taus`` (mean/var recursion)."""
    k, d = 1 / S**2 - A, A * C - M / S**2
    mean, var, total = CENTER.copy(), np.full(2, EPS**2), 0.0
    for dt in np.diff(taus):
        total += dt * np.sum(k**2 * (var + mean**2) + 2 * k * d * mean + d**2) / 4
        mean = mean + dt * (-A * (mean - C))
        var = (1 - dt * A) ** 2 * var + 2 * dt
    return total


@pytest.mark.parametrize("dtau", [0.004, 0.001])
def test_path_kl_matches_closed_form_ou(dtau):
    steps = round(1.0 / dtau)
    taus = pseudo_time_grid(steps, dtau, "uniform")
    sampler, drift, _, _ = _linear_ou_sampler(taus)
    _, kl, _ = eqx.filter_jit(sampler.simulate)(drift, jr.key(1), 4000)
    kl = np.asarray(kl, np.float64)
    se = kl.std(ddof=1) / np.sqrt(kl.size)
    # The estimator is unbiased for the discrete chain's KL ...
    assert abs(kl.mean() - _discrete_kl(taus)) < 4 * se
    # ... which converges to the continuous OU path KL at first order in dtau.
    assert abs(kl.mean() - _continuous_kl(1.0)) < 4 * se + 2.0 * dtau * _continuous_kl(1.0)


def test_path_kl_on_geometric_grid_is_the_discrete_chain_kl():
    taus = pseudo_time_grid(200, 0.005, "geometric", final_dtau=1e-4)
    sampler, drift, _, _ = _linear_ou_sampler(taus)
    _, kl, _ = sampler.simulate(drift, jr.key(2), 4000)
    kl = np.asarray(kl, np.float64)
    se = kl.std(ddof=1) / np.sqrt(kl.size)
    assert abs(kl.mean() - _discrete_kl(taus)) < 4 * se


def test_sampler_marginal_is_the_ou_law():
    """With g = 0 the replicas follow the prior OU: check the end law in closed form."""
    taus = pseudo_time_grid(400, 0.005, "uniform")
    sampler = LangevinSampler(OUPrior(jnp.asarray(M), S), jnp.asarray(taus),
                              jnp.asarray(CENTER), EPS)  # fmt: skip
    drift = Drift(2, [4], time_dependent=True, key=jr.key(0))
    w, kl, _ = sampler.simulate(drift, jr.key(3), 20000)
    w = np.asarray(w, np.float64)
    t = 2.0
    mean = M + (CENTER - M) * np.exp(-t / S**2)
    var = S**2 * (1 - np.exp(-2 * t / S**2)) + EPS**2 * np.exp(-2 * t / S**2)
    se_mean = np.sqrt(var / w.shape[0])
    assert np.all(np.abs(w.mean(0) - mean) < 4 * se_mean)
    se_var = var * np.sqrt(2 / w.shape[0])
    assert np.all(np.abs(w.var(0) - var) < 4 * se_var + 0.01 * var)  # + EM's O(dtau) bias
    assert float(jnp.max(kl)) == 0.0


def test_grid_ends_at_total_time():
    for schedule in ("uniform", "geometric"):
        taus = pseudo_time_grid(50, 0.02, schedule, final_dtau=1e-3)
        assert taus[0] == 0 and np.isclose(taus[-1], 1.0) and np.all(np.diff(taus) > 0)
    geometric = pseudo_time_grid(50, 0.02, "geometric", final_dtau=1e-3)
    assert np.isclose(np.diff(geometric)[-1], 1e-3)


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
                        Z_activation="softplus", substeps=1, key=jr.key(0))  # fmt: skip
    part = make_partition(model, "full")
    t = jnp.asarray(data.t[0])
    x = jnp.zeros((t.shape[0], 0))
    y0 = jnp.asarray(data.y0[0])

    def loglik(w):
        pred = part.model(w)(t, x, y0)
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


@pytest.mark.parametrize("seed", [0, 2])
def test_gaussian_likelihood_recovers_exact_posterior(seed):
    """METHOD 7(a): with a known sigma the sampled law is the Bayesian posterior."""
    system = OUSystem(theta_mean=1.0, theta_sd=0.0, mu_mean=1.0, mu_sd=0.0, n=8, n_times=16,
                      t_end=3.0)  # fmt: skip
    sigma = 0.1
    data = simulate_ou(system, jr.key(4), noise_sd=sigma)
    cfg = Config.from_dict({
        "data": {"scaling": "none", "validation_fraction": 0.0},
        "model": {"R_hidden": []},
        "sampler": {"replicas": 256, "steps": 60, "dtau": 1 / 60, "final_dtau": 1e-4,
                    "drift_hidden": [32, 32]},
        "likelihood": {"kind": "gaussian", "sigma": sigma},
        "train": {"epochs": 1000, "lr": 1e-2, "mle_epochs": 2000, "seed": seed},
    })  # fmt: skip
    run = fit(data, cfg)
    w = np.asarray(sample_weights(run, 8000, jr.key(5)), np.float64)
    prior_var = run.posterior.sampler.prior.marginal_variance(1.0, cfg.sampler.init_noise)
    mean, sd, corr = _grid_posterior(data, sigma, prior_var, np.asarray(run.w_mle, np.float64))
    # Monte Carlo error of 8000 draws is ~1 % in the sds; the tolerances are the issue's.
    assert np.all(np.abs(w.mean(0) - mean) < 0.2 * sd), (w.mean(0), mean, sd)
    assert np.all(np.abs(w.std(0) / sd - 1) < 0.10), (w.std(0), sd)
    assert abs(np.corrcoef(w.T)[0, 1] - corr) < 0.05, (np.corrcoef(w.T)[0, 1], corr)


def test_initial_contraction_starts_narrow_and_zero_starts_at_the_prior():
    taus = jnp.asarray(pseudo_time_grid(100, 0.01, "geometric", 1e-4))
    sampler = LangevinSampler(OUPrior(jnp.zeros(2), 1.0), taus, jnp.zeros(2), 0.01)
    prior_like = Drift(2, [8], time_dependent=True, key=jr.key(0))
    narrow = Drift(2, [8], time_dependent=True, contraction=0.5, key=jr.key(0))
    w_prior, kl_prior, _ = sampler.simulate(prior_like, jr.key(1), 4000)
    w_narrow, kl_narrow, _ = sampler.simulate(narrow, jr.key(1), 4000)
    assert float(jnp.max(kl_prior)) == 0.0
    # The prior's law at T = 1 has sd sqrt(1 - e^-2) = 0.93; the pull keeps it far narrower.
    assert np.allclose(np.std(w_prior, axis=0), 0.93, atol=0.03)
    assert np.all(np.std(w_narrow, axis=0) < 0.2) and float(jnp.mean(kl_narrow)) > 0


@pytest.mark.parametrize("seed", [0, 1])
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
        "sampler": {"replicas": 128, "steps": 40, "dtau": 0.025, "drift_hidden": [16, 16],
                    "init_contraction": 0.5},
        "likelihood": {"kind": "energy-score"},
        "train": {"epochs": 1500, "lr": 3e-3, "mle_epochs": 500, "batch_trajectories": 256,
                  "seed": seed},
    })  # fmt: skip
    w = np.asarray(sample_weights(fit(data, cfg), 4096, jr.key(9)), np.float64)
    sd = truth.std(0)
    assert np.all(np.abs(w.mean(0) - truth.mean(0)) < 0.25 * sd), (w.mean(0), truth.mean(0))
    assert np.all(np.abs(w.std(0) / sd - 1) < 0.1), (w.std(0), sd)
    corr, corr_truth = np.corrcoef(w.T)[0, 1], np.corrcoef(truth.T)[0, 1]
    assert abs(corr - corr_truth) < 0.1, (corr, corr_truth)


def test_last_steps_below_float32_resolution_at_t_are_kept():
    """At T = 4, float32 resolves pseudo-times only to 5e-7: steps of 1e-7 would vanish (and
    the drift's 1 / (T - tau) divide by 0) if the grid were stored as tau_k, not T - tau_k."""
    taus = pseudo_time_grid(400, 0.01, "geometric", 1e-7)
    sampler = LangevinSampler(OUPrior(jnp.zeros(2), 1.0), taus, jnp.zeros(2, jnp.float32), 0.01)
    steps = np.asarray(sampler.remaining[:-1] - sampler.remaining[1:])
    np.testing.assert_allclose(steps, np.diff(taus), rtol=1e-5)
    drift = Drift(2, [8], time_dependent=True, key=jr.key(0))
    drift = eqx.tree_at(lambda d: d.linear.bias, drift, jnp.ones(2))  # a nonzero correction
    w, kl, _ = sampler.simulate(drift, jr.key(1), 64)
    assert np.all(np.isfinite(w)) and np.all(np.isfinite(kl))
