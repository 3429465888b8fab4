"""The mixture h-transform (`langevin_uq.mixture_tilt`) on an exact two-Gaussian likelihood."""

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from langevin_uq.htransform import GaussianStart
from langevin_uq.mixture_tilt import MixtureTilt
from langevin_uq.prior import OUPrior
from langevin_uq.sampler import Drift, LangevinSampler, pseudo_time_grid


def _start(centre, lam):
    centre = jnp.asarray(centre, jnp.float32)
    return GaussianStart(centre=centre, eigvecs=jnp.eye(2), eigvals=jnp.asarray([lam, lam]),
                         diag=jnp.zeros(2), max_precision=lam)  # fmt: skip


@pytest.mark.parametrize("mass", [0.3, 0.8])
def test_the_law_at_T_has_the_basin_masses_and_each_basin_its_gaussian(mass):
    """Prior N(0, I) times ``w_1 N(c_1, I / l_1) + w_2 N(c_2, I / l_2)`` (unnormalised) with
    ``w`` set for basin masses ``(mass, 1 - mass)``: basin ``k`` is
    ``N(l_k c_k / (1 + l_k), I / (1 + l_k))``. The two components' normalisers at the start
    differ by 2.8 nats, so weights equal to the masses would miss them."""
    centres, lams = (np.array([-4.0, 0.5]), np.array([3.0, -0.5])), (4.0, 1.0)
    starts = [_start(c, lam) for c, lam in zip(centres, lams, strict=True)]
    tilt = MixtureTilt(starts, jnp.asarray([mass, 1 - mass]), jnp.zeros(2), 4.0)
    # The residual's last layer starts at zero: the drift is the mixture tilt alone.
    drift = eqx.tree_at(lambda d: d.tilt, Drift(starts[0], [8], key=jr.key(0)), tilt)
    # 800 steps: at 100 and 200 the basin masses came out 0.018 and 0.009 low for mass 0.3
    # and 0.032 and 0.021 for 0.8 (the responsibilities switch on the grid's coarse first steps).
    sampler = LangevinSampler(OUPrior(jnp.zeros(2), 1.0), pseudo_time_grid(800, 0.005),
                              jnp.zeros(2), 1e-2)  # fmt: skip
    n = 8000
    w, _, _ = sampler.simulate(drift, jr.key(1), n)
    w = np.asarray(w, np.float64)
    low = w[:, 0] < -0.8  # the basins overlap by under 1e-3 there
    se = np.sqrt(mass * (1 - mass) / n)
    assert abs(low.mean() - mass) < 4 * se
    for member, c, lam in zip((w[low], w[~low]), centres, lams, strict=True):
        var = 1 / (1 + lam)
        np.testing.assert_allclose(member.mean(axis=0), lam * var * c,
                                   atol=4 * np.sqrt(var / len(member)) + 0.01)  # fmt: skip
        np.testing.assert_allclose(member.var(axis=0), var, rtol=0.1)
