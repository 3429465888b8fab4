"""The OU demonstration system and the analytic law of its weights (METHOD.md section 11)."""

import dataclasses

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from langevin_uq.errors import ConfigError
from langevin_uq.systems.ou import OUSystem, OUWeightLaw, ou_true_weights, simulate_ou

WIDE = OUSystem(theta_mean=1.5, theta_sd=0.25, mu_mean=-0.8, mu_sd=0.4)


def test_trajectories_follow_the_closed_form():
    system = OUSystem(x0=0.5, n=64, n_times=20, t_end=4.0)
    key = jr.key(0)
    traj = simulate_ou(system, key)
    assert (traj.n_trajectories, traj.n_times, traj.n_outputs, traj.n_inputs) == (64, 20, 1, 0)
    assert traj.y.dtype == np.float32
    np.testing.assert_array_equal(
        traj.t, np.broadcast_to(np.linspace(0, 4, 20, dtype=np.float32), (64, 20))
    )
    np.testing.assert_array_equal(traj.y0, np.full((64, 1), 0.5, np.float32))
    np.testing.assert_array_equal(traj.group, np.zeros(64))
    w = np.asarray(ou_true_weights(system, key), dtype=np.float64)
    theta, mu = -w[:, 0], w[:, 1] / -w[:, 0]
    t = traj.t[0].astype(np.float64)
    expected = mu[:, None] + (0.5 - mu[:, None]) * np.exp(-theta[:, None] * t)
    np.testing.assert_allclose(traj.y[..., 0], expected, rtol=1e-5, atol=1e-6)
    # The trajectories solve dx/dt = w1 x + w2 with their own weights.
    dxdt = w[:, :1] * expected + w[:, 1:]
    np.testing.assert_allclose(dxdt, -theta[:, None] * (expected - mu[:, None]), atol=1e-12)
    other = simulate_ou(system, jr.key(1))
    assert not np.array_equal(other.y, traj.y)


def test_observation_noise_spares_the_initial_state():
    system = OUSystem(n=400, n_times=26)
    clean = simulate_ou(system, jr.key(5))
    noisy = simulate_ou(system, jr.key(5), noise_sd=0.1)
    np.testing.assert_array_equal(noisy.y[:, 0], clean.y[:, 0])
    np.testing.assert_array_equal(noisy.y0, clean.y0)
    residual = (noisy.y[:, 1:] - clean.y[:, 1:]).astype(np.float64).ravel()
    m = residual.size
    assert abs(residual.mean()) < 4 * 0.1 / np.sqrt(m)
    assert abs(residual.std() - 0.1) < 4 * 0.1 / np.sqrt(2 * m)


@pytest.mark.parametrize(
    "kwargs",
    [{"theta_sd": -0.1}, {"mu_sd": float("nan")}, {"mu_mean": float("inf")}, {"n": 0},
     {"n": 2.5}, {"n": True}, {"n_times": 1}, {"t_end": 0.0}],
)  # fmt: skip
def test_bad_configs_are_refused(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ConfigError, match=name):
        OUSystem(**kwargs)


def test_bad_noise_is_refused():
    with pytest.raises(ConfigError, match="noise_sd"):
        simulate_ou(OUSystem(n=2), jr.key(0), noise_sd=-1.0)


def test_law_moments_in_closed_form():
    law = OUWeightLaw.from_system(OUSystem())
    np.testing.assert_allclose(law.mean(), [-1.0, 1.0])
    sd_w2 = np.sqrt(0.15**2 + 0.15**2 + 0.15**4)
    np.testing.assert_allclose(law.sd(), [0.15, sd_w2], rtol=1e-6)
    np.testing.assert_allclose(law.corr()[0, 1], -(0.15**2) / (0.15 * sd_w2), rtol=1e-6)
    np.testing.assert_allclose(jnp.diag(law.corr()), [1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(law.cov(), law.cov().T)


def _batch_se(w: np.ndarray, statistic, n_batches: int = 100) -> np.ndarray:
    """Monte Carlo standard error of `statistic(w)` from batch means."""
    values = np.stack([statistic(b) for b in np.split(w, n_batches)])
    return values.std(axis=0, ddof=1) / np.sqrt(n_batches)


@pytest.mark.parametrize("system", [OUSystem(n=100_000), dataclasses.replace(WIDE, n=100_000)])
@pytest.mark.parametrize("draw", ["true_weights", "law_sample"])
def test_monte_carlo_moments_match_the_law(system, draw):
    law = OUWeightLaw.from_system(system)
    if draw == "true_weights":
        w = ou_true_weights(system, jr.key(11))
    else:
        w = law.sample(jr.key(12), system.n)
    w = np.asarray(w, dtype=np.float64)
    assert w.shape == (system.n, 2)

    def corr(v):
        return np.corrcoef(v.T)[0, 1]

    statistics = {
        "mean": (lambda v: v.mean(axis=0), law.mean()),
        "sd": (lambda v: v.std(axis=0), law.sd()),
        "corr": (corr, law.corr()[0, 1]),
    }
    for name, (statistic, truth) in statistics.items():
        error = np.abs(statistic(w) - np.asarray(truth))
        assert np.all(error < 4 * _batch_se(w, statistic)), name


@pytest.mark.parametrize("system", [OUSystem(), WIDE])
def test_log_density_integrates_to_one(system):
    law = OUWeightLaw.from_system(system)
    mean, sd = np.asarray(law.mean()), np.asarray(law.sd())
    # theta_mean is 6 sd clear of 0 in both systems, so w1 = 0 (where 1 / |w1| is singular)
    # stays outside the grid; w2 is a skewed product, so its range is generous.
    w1 = np.linspace(mean[0] - 5.5 * sd[0], mean[0] + 5.5 * sd[0], 801)
    w2 = np.linspace(mean[1] - 8 * sd[1], mean[1] + 8 * sd[1], 801)
    grid = np.stack(np.meshgrid(w1, w2, indexing="ij"), axis=-1).astype(np.float32)
    density = np.exp(np.asarray(law.log_density(grid), dtype=np.float64))
    total = density.sum() * (w1[1] - w1[0]) * (w2[1] - w2[0])
    assert abs(total - 1.0) < 1e-3


def test_log_density_is_the_change_of_variables():
    law = OUWeightLaw.from_system(WIDE)
    theta, mu = np.array([1.2, 1.9]), np.array([-0.5, 0.1])
    w = np.stack([-theta, theta * mu], axis=-1)

    def normal(z, m, s):
        return np.exp(-0.5 * ((z - m) / s) ** 2) / (s * np.sqrt(2 * np.pi))

    expected = normal(theta, 1.5, 0.25) * normal(mu, -0.8, 0.4) / theta
    np.testing.assert_allclose(np.exp(law.log_density(w)), expected, rtol=1e-5)
    assert law.log_density(np.zeros((3, 4, 2)) - 1.0).shape == (3, 4)


def test_score_matches_finite_differences():
    law = OUWeightLaw.from_system(WIDE)
    w = np.asarray(law.sample(jr.key(3), 12), dtype=np.float64).reshape(3, 4, 2)
    score32 = np.asarray(law.score(w.astype(np.float32)))
    assert score32.shape == w.shape and score32.dtype == np.float32
    with jax.enable_x64(True):
        score64 = np.asarray(law.score(jnp.asarray(w)))
        h = 1e-6
        fd = np.stack(
            [
                (law.log_density(w + h * e) - law.log_density(w - h * e)) / (2 * h)
                for e in np.eye(2)
            ],
            axis=-1,
        )
    np.testing.assert_allclose(score64, fd, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(score32, score64, rtol=1e-4, atol=1e-4)


def test_score_has_zero_mean_under_the_law():
    law = OUWeightLaw.from_system(WIDE)
    w = law.sample(jr.key(7), 100_000)
    score = np.asarray(law.score(w), dtype=np.float64)
    se = score.std(axis=0) / np.sqrt(score.shape[0])
    assert np.all(np.abs(score.mean(axis=0)) < 4 * se)
