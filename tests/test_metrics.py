"""Tests of the evaluation metrics against SciPy, direct loops and closed forms."""

import math

import numpy as np
import pytest
from scipy.special import ndtr
from scipy.stats import wasserstein_distance

from langevin_uq import metrics
from langevin_uq.errors import DataError


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


@pytest.mark.parametrize(("n", "m"), [(1, 1), (7, 3), (50, 120), (513, 257)])
def test_wasserstein1_matches_scipy(rng, n, m):
    a = rng.normal(size=n)
    b = rng.gamma(2.0, size=m) - 1.0
    assert metrics.wasserstein1(a, b) == pytest.approx(wasserstein_distance(a, b), rel=1e-12)
    # Ties within and across the samples.
    a, b = np.round(a), np.round(b)
    assert metrics.wasserstein1(a, b) == pytest.approx(wasserstein_distance(a, b), abs=1e-12)
    assert metrics.wasserstein1(a, a) == 0.0


def test_w1_over_time_equals_loop(rng):
    y_data = rng.normal(size=(40, 6, 2))
    y_pred = 0.5 + 2.0 * rng.normal(size=(25, 6, 2))
    y_data[:, 0, :] = 1.0  # a fixed initial condition
    got = metrics.w1_over_time(y_data, y_pred)
    assert got.shape == (6, 2)
    for j in range(6):
        for k in range(2):
            want = wasserstein_distance(y_data[:, j, k], y_pred[:, j, k])
            assert got[j, k] == pytest.approx(want, rel=1e-12, abs=1e-14)


def test_bad_inputs_are_refused():
    with pytest.raises(DataError, match="NaN"):
        metrics.wasserstein1(np.array([0.0, np.nan]), np.zeros(3))
    with pytest.raises(DataError, match="share T and ny"):
        metrics.w1_over_time(np.zeros((3, 4, 1)), np.zeros((3, 5, 1)))
    with pytest.raises(DataError, match="between 0 and 1"):
        metrics.coverage_pooled(np.zeros((3, 4, 1)), np.zeros((2, 4, 1)), levels=(1.5,))


def _order_stat_bias(m: int) -> float:
    # Linear-interpolated quantiles of m draws give a band of expected coverage within ~2/(m+1).
    return 2.0 / (m + 1)


def test_coverage_of_calibrated_ensemble_is_nominal(rng):
    m, n, t, ny = 399, 200, 10, 2
    mu = rng.normal(size=(n, t, ny))
    sd = rng.uniform(0.5, 2.0, size=(n, t, ny))
    y_obs = mu + sd * rng.normal(size=(n, t, ny))
    y_pred = mu + sd * rng.normal(size=(m, n, t, ny))
    cov = metrics.coverage(y_pred, y_obs, levels=(0.5, 0.9))
    k = n * t * ny
    for level, frac in cov.items():
        se = math.sqrt(level * (1 - level) / k)
        assert abs(frac - level) < 4 * se + _order_stat_bias(m)
    # An ensemble twice too narrow under-covers.
    narrow = metrics.coverage(mu + 0.5 * (y_pred - mu), y_obs, levels=(0.9,))
    assert narrow[0.9] < 0.8


def test_pit_pooled_is_uniform_when_calibrated_and_u_shaped_when_too_narrow(rng):
    m, n, t, ny = 400, 300, 5, 2
    mu = rng.normal(size=(t, ny))
    y_obs = mu + rng.normal(size=(n, t, ny))
    pit = metrics.pit_pooled(mu + rng.normal(size=(m, t, ny)), y_obs)
    assert pit.shape == (n, t, ny) and pit.min() >= 0 and pit.max() <= 1
    # 3000 independent values: the KS distance to uniform is below 1.63 / sqrt(n) at 1 %.
    ks = np.max(np.abs(np.sort(pit.ravel()) - (np.arange(pit.size) + 0.5) / pit.size))
    assert ks < 1.63 / np.sqrt(pit.size) + 1 / m, ks
    narrow = metrics.pit_pooled(mu + 0.3 * rng.normal(size=(m, t, ny)), y_obs)
    assert np.mean((narrow < 0.1) | (narrow > 0.9)) > 0.6  # 2 P(|Z| > 0.38) = 0.70
    ties = metrics.pit_pooled(np.zeros((4, 1, 1)), np.zeros((1, 1, 1)))
    assert ties[0, 0, 0] == 0.5


def test_coverage_pooled_of_calibrated_ensemble_is_nominal(rng):
    m, n, t, ny = 2000, 500, 10, 2
    mu = rng.normal(size=(t, ny))
    y_obs = mu + rng.normal(size=(n, t, ny))
    y_pred = mu + rng.normal(size=(m, t, ny))
    cov = metrics.coverage_pooled(y_pred, y_obs, levels=(0.5, 0.9))
    for level, frac in cov.items():
        # Binomial error of the observations plus the error of the t * ny estimated bands.
        var = level * (1 - level) * (1 / (n * t * ny) + 1 / ((m + 2) * t * ny))
        assert abs(frac - level) < 4 * math.sqrt(var) + _order_stat_bias(m)


def _gaussian_crps(mu, sd, y):
    z = (y - mu) / sd
    pdf = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    return sd * (z * (2 * ndtr(z) - 1) + 2 * pdf - 1 / math.sqrt(math.pi))


def test_crps_of_gaussian_ensemble_matches_closed_form(rng):
    m, k = 200, 2000
    mu = rng.normal(size=k)
    sd = rng.uniform(0.5, 2.0, size=k)
    y = rng.normal(size=k)
    x = mu + sd * rng.normal(size=(m, k))
    exact = _gaussian_crps(mu, sd, y)
    fair = metrics.crps_ensemble(x, y, fair=True)
    err = fair - exact
    assert abs(err.mean()) < 4 * err.std(ddof=1) / math.sqrt(k)
    # The empirical-CDF CRPS exceeds the fair one by E|X - X'| / (2 M) on average.
    plain = metrics.crps_ensemble(x, y)
    gap = (plain - fair).mean()
    assert gap == pytest.approx((sd * 2 / math.sqrt(math.pi)).mean() / (2 * m), rel=0.05)


def test_crps_equals_integral_of_squared_cdf_difference(rng):
    x = rng.normal(size=9)
    for y in (-3.0, 0.1, x[4], 5.0):
        points = np.sort(np.append(x, y))
        left = points[:-1]
        ecdf = np.searchsorted(np.sort(x), left, side="right") / x.size
        step = (left >= y).astype(float)
        want = np.sum((ecdf - step) ** 2 * np.diff(points))
        got = metrics.crps_ensemble(x, np.asarray(y))
        assert got.shape == ()
        assert float(got) == pytest.approx(want, rel=1e-12)


def test_energy_score_matches_double_loop(rng):
    pred = rng.normal(size=(5, 3))
    obs = rng.normal(size=(4, 3))
    skill = np.mean([np.linalg.norm(p - o) for p in pred for o in obs])
    spread = np.mean(
        [np.linalg.norm(pred[i] - pred[j]) for i in range(5) for j in range(5) if i != j]
    )
    assert metrics.energy_score(pred, obs) == pytest.approx(skill - 0.5 * spread, rel=1e-12)


def test_distance_correlation_independent_vs_dependent(rng):
    x = rng.normal(size=500)
    independent = metrics.distance_correlation(x[:, None], rng.normal(size=(500, 2)))
    dependent = metrics.distance_correlation(x[:, None], (x**2)[:, None])
    assert independent < 0.15
    assert dependent > 0.4
    assert metrics.distance_correlation(x, 3 * x - 1) == pytest.approx(1.0)

    w = np.stack([x, x**2, rng.normal(size=500), np.ones(500)], axis=1)
    mat = metrics.distance_correlation_matrix(w)
    assert mat.shape == (4, 4)
    np.testing.assert_allclose(mat, mat.T)
    np.testing.assert_allclose(np.diag(mat), [1.0, 1.0, 1.0, 0.0])
    assert mat[0, 1] == pytest.approx(dependent, rel=1e-8)
    assert mat[0, 2] < 0.15
    np.testing.assert_allclose(mat[3, :3], 0.0)


def test_weight_statistics_and_parameter_table_on_known_sample():
    draws = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]])
    corr = 7.0 / (2.0 * math.sqrt(13.0))
    stats = metrics.weight_statistics(draws)
    np.testing.assert_allclose(stats["mean"], [3.0, 5.0])
    np.testing.assert_allclose(stats["sd"], [2.0, math.sqrt(13.0)])
    np.testing.assert_allclose(stats["corr"], [[1.0, corr], [corr, 1.0]])

    reference = {"mean": [2.0, 5.0], "sd": [1.0, math.sqrt(13.0)], "corr": 0.5}
    rows = metrics.parameter_table({"LS": draws}, reference)
    assert [row["method"] for row in rows] == ["analytic", "LS"]
    assert rows[0]["corr"] == 0.5
    want = {
        "mean_w1": 3.0,
        "mean_w2": 5.0,
        "sd_w1": 2.0,
        "sd_w2": math.sqrt(13.0),
        "corr": corr,
        "mean_err_w1": 1.0,
        "mean_err_w2": 0.0,
        "sd_rel_err_w1": 1.0,
        "sd_rel_err_w2": 0.0,
        "corr_err": corr - 0.5,
    }
    for key, value in want.items():
        assert rows[1][key] == pytest.approx(value, abs=1e-12), key

    no_ref = metrics.parameter_table({"LS": draws}, names=("a", "b"))
    assert len(no_ref) == 1
    assert set(no_ref[0]) == {"method", "mean_a", "mean_b", "sd_a", "sd_b", "corr"}

    text = metrics.format_parameter_table(rows)
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("method")
    assert lines[2].startswith("analytic")
    assert len({len(line) for line in lines}) == 1
    assert "3.0000" in lines[3]
    assert lines[2].split()[-1] == "-"  # the reference has no error of its own


def test_mixture_summary_recovers_two_unequal_modes(rng):
    # 300 draws from 0.3 N(80, 15^2) + 0.7 N(560, 45^2): the weight's binomial sd is 0.026, the
    # means' sds 0.9 and 2.0, the sds' about 0.6 and 1.4.
    low = rng.normal(80.0, 15.0, 300 * 3 // 10)
    high = rng.normal(560.0, 45.0, 300 - low.size)
    gm = metrics.mixture_summary(rng.permutation(np.concatenate([high, low])), 2, seed=0)
    np.testing.assert_allclose(gm["weight"], [low.size / 300, high.size / 300], atol=1e-3)
    np.testing.assert_allclose(gm["mean"], [low.mean(), high.mean()], rtol=1e-3)
    np.testing.assert_allclose(gm["sd"], [low.std(), high.std()], rtol=1e-2)
    with pytest.raises(DataError):
        metrics.mixture_summary(np.ones(1), 2)
    constant = metrics.mixture_summary(np.full(20, 3.0), 2)  # a fixed state: no warning
    np.testing.assert_allclose(constant["mean"], 3.0)
    np.testing.assert_allclose(constant["weight"], [1.0, 0.0])


def test_mode_fractions_split_at_midpoints():
    x = np.array([0.0, 1.0, 4.9, 5.1, 9.0, 10.0, 30.0])
    np.testing.assert_allclose(metrics.mode_fractions(x, np.array([0.0, 10.0])), [3 / 7, 4 / 7])
    np.testing.assert_allclose(metrics.mode_fractions(x, np.array([0.0, 10.0, 30.0])),
                               [3 / 7, 3 / 7, 1 / 7])  # fmt: skip
