"""One Gaussian h-transform per basin, each driving its own stratum of replicas (issue 17).

For a multimodal weight posterior (`langevin_uq.modes`: one basin per mode of the data) the
sampler keeps a fixed stratum of replicas per basin: replica ``i`` of ``R`` belongs to basin
``k(i)`` (`langevin_uq.strata`), which holds the fraction ``mass_k`` of them (the posterior's
basin masses), and its drift is that basin's `GaussianTilt`: the exact h-transform of the prior
towards the basin's Gaussian, so untrained the law at ``T`` is the mixture ``sum_k mass_k
N_k``. Training reshapes each basin's law on the ELBO of its own replicas, whose data term the
likelihood restricts to the basin's mode (`langevin_uq.likelihoods.MarginalMixtureLikelihood.
for_strata`), so a replica is scored against ``p(u | D)`` restricted to its basin. The law at
``T`` is then ``sum_k mass_k q_k`` with ``q_k`` the trained approximation of basin ``k``.

Why strata and not a drift that mixes the basins' drifts by their responsibilities (the exact
h-transform of a Gaussian-mixture likelihood): that drift keeps the masses only while every
basin is Gaussian. On the Schloegl NODE with beta = 1 and "mean", where the posterior's low
basin holds 0.63-0.67 of the mass, training moved replicas out of the low basin (0.465 and 0.215
low after 300 epochs, from 0.57 and 0.60 untrained): a reverse-KL objective prefers one basin,
and the responsibilities let replicas follow that preference across the ridge.

Each basin costs what a `GaussianTilt` costs, ``O(ns r)`` per replica; all ``K`` are evaluated
and each replica keeps its own.
"""

import equinox as eqx
import jax
import jax.numpy as jnp

from ._types import Array, Float, Int
from .htransform import GaussianStart
from .sampler import GaussianTilt
from .strata import strata


class MixtureTilt(eqx.Module):
    """The basins' tilts of the module docstring, one stratum of replicas each.

    Attributes:
        components: the basins' tilts (trainable like the single tilt), lowest mode first.
        log_mass: ``log mass_k``, each basin's share of the replicas ``(K,)`` (fixed).
    """

    components: tuple[GaussianTilt, ...]
    log_mass: Float[Array, " K"]

    def __init__(self, starts: list[GaussianStart], mass: Float[Array, " K"], *,
                 prior_start: bool = False):  # fmt: skip
        dtype = starts[0].centre.dtype
        self.components = tuple(GaussianTilt(s, prior_start=prior_start) for s in starts)
        mass = jnp.asarray(mass)
        self.log_mass = jnp.log(jnp.maximum(mass / jnp.sum(mass), 1e-30)).astype(dtype)

    def strata(self, n: int) -> Int[Array, " n"]:
        """The basin of each of ``n`` replicas (`langevin_uq.strata`)."""
        return strata(jax.lax.stop_gradient(self.log_mass), n)

    def __call__(self, u: Float[Array, "R ns"], remaining: Float[Array, ""]):
        drifts = jnp.stack([t(u, remaining) for t in self.components])  # (K, R, ns)
        own = self.strata(u.shape[0])
        return jnp.take_along_axis(drifts, own[None, :, None], axis=0)[0]

    def with_extra_precision(self, extra: float) -> "MixtureTilt":
        """The same mixture with ``extra`` added to every weight's precision in each basin."""
        tilts = tuple(t.with_extra_precision(extra) for t in self.components)
        return eqx.tree_at(lambda m: m.components, self, tilts)
