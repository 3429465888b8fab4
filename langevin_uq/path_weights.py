"""Importance weights of the Langevin sampler's replicas against the posterior (issue 17).

The sampler's chain (`langevin_uq.sampler`, gamma = 1) and the prior's share the transition
noise, ``u' = e^{-h} u + c g + sqrt(2 c) xi`` against ``u' = e^{-h} u + sqrt(2 c) xi'``, so the
likelihood ratio of a replica's whole path is

    log dP_prior / dQ = sum_k [ -c_k |g_k|^2 / 4 - sqrt(2 c_k) g_k . xi_k / 2 ],

and with the posterior ``prior(u_T) exp(-data term(u_T) / beta)`` (METHOD section 5) a replica's
log importance weight is that minus ``data term / beta`` at its last state (both chains start at
the same point, so the start cancels). Self-normalised, the weights estimate posterior
expectations, such as each mode's mass, from the sampler's own draws, whatever the drift
learned; their effective sample size says how far the sampler's law is from the posterior.

With one stratum of replicas per basin (`langevin_uq.mixture_tilt`) each replica's path law is
its stratum's, and the stratum holds the share ``n_k / R`` of the replicas: its weight is the
ratio above divided by that share (stratified importance sampling; exact when the strata's laws
do not overlap, as separate basins do not).
"""

import jax.numpy as jnp

from ._types import Array, Float, PRNGKeyArray
from .mixture_tilt import MixtureTilt
from .sampler import Drift, LangevinSampler


def path_log_weights(
    sampler: LangevinSampler, drift: Drift, key: PRNGKeyArray, n_replicas: int
) -> tuple[Float[Array, "R ns"], Float[Array, " R"]]:
    """``(w_T, log dP_prior / dQ)``: the replicas' last states in weight units and each path's
    log likelihood ratio of the prior's chain to the sampler's (gamma = 1)."""
    w_t, log_ratio, _ = sampler.simulate(drift, key, n_replicas, log_ratio=True)
    if isinstance(drift.tilt, MixtureTilt):
        label = drift.tilt.strata(n_replicas)
        share = jnp.bincount(label, length=len(drift.tilt.components)) / n_replicas
        log_ratio = log_ratio - jnp.log(share[label])
    return w_t, log_ratio
