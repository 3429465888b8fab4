"""The Schloegl system and its exact SSA simulator (METHOD.md section 11, Eq. 32-35)."""

import dataclasses

import jax.random as jr
import numpy as np
import pytest
from scipy.linalg import expm
from scipy.stats import binom, chi2

from langevin_uq.errors import ConfigError
from langevin_uq.systems.schlogl import SchloglSystem, simulate_schlogl

# The classic system shrunk tenfold (k1 x10, k2 x100, B / 10), so its rate equation has the same
# three fixed points divided by 10 (near 8.5, 25 and 56.5) and the master equation fits on a small
# truncated state space. Starting at the unstable point populates both modes.
SMALL = SchloglSystem(k1=3e-6, k2=1e-2, b=2e4, x0=25, n=10_000, n_times=9, t_end=4.0)
X_MAX = 150  # truncation of the master equation's state space
CHECKED = [1, 3, 8]  # observation indices compared: t = 0.5, 1.5, 4
P_MIN = 1e-3  # a p-value below this fails the chi-square check


def _master_equation(system, combinatorial=True):
    """P(X(t) = x) for x = 0..X_MAX at each observation time of `system`, (T, X_MAX + 1), from the
    chemical master equation dp/dt = p Q on the truncated state space. The propensities are written
    out here from METHOD.md rather than taken from the module under test.
    """
    x = np.arange(X_MAX + 1, dtype=np.float64)
    pairs = x * (x - 1) if combinatorial else x**2
    triples = x * (x - 1) * (x - 2) if combinatorial else x**3
    birth = system.k1 / 2 * system.a * pairs + system.k3 * system.b
    death = system.k2 / 6 * triples + system.k4 * x
    q = np.diag(birth[:-1], 1) + np.diag(death[1:], -1)  # no birth out of X_MAX
    q -= np.diag(q.sum(axis=1))
    # One propagator over the (uniform) observation step, applied T - 1 times: far cheaper than
    # an expm per time, whose scaling and squaring grows with t |Q|.
    step = expm(q * (system.t_end / (system.n_times - 1)))
    p = [np.eye(X_MAX + 1)[system.x0]]
    for _ in range(system.n_times - 1):
        p.append(p[-1] @ step)
    return np.stack(p)


def _chi2_pvalue(sample, p):
    """Pearson chi-square p-value of integer `sample` against the pmf `p` on 0..len(p)-1, with
    neighbouring states merged until each bin expects at least 5 draws (the usual validity rule).
    """
    assert sample.min() >= 0 and sample.max() < p.size
    observed = np.bincount(sample.astype(np.int64), minlength=p.size)
    expected = sample.size * p
    starts, pending = [0], 0.0
    for i, e in enumerate(expected[:-1]):
        pending += e
        if pending >= 5:
            starts.append(i + 1)
            pending = 0.0
    if expected[starts[-1] :].sum() < 5:  # merge a thin tail into the bin before it
        starts.pop()
    o, e = np.add.reduceat(observed, starts), np.add.reduceat(expected, starts)
    return chi2.sf(np.sum((o - e) ** 2 / e), len(starts) - 1)


@pytest.fixture(scope="module")
def small_data():
    return simulate_schlogl(SMALL, jr.key(0))


def _check_against_master_equation(data, system, **kwargs):
    p = _master_equation(system, **kwargs)[CHECKED]
    # The truncation is harmless: the last 20 states hold a negligible mass at every time.
    assert p[:, -20:].sum() < 1e-6
    return [_chi2_pvalue(data.y[:, i, 0], pi) for i, pi in zip(CHECKED, p, strict=True)]


def test_ssa_matches_the_master_equation(small_data):
    # 10,000 independent trajectories; a correct simulator fails one of the three checks with
    # probability at most 3e-3 (Bonferroni), and the key is fixed, so the outcome is too.
    pvalues = _check_against_master_equation(small_data, SMALL)
    assert min(pvalues) > P_MIN, pvalues


@pytest.mark.parametrize(
    ("wrong", "kwargs"),
    [
        (dataclasses.replace(SMALL, k4=1.05 * SMALL.k4), {}),  # a rate constant 5 % off
        (SMALL, {"combinatorial": False}),  # k1/2 A X^2, k2/6 X^3 instead of X(X-1), X(X-1)(X-2)
    ],
    ids=["k4-5pct-off", "mass-action"],
)
def test_master_equation_check_rejects_wrong_propensities(small_data, wrong, kwargs):
    # The same check has the power to see a small error in the propensities.
    pvalues = _check_against_master_equation(small_data, wrong, **kwargs)
    assert min(pvalues) < P_MIN, pvalues


def test_pure_death_is_binomial():
    # With only X -> B, each molecule survives to time t with probability exp(-k4 t), so
    # X(t) ~ Binomial(x0, exp(-k4 t)); trajectories that die out reach a zero total propensity.
    system = SchloglSystem(k1=0.0, k2=0.0, k4=1.0, b=0.0, x0=30, n=4000, n_times=4, t_end=3.0)
    data = simulate_schlogl(system, jr.key(4))
    for j in range(1, system.n_times):
        pmf = binom.pmf(np.arange(31), 30, np.exp(-float(data.t[0, j])))
        assert _chi2_pvalue(data.y[:, j, 0], pmf) > P_MIN


def test_output_format_and_determinism():
    system = dataclasses.replace(SMALL, n=50, n_times=12, t_end=2.0)
    data = simulate_schlogl(system, jr.key(1))
    assert (data.n_trajectories, data.n_times, data.n_outputs, data.n_inputs) == (50, 12, 1, 0)
    assert data.y.dtype == np.float32 and data.y0.dtype == np.float32
    np.testing.assert_array_equal(
        data.t, np.broadcast_to(np.linspace(0, 2, 12, dtype=np.float32), (50, 12))
    )
    np.testing.assert_array_equal(data.y[:, 0], np.full((50, 1), 25.0, np.float32))
    np.testing.assert_array_equal(data.y0, np.full((50, 1), 25.0, np.float32))
    np.testing.assert_array_equal(data.group, np.zeros(50))
    assert np.all(data.y >= 0) and np.array_equal(data.y, np.round(data.y))
    assert np.any(data.y[:, 1:] != 25.0)
    np.testing.assert_array_equal(simulate_schlogl(system, jr.key(1)).y, data.y)
    assert not np.array_equal(simulate_schlogl(system, jr.key(2)).y, data.y)


def test_propensities_are_the_combinatorial_forms():
    system = SchloglSystem()
    a = system.propensities(np.array([[0, 1, 2, 3, 250]]))
    assert a.shape == (1, 5, 4) and a.dtype == np.float64
    expected = [
        [0.0, 0.0, 200.0, 0.0],
        [0.0, 0.0, 200.0, 3.5],
        [0.03, 0.0, 200.0, 7.0],
        [0.09, 1e-4, 200.0, 10.5],
        [0.015 * 250 * 249, 1e-4 / 6 * 250 * 249 * 248, 200.0, 875.0],
    ]
    np.testing.assert_allclose(a[0], expected, rtol=1e-12)


def test_default_system_is_bimodal():
    # 64 trajectories from the unstable point x0 = 250; in larger runs about 47 % end in the upper
    # mode (near 565) and the rest in the lower one (near 85), so fewer than 10 of 64 in either
    # mode has binomial probability below 1e-8.
    data = simulate_schlogl(SchloglSystem(n=64), jr.key(0))
    last = data.y[:, -1, 0]
    low, high = last[last < 250], last[last >= 250]
    assert len(low) >= 10 and len(high) >= 10
    # The modes sit at the stable points of the rate equation. 86 and 558 are the mode medians of
    # 1024 trajectories at t = 10; with about 30 trajectories per mode the standard error of a
    # median is about 1.25 sd / sqrt(30), 4 and 10 for the mode sds of 17 and 45, so the bounds
    # are about 4 standard errors.
    assert abs(np.median(low) - 86) < 15 and abs(np.median(high) - 558) < 40
    assert np.sum((last > 200) & (last < 400)) <= 3  # in larger runs, 0.2 % lie in the gap


@pytest.mark.parametrize(
    "kwargs",
    [{"k1": -1e-7}, {"k2": 0.0}, {"k3": float("nan")}, {"k4": float("inf")}, {"a": -1.0},
     {"b": float("nan")}, {"k1": True}, {"x0": -1}, {"x0": 2.5}, {"n": 0}, {"n": True},
     {"n_times": 1}, {"t_end": 0.0}, {"t_end": float("inf")}],
)  # fmt: skip
def test_bad_configs_are_refused(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ConfigError, match=name):
        SchloglSystem(**kwargs)


def test_k2_may_vanish_without_autocatalysis():
    # With k1 A = 0 the system is a birth-death process, bounded without the cubic death.
    SchloglSystem(k1=0.0, k2=0.0)
    SchloglSystem(a=0.0, k2=0.0)
