"""Tests of the kernel Stein discrepancy: the closed form against autodiff, the scale rule, the
U-test against its definition, and `ksd_report`'s verdict on Gaussian and curved posteriors
whose score is known exactly.

The bands asserted here are the module docstring's measurements (M = 512, 20-500 seeds); the
seeds are fixed, so each assertion is deterministic and sits inside its measured band.
"""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import chi2

from langevin_uq import diagnostics
from langevin_uq.diagnostics import (
    DEFAULT_LEVEL,
    DISPERSION_BAND,
    gaussian_reference,
    kernel_stein_discrepancy,
    ksd_report,
    verdict,
)
from langevin_uq.errors import DataError

M = 512


@jax.jit
def _stein_matrix_by_autodiff(z, s, length):
    """``k_p(z_i, z_j)`` for all pairs from its definition, every derivative by autodiff."""

    def k(x, y):
        return (1 + jnp.sum((x - y) ** 2) / length**2) ** -0.5

    grad_x, grad_y = jax.grad(k, 0), jax.grad(k, 1)

    def k_p(x, y, sx, sy):
        trace = jnp.trace(jax.jacfwd(grad_y, 0)(x, y))
        return sx @ sy * k(x, y) + sx @ grad_y(x, y) + sy @ grad_x(x, y) + trace

    return jax.vmap(lambda x, sx: jax.vmap(lambda y, sy: k_p(x, y, sx, sy))(z, s))(z, s)


def _points():
    """Seven points in three coordinates of very different scale, away from the origin."""
    rng = np.random.default_rng(1)
    return rng.normal(size=(7, 3)) * [0.1, 1.0, 30.0] + 5.0, rng.normal(size=(7, 3))


def test_closed_form_stein_kernel_matches_autodiff():
    x, s = _points()
    with jax.enable_x64(True):
        z, s = jnp.asarray(x - x.mean(0)), jnp.asarray(s)
        length = jnp.asarray(1.7)
        closed = diagnostics._stein_kernel(z, s, z, s, length)
        np.testing.assert_allclose(closed, _stein_matrix_by_autodiff(z, s, length), rtol=1e-12)


def test_ksd_is_the_scaled_v_statistic_in_float64_and_float32():
    """The whole recipe (scale by the sd, scores times the sd, median heuristic, V-statistic)
    against autodiff and SciPy; float32 input gives a float32 answer close to float64's."""
    x, s = _points()
    scale = x.std(0, ddof=1)
    with jax.enable_x64(True):
        z, zs = jnp.asarray(x / scale), jnp.asarray(s * scale)
        length = jnp.asarray(np.median(pdist(x / scale)))
        expected = float(jnp.sqrt(jnp.mean(_stein_matrix_by_autodiff(z, zs, length))))
        ksd64 = kernel_stein_discrepancy(jnp.asarray(x), jnp.asarray(s))
        assert ksd64.dtype == jnp.float64
        assert float(ksd64) == pytest.approx(expected, rel=1e-10)
    ksd32 = kernel_stein_discrepancy(jnp.asarray(x, jnp.float32), jnp.asarray(s, jnp.float32))
    assert ksd32.dtype == jnp.float32
    assert float(ksd32) == pytest.approx(expected, rel=1e-4)


def test_row_blocks_sum_to_the_full_matrix():
    """The `lax.map` path (M^2 above the entry budget, a padded last block) equals the single
    broadcast."""
    rng = np.random.default_rng(2)
    z, s = jnp.asarray(rng.normal(size=(50, 3))), jnp.asarray(rng.normal(size=(50, 3)))
    length = jnp.asarray(1.3)
    full, blocked = jax.jit(
        lambda z, s: (
            diagnostics._stein_sums(z, s, length),
            diagnostics._stein_sums(z, s, length, max_entries=8 * 50),  # 7 blocks, 6 rows padded
        )
    )(z, s)
    np.testing.assert_allclose(blocked, full, rtol=1e-5)
    k = diagnostics._stein_kernel(z, s, z, s, length)
    np.testing.assert_allclose(full, [jnp.sum(k), jnp.sum(k**2)], rtol=1e-5)


def test_u_test_is_the_studentised_u_statistic():
    """z and p from their definitions: the off-diagonal mean of the Stein matrix over its null
    sd ``sqrt(2 mean(k^2) / (M (M - 1)))``, p the Satterthwaite chi-square's tail."""
    x, s = _points()
    m = x.shape[0]
    scale = x.std(0, ddof=1)
    with jax.enable_x64(True):
        z, zs = jnp.asarray(x / scale), jnp.asarray(s * scale)
        length = jnp.asarray(np.median(pdist(x / scale)))
        k = np.asarray(_stein_matrix_by_autodiff(z, zs, length))
        sums = diagnostics._statistics(jnp.asarray(x), jnp.asarray(s), None)
        got_z, got_p = diagnostics._u_test(jax.device_get(sums), m)
    off = k[~np.eye(m, dtype=bool)]
    mean_square = np.mean(off**2)
    expected_z = np.mean(off) / np.sqrt(2 * mean_square / (m * (m - 1)))
    nu = np.mean(np.diag(k)) ** 2 / mean_square
    assert got_z == pytest.approx(expected_z, rel=1e-9)
    assert got_p == pytest.approx(chi2.sf(nu + expected_z * np.sqrt(2 * nu), nu), rel=1e-9)


def test_u_test_of_a_kernel_that_is_zero_off_the_diagonal():
    zero = diagnostics._SteinSums(np.float32(0), np.float32(0), np.float32(3))
    assert diagnostics._u_test(zero, 5) == (0.0, 1.0)
    positive = diagnostics._SteinSums(np.float32(4), np.float32(0), np.float32(3))
    assert diagnostics._u_test(positive, 5) == (np.inf, 0.0)


@functools.cache
def _gaussian(d):
    """The measured targets: d = 2 with sds (1, 3) and correlation 0.8; d >= 10 with sds
    log-spaced over 0.1..10 and correlation 0.5^|i - j|. Returns mean, Cholesky factor,
    precision, sds and the exact score function (one object per ``d``, compiled once)."""
    if d == 2:
        sd, corr = jnp.array([1.0, 3.0]), jnp.array([[1.0, 0.8], [0.8, 1.0]])
    else:
        sd, i = jnp.logspace(-1, 1, d), jnp.arange(d)
        corr = 0.5 ** jnp.abs(i[:, None] - i[None, :])
    cov = sd[:, None] * corr * sd[None, :]
    mean, precision = jnp.linspace(-1, 1, d), jnp.linalg.inv(cov)

    def score_fn(w):
        return -precision @ (w - mean)

    return mean, jnp.linalg.cholesky(cov), precision, sd, score_fn


def _draws(d, seed, n=M):
    """``n`` exact draws from `_gaussian` ``(d)`` (NumPy's generator: nothing to compile)."""
    mean, chol, *_ = _gaussian(d)
    return (
        mean
        + jnp.asarray(np.random.default_rng(seed).standard_normal((n, d)), jnp.float32) @ chol.T
    )


def _report(d, seed, shrink=1.0, shift=0.0):
    """`ksd_report` of exact draws with their spread times `shrink` and their mean moved by
    `shift` sds, against the exact Gaussian score."""
    mean, _, _, sd, score_fn = _gaussian(d)
    x = mean + shrink * (_draws(d, seed) - mean) + shift * sd
    return ksd_report(x, score_fn, jr.key(seed))


@pytest.mark.parametrize("d", [2, 10, 50])
def test_exact_draws_pass(d):
    """Measured over 2500 / 500 / 500 seeds (d = 2 / 10 / 50): ratio 99th percentile 2.19 / 1.49
    / 1.14, z 99th percentile 4.2 / 3.1 / 2.5; dispersion within 0.86-1.19 (2000 seeds)."""
    for seed in range(2):
        report = _report(d, seed)
        assert 0.4 < report["ratio"] < 2.0 and -3 < report["z"] < 3.5, report
        assert abs(report["dispersion"] - 1) < 4 * report["dispersion_se"], report
        assert report["p"] > 1e-2 and verdict(report) is None, report


WRONG = {"collapsed": {"shrink": 0.3}, "inflated": {"shrink": 2.0}, "shifted": {"shift": 1.0}}


@pytest.mark.parametrize("d", [2, 10, 50])
@pytest.mark.parametrize("case", list(WRONG))
def test_wrong_samples_are_flagged(d, case):
    """Each wrong case is flagged at every ``d`` (20 seeds each), and by the reading the module
    docstring says catches it: collapse by the U-test (z >= 185) and the dispersion (0.09),
    inflation by the dispersion (3.5-4.2; its z at d = 50 is only 2.8-6.3), a one-sd shift by
    the U-test (the dispersion stays near 1)."""
    report = _report(d, 0, **WRONG[case])
    sentence = verdict(report)
    assert sentence is not None, report
    if case != "inflated":
        assert report["z"] > 30 and report["p"] < 1e-6 * DEFAULT_LEVEL, report
    if case == "collapsed":
        assert report["dispersion"] < 0.1 and "samples too narrow" in sentence, report
    if case == "inflated":
        assert report["dispersion"] > 3.5 and "samples too wide" in sentence, report
    if case == "shifted":
        assert abs(report["dispersion"] - 1) < 0.1 and "too" not in sentence, report


def _banana(seed, wide=1.0):
    """Exact draws of x1 ~ N(0, 1), x2 | x1 ~ N(x1^2, (0.1 wide)^2) (wide = 1), and the score."""

    def score_fn(w):
        r = (w[1] - w[0] ** 2) / 0.01
        return jnp.stack([-w[0] + 2 * w[0] * r, -r])

    rng = np.random.default_rng(seed)
    x1 = rng.standard_normal(M)
    x2 = x1**2 + 0.1 * wide * rng.standard_normal(M)
    return jnp.asarray(np.stack([x1, x2], axis=1), jnp.float32), score_fn


def test_exact_draws_of_a_curved_posterior_pass_though_their_ratio_is_high():
    """The KSD ratio flags nothing: against a Gaussian of their moments exact draws of a thin
    curved law read 7-20 (NUTS's draws of a 33-weight neural ODE's posterior: 15.6), while
    Stein's identity holds for any law. A curved law costs the dispersion power (its sd here is
    0.5), so a collapse of the thin direction is left to the U-test."""
    for seed in range(2):
        x, score_fn = _banana(seed)
        report = ksd_report(x, score_fn, jr.key(seed))
        assert report["ratio"] > 2 * 3.0 and verdict(report) is None, report
    x, score_fn = _banana(0, wide=0.1)
    assert "samples disagree" in verdict(ksd_report(x, score_fn, jr.key(0)))


def test_well_separated_modes_pass_the_u_test():
    """Exact draws of two unit Gaussians at +-3 (d = 2): the U-test's null variance comes from
    the samples, so it holds for non-Gaussian laws (p never below 1e-5 in 500 seeds, z 99th
    percentile 3.6), while their ratio to the Gaussian reference sits above 1 (median 1.8,
    above 3 in 10 % of seeds)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((M, 2)) + np.where(rng.random((M, 1)) < 0.5, -3.0, 3.0) * [1, 0]
    x = jnp.asarray(x, jnp.float32)

    def score_fn(w):
        near = jax.nn.sigmoid(6 * w[0])  # posterior weight of the mode at +3
        return -w.at[0].set(w[0] - 3 * near + 3 * (1 - near))

    report = ksd_report(x, score_fn, jr.key(0))
    assert abs(report["z"]) < 3 and report["p"] > 1e-2, report


def test_rescaling_a_coordinate_leaves_ksd_and_reference_unchanged():
    mean, _, precision, _, _ = _gaussian(2)
    x = mean + 0.5 * (_draws(2, 3) - mean)  # collapsed: a KSD well above 0
    scores = -(x - mean) @ precision
    c = jnp.array([1e3, 1.0])
    ksd = kernel_stein_discrepancy(x, scores)
    np.testing.assert_allclose(kernel_stein_discrepancy(x * c, scores / c), ksd, rtol=1e-5)
    # An explicit scale rescaled with the coordinate gives the same value too.
    scale = jnp.array([2.0, 0.5])
    np.testing.assert_allclose(
        kernel_stein_discrepancy(x * c, scores / c, scale=scale * c),
        kernel_stein_discrepancy(x, scores, scale=scale),
        rtol=1e-5,
    )
    key = jr.key(4)
    np.testing.assert_allclose(
        gaussian_reference(x * c, key), gaussian_reference(x, key), rtol=1e-4
    )


def test_ksd_report_scores_a_random_subset_and_reads_as_a_verdict():
    mean, _, _, _, score_fn = _gaussian(2)
    x = _draws(2, 5, n=2 * M)
    report = ksd_report(x, score_fn, jr.key(6), max_samples=M)
    assert set(report) == {"ksd", "reference", "ratio", "z", "p", "dispersion",
                           "dispersion_se", "n", "dimension"}  # fmt: skip
    assert report["n"] == M
    assert all(isinstance(report[k], float) for k in ("ksd", "reference", "ratio", "z", "p",
                                                      "dispersion", "dispersion_se"))  # fmt: skip
    assert report["ratio"] == pytest.approx(report["ksd"] / report["reference"])
    assert report["ratio"] < 2.0 and report["p"] > 1e-2
    assert verdict(report) is None
    collapsed = ksd_report(mean + 0.3 * (x[:M] - mean), score_fn, jr.key(6))
    assert collapsed["n"] == M
    assert "samples disagree with the posterior" in verdict(collapsed)


def test_verdict_wording_and_thresholds():
    calm = {"ratio": 40.0, "z": 0.5, "p": 0.3, "dispersion": 1.1, "dispersion_se": 0.05}
    assert verdict(calm) is None  # the ratio alone flags nothing
    assert verdict({**calm, "p": DEFAULT_LEVEL, "dispersion": DISPERSION_BAND}) is None
    assert verdict({**calm, "dispersion": 1 / DISPERSION_BAND}) is None
    assert verdict({"ratio": 40.0, "z": 12.345, "p": 3.21e-9}) == (
        "samples disagree with the posterior: U-statistic 12.3 null sds above 0 (p = 3.2e-09, "
        "flagged below 1e-05); KSD 40x the reference of exact Gaussian draws"
    )
    assert verdict({**calm, "ratio": 123.4, "dispersion": 3.98, "dispersion_se": 0.047}) == (
        "samples too wide for the posterior: Stein dispersion 3.98 +- 0.047 (exact draws: 1; "
        "flagged outside 0.714-1.4); KSD 123x the reference of exact Gaussian draws"
    )
    both = verdict({**calm, "dispersion": 0.09, "dispersion_se": 0.01, "p": 0.0})
    assert both.startswith("samples too narrow") and "; samples disagree" in both
    # Outside the band but within 4 standard errors of 1: noise, not flagged.
    assert verdict({**calm, "dispersion": 1.5, "dispersion_se": 0.13}) is None
    assert verdict({**calm, "dispersion": 1.5, "dispersion_se": 0.12}) is not None
    assert verdict({**calm, "dispersion": 1.5, "dispersion_se": 0.13}, dispersion_z=3) is not None
    assert verdict({**calm, "dispersion": 1.3}, band=1.2) is not None
    assert verdict({**calm, "p": 1e-3}, level=1e-2) is not None
    assert "KSD 3.46x" in verdict({**calm, "ratio": 3.456, "p": 0.0})
    # A report written before the dispersion existed is read on its p-value alone.
    assert verdict({"ratio": 5.0, "z": 0.5, "p": 0.3}) is None


def test_bad_input_is_refused():
    x = jnp.asarray(_points()[0], jnp.float32)  # the shape and dtype compiled above
    with pytest.raises(DataError, match="samples must have shape"):
        kernel_stein_discrepancy(x[:, 0], x[:, 0])
    with pytest.raises(DataError, match="samples must have shape"):
        gaussian_reference(x[:1], jr.key(0))
    with pytest.raises(DataError, match="scores must have"):
        kernel_stein_discrepancy(x, x[:, :2])
    with pytest.raises(DataError, match="scale must have"):
        kernel_stein_discrepancy(x, x, scale=jnp.ones(2))
    with pytest.raises(eqx.EquinoxRuntimeError, match="scores contain NaN"):
        kernel_stein_discrepancy(x, x.at[2, 1].set(jnp.nan))


def test_identical_samples_give_a_finite_ksd():
    """A fully collapsed sample (all draws equal): sd floored, length-scale falls back to 1."""
    x = jnp.full((7, 3), 2.5)
    ksd = kernel_stein_discrepancy(x, -x)
    assert np.isfinite(float(ksd))
