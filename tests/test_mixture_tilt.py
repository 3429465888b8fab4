"""One stratum of replicas per basin (`langevin_uq.mixture_tilt`) on exact two-Gaussian cases."""

import json
import re

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from conftest import tiny_config

from langevin_uq.config import Config
from langevin_uq.data import Trajectories
from langevin_uq.errors import ConfigError
from langevin_uq.htransform import GaussianStart
from langevin_uq.mixture_tilt import MixtureTilt
from langevin_uq.path_weights import path_log_weights
from langevin_uq.prior import OUPrior
from langevin_uq.run import fit, load_run, predict, sample_weights
from langevin_uq.sampler import Drift, LangevinSampler, pseudo_time_grid
from langevin_uq.systems.ou import OUSystem, simulate_ou


def _start(centre, lam):
    centre = jnp.asarray(centre, jnp.float32)
    return GaussianStart(centre=centre, eigvecs=jnp.eye(2), eigvals=jnp.asarray([lam, lam]),
                         diag=jnp.zeros(2), max_precision=lam)  # fmt: skip


@pytest.mark.parametrize("mass", [0.3, 0.8])
def test_the_law_at_T_has_the_basin_masses_and_each_basin_its_gaussian(mass):
    """Prior N(0, I) and one stratum of replicas per basin of ``N(c_k, I / l_k)``: basin ``k``
    holds the share ``mass_k`` of the replicas, and its law at ``T`` is the prior times its
    Gaussian, ``N(l_k c_k / (1 + l_k), I / (1 + l_k))``."""
    centres, lams = (np.array([-4.0, 0.5]), np.array([3.0, -0.5])), (4.0, 1.0)
    starts = [_start(c, lam) for c, lam in zip(centres, lams, strict=True)]
    tilt = MixtureTilt(starts, jnp.asarray([mass, 1 - mass]))
    # The residual's last layer starts at zero: the drift is the basins' tilts alone.
    drift = eqx.tree_at(lambda d: d.tilt, Drift(starts[0], [8], key=jr.key(0)), tilt)
    sampler = LangevinSampler(OUPrior(jnp.zeros(2), 1.0), pseudo_time_grid(200, 0.02),
                              jnp.zeros(2), 1e-2)  # fmt: skip
    n = 8000
    w, _, _ = sampler.simulate(drift, jr.key(1), n)
    w = np.asarray(w, np.float64)
    low = np.asarray(tilt.strata(n)) == 0
    assert np.mean(low != (w[:, 0] < -0.8)) < 1e-3  # each stratum's draws lie in its basin
    assert abs(low.mean() - mass) < 2 / n * np.log(n)
    assert abs(low[:100].mean() - mass) < 0.05  # every leading block is stratified too
    for member, c, lam in zip((w[low], w[~low]), centres, lams, strict=True):
        var = 1 / (1 + lam)
        np.testing.assert_allclose(member.mean(axis=0), lam * var * c,
                                   atol=4 * np.sqrt(var / len(member)) + 0.01)  # fmt: skip
        np.testing.assert_allclose(member.var(axis=0), var, rtol=0.1)


@pytest.mark.parametrize(
    ("sections", "fragment"),
    [
        ({"sampler": {"modes": 2}}, "needs likelihood.kind"),
        ({"sampler": {"modes": 3}, "likelihood": {"kind": "marginal-mixture", "modes": 2}},
         "likelihood.modes = 3"),
        ({"sampler": {"modes": 1.5}}, "whole number"),
        ({"sampler": {"modes": "many"}}, "sampler.modes"),
    ],
)  # fmt: skip
def test_several_basins_need_the_mixture_likelihood_with_as_many_modes(sections, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        Config.from_dict(sections)
    Config.from_dict({"sampler": {"modes": 2}, "likelihood": {"kind": "marginal-mixture",
                                                               "modes": 2}})  # fmt: skip


def test_path_weights_are_constant_under_the_exact_h_transform_and_correct_wrong_masses():
    """Under the exact h-transform of a stratum's Gaussian the path's likelihood ratio times
    that Gaussian at ``u_T`` is ``h_k(u_0)`` for every replica: the log importance weights' sd
    is the discretisation error only. Against the likelihood ``sum_k w_k N_k`` whose posterior
    puts 0.3 in the low basin, strata of 0.6 and 0.4 are corrected by the self-normalised
    weights (each divided by its stratum's share)."""
    centres, lams = (np.array([-4.0, 0.5]), np.array([3.0, -0.5])), (4.0, 1.0)
    starts = [_start(c, lam) for c, lam in zip(centres, lams, strict=True)]
    total = 4.0
    v = -np.expm1(-2 * total)
    # log h_k(0, 0) for a start at 0: -1/2 log det(I + v l I) - 1/2 l |c|^2 / (1 + v l)
    log_h = np.array([-np.log1p(v * lam) - 0.5 * lam * np.sum(c**2) / (1 + v * lam)
                      for c, lam in zip(centres, lams, strict=True)])  # fmt: skip
    target = np.log([0.3, 0.7]) - log_h  # log w_k: posterior basin masses 0.3 and 0.7
    sampler = LangevinSampler(OUPrior(jnp.zeros(2), 1.0), pseudo_time_grid(200, total / 200),
                              jnp.zeros(2), 1e-2)  # fmt: skip
    base = Drift(starts[1], [8], key=jr.key(0))

    def weights(mass):
        tilt = MixtureTilt(starts, jnp.asarray([mass, 1 - mass]))
        w, log_path = path_log_weights(sampler, eqx.tree_at(lambda d: d.tilt, base, tilt),
                                       jr.key(3), 4000)  # fmt: skip
        w = np.asarray(w, np.float64)
        log_like = np.logaddexp(*[target[k] - 0.5 * lams[k] * np.sum((w - centres[k]) ** 2, 1)
                                  for k in range(2)])  # fmt: skip
        return w[:, 0] < -0.8, np.asarray(log_path, np.float64) + log_like

    low, log_w = weights(0.3)
    assert np.std(log_w) < 0.3
    low, log_w = weights(0.6)
    assert abs(low.mean() - 0.6) < 0.01
    w = np.exp(log_w - log_w.max())
    p = np.sum(w * low) / w.sum()
    se = np.sqrt(np.sum(w**2 * (low - p) ** 2)) / w.sum()
    assert abs(p - 0.3) < 4 * se + 0.01  # + the 200-step grid's bias


def test_a_two_mode_fit_starts_in_both_basins_and_reloads_bit_exactly(tmp_path):
    """End to end on OU data whose level is bimodal (mu near 0.5 or 1.5): ``sampler.modes =
    "auto"`` with a two-mode mixture likelihood records both basins' ranks and Laplace fractions,
    and a run directory reloads the mixture drift (`load_run` builds its skeleton from them).
    Each stratum's draws follow its own mode (the low one first)."""
    low = simulate_ou(OUSystem(n=16, n_times=8, mu_mean=0.5, mu_sd=0.05), jr.key(0))
    high = simulate_ou(OUSystem(n=16, n_times=8, mu_mean=1.5, mu_sd=0.05), jr.key(1))
    data = Trajectories(t=np.concatenate([low.t, high.t]), y=np.concatenate([low.y, high.y]),
                        x=None, y0=np.concatenate([low.y0, high.y0]),
                        group=np.zeros(32, dtype=int))  # fmt: skip
    config = tiny_config(likelihood={"kind": "marginal-mixture", "modes": 2},
                         train={"epochs": 2, "mle_epochs": 200})  # fmt: skip
    run = fit(data, config, run_dir=tmp_path / "run")
    record = json.loads((tmp_path / "run" / "model.json").read_text())["drift"]
    assert len(record["mode_ranks"]) == 2 and np.isclose(sum(record["mode_fractions"]), 1.0)
    assert isinstance(run.posterior.drift.tilt, MixtureTilt)
    again = load_run(tmp_path / "run")
    a, b = (np.asarray(sample_weights(r, 64, jr.key(5))) for r in (run, again))
    np.testing.assert_array_equal(a, b)
    level = predict(run, data, jnp.asarray(a))[:, 0, -1, 0]  # (64,): one input group
    label = np.asarray(run.posterior.drift.tilt.strata(64))
    assert set(label) == {0, 1} and np.all((level > 1.0) == (label == 1))
