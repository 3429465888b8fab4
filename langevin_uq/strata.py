"""Which basin each of ``R`` replicas belongs to, when a sampler keeps one stratum per basin.

With several basins (`langevin_uq.modes`) the Langevin sampler draws replica ``i`` of ``R`` from
basin ``k(i)`` with fixed fractions ``mass_k`` (`langevin_uq.mixture_tilt.MixtureTilt`): a
stratified mixture. The labels are a deterministic function of ``i``, ``R`` and the masses, so
training, drawing and a resumed run agree without storing them: ``k(i)`` is the basin whose
share of ``[0, 1)`` (cumulative masses, lowest basin first) holds the point ``frac((i + 1/2)
phi)`` of the golden-ratio (Weyl) sequence. Every basin then holds ``R mass_k`` replicas to
within about ``log R``, and so does every leading block of them.
"""

import jax.numpy as jnp
import numpy as np

from ._types import Array, Float, Int

_PHI = (np.sqrt(5.0) - 1.0) / 2.0


def strata(log_mass: Float[Array, " K"], n: int) -> Int[Array, " n"]:
    """The basin of each of ``n`` replicas for the (normalised) log masses ``log_mass``."""
    points = jnp.asarray(np.mod((np.arange(n) + 0.5) * _PHI, 1.0), log_mass.dtype)
    edges = jnp.cumsum(jnp.exp(log_mass))[:-1]
    return jnp.searchsorted(edges, points, side="right")
