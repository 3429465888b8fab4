"""A reversible-then-irreversible reaction chain A <-> B -> C with unknown rate constants.

    dA/dt = -k1 A + k2 B
    dB/dt =  k1 A - (k2 + k3) B,      A(0) = a0 (unknown), B(0) = 0

Both A and B are observed. The rates and the initial amount are positive, so the model's
weights are their logarithms: a Gaussian prior on a log-rate is a log-normal prior on the rate.
"""

import equinox as eqx
import jax
import jax.numpy as jnp


class ReactionChain(eqx.Module):
    log_k: jax.Array  # log k1, log k2, log k3
    log_a0: jax.Array  # log A(0), shape (1,)

    def __init__(self, k=(1.0, 1.0, 1.0), a0=1.0):
        self.log_k = jnp.log(jnp.asarray(k, float))
        self.log_a0 = jnp.log(jnp.asarray([a0], float))

    def vector_field(self, t, h, x):
        k1, k2, k3 = jnp.exp(self.log_k)
        a, b = h
        return jnp.stack([-k1 * a + k2 * b, k1 * a - (k2 + k3) * b])

    def initial_state(self, y0, x0):
        return jnp.concatenate([jnp.exp(self.log_a0), jnp.zeros(1, self.log_a0.dtype)])
