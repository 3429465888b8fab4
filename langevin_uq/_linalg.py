"""Small linear-algebra helpers of the drift."""

import jax.numpy as jnp

from ._types import Array, Float


def expm_symmetric(a: Float[Array, "r r"], squarings: int = 8, order: int = 8):
    """``expm((a + a^T) / 2)`` by a Taylor polynomial of ``2^-squarings`` times it, squared back.

    Matrix products only: it compiles in a third of the time of `jax.scipy.linalg.expm` (whose
    Pade branches are all compiled), and its relative error stays below 1e-4 for norms up to
    about 25 (precision ratios of e^25 along one direction), far beyond what training reaches.
    """
    sym = 0.5 * (a + a.T) / 2**squarings
    term = out = jnp.eye(a.shape[0], dtype=a.dtype)
    for i in range(1, order + 1):
        term = term @ sym / i
        out = out + term
    for _ in range(squarings):
        out = out @ out
    return out
