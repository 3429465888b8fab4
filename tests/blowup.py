"""A data model that overflows at some weights, for the tests of the overflow guards."""

import equinox as eqx
import jax
import jax.numpy as jnp

from langevin_uq.problem import GroupInputs


class Riccati(eqx.Module):
    """dh/dt = a h^2 from h0 = 1: blows up at t = 1 / a."""

    a: jax.Array

    def vector_field(self, t, h, x):
        return self.a * h**2


INPUTS = GroupInputs(t=jnp.linspace(0.0, 4.0, 9)[None], x=jnp.zeros((1, 9, 0)), y0=jnp.ones((1, 1)))
"""One group on 9 times in [0, 4]: a = 0.1 stays finite, a = 50 blows up in the first interval."""
