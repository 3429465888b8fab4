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
"""

import jax
import jax.numpy as jnp
import jax.random as jr

from ._types import Array, Float, PRNGKeyArray
from .sampler import Drift, LangevinSampler


def path_log_weights(
    sampler: LangevinSampler, drift: Drift, key: PRNGKeyArray, n_replicas: int
) -> tuple[Float[Array, "R ns"], Float[Array, " R"]]:
    """``(w_T, log dP_prior / dQ)``: the replicas' last states in weight units and each path's
    log likelihood ratio of the prior's chain to the sampler's (gamma = 1)."""
    dtype = sampler.init_center.dtype
    k_init, k_steps = jr.split(key)
    ns = sampler.init_center.shape[0]
    u0 = sampler.prior.whiten(sampler.init_center) + sampler.init_noise * jr.normal(
        k_init, (n_replicas, ns), dtype
    )
    remaining = sampler.remaining.astype(dtype)
    step_keys = jr.split(k_steps, remaining.shape[0] - 1)

    def step(carry, inputs):
        u, log_w = carry
        left, h, k = inputs
        g = sampler.drift_correction(drift, u, left)
        c = -0.5 * jnp.expm1(-2 * h)
        xi = jr.normal(k, u.shape, dtype)
        log_w = log_w - c * jnp.sum(g**2, -1) / 4 - jnp.sqrt(2 * c) * jnp.sum(g * xi, -1) / 2
        return (jnp.exp(-h) * u + c * g + jnp.sqrt(2 * c) * xi, log_w), None

    (u_end, log_w), _ = jax.lax.scan(
        step,
        (u0, jnp.zeros(n_replicas, dtype)),
        (remaining[:-1], remaining[:-1] - remaining[1:], step_keys),
    )
    return sampler.prior.unwhiten(u_end), log_w
