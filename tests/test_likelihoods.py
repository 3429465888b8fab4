"""Likelihood terms against direct computations (METHOD section 7)."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from langevin_uq import metrics
from langevin_uq.errors import ConfigError
from langevin_uq.likelihoods import build_likelihood
from langevin_uq.modes import mode_order
from langevin_uq.strata import strata

RNG = np.random.default_rng(0)
R, G, T, NY = 5, 2, 4, 1
Y_PRED = RNG.normal(size=(R, G, T, NY)).astype(np.float32)
Y = RNG.normal(size=(7, T, NY)).astype(np.float32)
GROUP = np.array([0, 0, 1, 1, 1, 0, 1])
Y_MLE = RNG.normal(size=(G, T, NY)).astype(np.float32)


def _loss(lk, scale=1.0):
    return float(lk.loss(jnp.asarray(Y_PRED), jnp.asarray(Y), jnp.asarray(GROUP), scale))


def test_gaussian_is_the_mean_negative_log_density():
    lk = build_likelihood("gaussian", y=Y, group=GROUP, n_groups=G, y_mle=Y_MLE, sigma=0.7)
    direct = -np.mean([norm.logpdf(Y, Y_PRED[r][GROUP], 0.7).sum() for r in range(R)])
    assert _loss(lk) == pytest.approx(direct, rel=1e-5)
    assert _loss(lk, 3.0) == pytest.approx(3 * direct, rel=1e-5)


def test_gaussian_auto_sigma_is_the_mle_rms_residual():
    lk = build_likelihood("gaussian", y=Y, group=GROUP, n_groups=G, y_mle=Y_MLE)
    rms = np.sqrt(np.mean((Y - Y_MLE[GROUP]) ** 2))
    assert float(lk.sigma[0]) == pytest.approx(rms, rel=1e-5)


@pytest.mark.parametrize("weighting", ["none", "inverse-spread"])
def test_energy_score_matches_the_metric_per_group(weighting):
    lk = build_likelihood("energy-score", y=Y, group=GROUP, n_groups=G, y_mle=Y_MLE,
                          time_weighting=weighting)  # fmt: skip
    if weighting == "none":
        weight = np.ones((T, NY))
    else:
        spread = np.mean([Y[GROUP == g].std(axis=0) for g in range(G)], axis=0)
        weight = 1 / spread
    np.testing.assert_allclose(1.0 if lk.weight is None else lk.weight, weight, rtol=1e-5)
    direct = 0.0
    for g in range(G):
        obs = (Y[GROUP == g] * weight).reshape(-1, T * NY)
        pred = (Y_PRED[:, g] * weight).reshape(R, -1)
        direct += len(obs) * metrics.energy_score(pred, obs)
    assert _loss(lk) == pytest.approx(direct, rel=1e-4)


def test_energy_score_with_spread_weights_does_not_depend_on_the_output_units():
    # Its balance against the KL must not move when the data are rescaled.
    def loss(c):
        lk = build_likelihood("energy-score", y=c * Y, group=GROUP, n_groups=G, y_mle=c * Y_MLE)
        return float(lk.loss(jnp.asarray(c * Y_PRED), jnp.asarray(c * Y), GROUP, jnp.asarray(1.0)))

    assert loss(1e-3) == pytest.approx(loss(1.0), rel=1e-4)
    assert loss(50.0) == pytest.approx(loss(1.0), rel=1e-4)


@pytest.mark.parametrize("weighting", ["none", "inverse-spread"])
def test_marginal_energy_score_is_the_sum_of_the_per_time_scores(weighting):
    lk = build_likelihood("energy-score", y=Y, group=GROUP, n_groups=G, y_mle=Y_MLE,
                          time_weighting=weighting, marginal=True)  # fmt: skip
    weight = np.ones((T, NY)) if lk.weight is None else np.asarray(lk.weight)
    direct = 0.0
    for g in range(G):
        obs, pred = Y[GROUP == g] * weight, Y_PRED[:, g] * weight
        for j in range(T):
            for k in range(NY):
                direct += len(obs) * metrics.energy_score(pred[:, j, k, None], obs[:, j, k, None])
    assert _loss(lk) == pytest.approx(direct, rel=1e-4)


def test_marginal_energy_score_ignores_how_replicas_pair_up_across_times():
    # Shuffling the replicas independently at each time keeps every marginal and breaks the
    # joint law: the marginal score must not change, the whole-trajectory score must.
    shuffled = np.stack([Y_PRED[RNG.permutation(R), :, j] for j in range(T)], axis=2)
    scores = {}
    for marginal in (True, False):
        lk = build_likelihood("energy-score", y=Y, group=GROUP, n_groups=G, y_mle=Y_MLE,
                              marginal=marginal)  # fmt: skip
        scores[marginal] = [float(lk.loss(jnp.asarray(p), jnp.asarray(Y), GROUP, 1.0))
                            for p in (Y_PRED, shuffled)]  # fmt: skip
    assert scores[True][1] == pytest.approx(scores[True][0], rel=1e-5)
    assert abs(scores[False][1] - scores[False][0]) > 1e-3 * abs(scores[False][0])


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_mixture_with_one_mode_is_eq21(reduction):
    lk = build_likelihood("marginal-mixture", y=Y, group=GROUP, n_groups=G, y_mle=Y_MLE,
                          time_reduction=reduction)  # fmt: skip
    total = np.zeros(R)
    for g in range(G):
        block = Y[GROUP == g]
        mu, sd = block.mean(0), block.std(0)
        sigma = np.sqrt(sd**2 + (mu - Y_MLE[g]) ** 2)  # Eq. 21
        lp = norm.logpdf(Y_PRED[:, g], mu, sigma).sum(-1)
        total += lp.mean(-1) if reduction == "mean" else lp.sum(-1)
    assert _loss(lk) == pytest.approx(-total.mean(), rel=1e-4)


def test_mixture_ignores_groups_without_training_trajectories():
    # Group 2 exists (e.g. only in the validation split) but has no training data: whatever the
    # replicas predict for it must not change the loss.
    lk = build_likelihood("marginal-mixture", y=Y, group=GROUP, n_groups=G + 1,
                          y_mle=np.concatenate([Y_MLE, Y_MLE[:1]]))  # fmt: skip
    base = np.concatenate([Y_PRED, Y_PRED[:, :1]], axis=1)
    moved = base.copy()
    moved[:, G] += 100.0
    args = (jnp.asarray(Y), jnp.asarray(GROUP), 1.0)
    assert float(lk.loss(jnp.asarray(base), *args)) == float(lk.loss(jnp.asarray(moved), *args))
    reference = build_likelihood("marginal-mixture", y=Y, group=GROUP, n_groups=G, y_mle=Y_MLE)
    assert _loss(reference) == pytest.approx(float(lk.loss(jnp.asarray(base), *args)), rel=1e-6)


def test_mixture_finds_two_modes_with_their_weights():
    t = 6
    low = np.zeros((30, t, 1)) + RNG.normal(0, 0.05, (30, t, 1))
    high = np.ones((10, t, 1)) * 5 + RNG.normal(0, 0.05, (10, t, 1))
    y = np.concatenate([low, high]).astype(np.float32)
    lk = build_likelihood("marginal-mixture", y=y, group=np.zeros(40, int), n_groups=1,
                          y_mle=np.full((1, t, 1), 2.5, np.float32), modes=2)  # fmt: skip
    weights = np.sort(np.exp(np.asarray(lk.log_weights[0])))
    np.testing.assert_allclose(weights, [0.25, 0.75], atol=1e-6)
    means = np.sort(np.asarray(lk.mean[0, :, :, 0]).mean(-1))
    np.testing.assert_allclose(means, [0.0, 5.0], atol=0.05)
    # A prediction on either mode scores far better than one between them.
    on_mode = lk.loss(jnp.zeros((1, 1, t, 1)), jnp.asarray(y), jnp.zeros(40, int), 1.0)
    between = lk.loss(jnp.full((1, 1, t, 1), 2.5), jnp.asarray(y), jnp.zeros(40, int), 1.0)
    assert float(on_mode) < float(between)


def test_a_stratified_mixture_scores_each_replica_against_its_own_mode():
    """`for_strata`: replica ``i`` is scored by its stratum's mode alone (its ``pi_k`` kept),
    in every group where that mode is present; a group without it scores the whole mixture."""
    t = 6
    y = np.concatenate([RNG.normal(0, 0.1, (30, t, 1)), RNG.normal(5, 0.1, (10, t, 1)),
                        RNG.normal(0, 0.1, (1, t, 1))]).astype(np.float32)  # fmt: skip
    group = np.repeat([0, 0, 1], [30, 10, 1])  # group 1: one trajectory, one mode
    lk = build_likelihood("marginal-mixture", y=y, group=group, n_groups=2,
                          y_mle=np.full((2, t, 1), 1.0, np.float32), modes=2)  # fmt: skip
    pred = RNG.normal(2.5, 2.0, (9, 2, t, 1)).astype(np.float32)
    rank = np.argsort(mode_order(lk), axis=1)
    mass = np.array([0.6, 0.4])
    labels = np.asarray(strata(jnp.log(jnp.asarray(mass)), 9))
    assert set(labels) == {0, 1} and np.sum(np.asarray(lk.log_weights[1]) > -1e29) == 1
    log_w, mean, sig = (np.asarray(a, np.float64) for a in (lk.log_weights, lk.mean, lk.sigma))
    expected = 0.0
    for i, k in enumerate(labels):
        for g in range(2):
            lp = log_w[g][:, None] + norm.logpdf(pred[i, g, :, 0], mean[g, :, :, 0],
                                                 sig[g, :, :, 0])  # fmt: skip
            own = (rank[g] == k) & (log_w[g] > -1e29)
            lp = lp[own] if own.any() else lp
            expected -= np.logaddexp.reduce(lp, axis=0).sum() / 9
    stratified = lk.for_strata(mass, rank)
    args = (jnp.asarray(y), jnp.asarray(group), 1.0)
    assert float(stratified.loss(jnp.asarray(pred), *args)) == pytest.approx(expected, rel=1e-5)
    assert float(lk.loss(jnp.asarray(pred), *args)) < expected  # a replica's mixture is larger


@pytest.mark.parametrize(
    "kwargs",
    [{"kind": "student"}, {"kind": "gaussian", "sigma": -1.0}, {"kind": "gaussian", "sigma": "x"},
     {"kind": "marginal-mixture", "modes": 0},
     {"kind": "marginal-mixture", "time_reduction": "max"},
     {"kind": "gaussian", "marginal": True}],
)  # fmt: skip
def test_bad_likelihood_options_are_refused(kwargs):
    with pytest.raises(ConfigError):
        build_likelihood(y=Y, group=GROUP, n_groups=G, y_mle=Y_MLE, **kwargs)
