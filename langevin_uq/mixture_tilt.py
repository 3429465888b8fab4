"""The h-transform of the OU prior towards a mixture of Gaussian tilts: a start in every basin.

For a likelihood ``L(u) = sum_k w_k exp(-1/2 (u - c_k)^T Lambda_k (u - c_k))`` (prior units)
and the prior ``du = -u dtau + sqrt(2) dB``, which puts ``u_T`` at ``N(a u, v I)`` given
``u_tau = u`` (``a = e^{-(T - tau)}``, ``v = 1 - a^2``),

    h(u, tau) = sum_k w_k h_k(u, tau),
    h_k = det(I + v Lambda_k)^{-1/2} exp(-1/2 x_k^T (I + v Lambda_k)^{-1} Lambda_k x_k),
    x_k = a u - c_k,

and the drift ``g = 2 grad_u log h = sum_k r_k g_k`` with responsibilities
``r_k = w_k h_k / h`` and ``g_k`` component ``k``'s `langevin_uq.sampler.GaussianTilt` drift.
The law at ``T`` is then the prior's transition times ``L``: a mixture whose component ``k``
holds the mass ``w_k h_k(u_0, 0)`` (``u_0`` the replicas' start). `MixtureTilt` keeps those
masses fixed at ``mass_k`` (the weight posterior's basin masses, `langevin_uq.modes`) by
setting ``log w_k = log mass_k - log h_k(u_0, 0)`` from the current components, so training
reshapes each basin's Gaussian but does not move replicas between basins: a reverse-KL
objective's gradient reaches the masses only through replicas near a basin boundary, which is
what lets a drift collapse into one mode (issue 17).

Each component costs what a `GaussianTilt` costs: ``O(ns r)`` per replica through Woodbury with
``Lambda_k = diag(d_k) + W_k K_k W_k^T``, its log-determinant through the same ``r x r`` matrix.
"""

import equinox as eqx
import jax
import jax.numpy as jnp

from ._types import Array, Float
from .htransform import GaussianStart
from .sampler import GaussianTilt


class MixtureTilt(eqx.Module):
    """The mixture h-transform of the module docstring, one `GaussianTilt` per basin.

    Attributes:
        components: the basins' tilts (trainable like the single tilt).
        log_mass: ``log mass_k``, the masses at ``T`` (fixed: gradients stopped) ``(K,)``.
        start_u: the replicas' start in prior units ``(ns,)``, fixed.
        total: the pseudo-time span ``T``, fixed.
    """

    components: tuple[GaussianTilt, ...]
    log_mass: Float[Array, " K"]
    start_u: Float[Array, " ns"]
    total: Float[Array, ""]

    def __init__(
        self,
        starts: list[GaussianStart],
        mass: Float[Array, " K"],
        start_u: Float[Array, " ns"],
        total: float,
        *,
        prior_start: bool = False,
    ):
        dtype = starts[0].centre.dtype
        self.components = tuple(GaussianTilt(s, prior_start=prior_start) for s in starts)
        mass = jnp.asarray(mass)
        self.log_mass = jnp.log(jnp.maximum(mass / jnp.sum(mass), 1e-30)).astype(dtype)
        self.start_u = jnp.asarray(start_u, dtype)
        self.total = jnp.asarray(total, dtype)

    def log_weights(self) -> Float[Array, " K"]:
        """``log w_k`` that give the law at ``T`` the masses ``mass_k``."""
        log_mass, start_u, total = jax.lax.stop_gradient((self.log_mass, self.start_u,
                                                          self.total))  # fmt: skip
        at_start = jnp.stack([t.terms(start_u[None], total)[1][0]
                              for t in self.components])  # fmt: skip
        return log_mass - at_start

    def responsibilities(self, u: Float[Array, "R ns"], remaining: Float[Array, ""]):
        """``r_k(u, tau)`` ``(R, K)`` and each component's drift ``(K, R, ns)``."""
        terms = [t.terms(u, remaining) for t in self.components]
        drifts = jnp.stack([g for g, _ in terms])
        log_h = jnp.stack([lh for _, lh in terms], axis=-1) + self.log_weights()
        return jax.nn.softmax(log_h, axis=-1), drifts

    def __call__(self, u: Float[Array, "R ns"], remaining: Float[Array, ""]):
        r, drifts = self.responsibilities(u, remaining)
        return jnp.einsum("rk,krn->rn", r, drifts)

    def with_extra_precision(self, extra: float) -> "MixtureTilt":
        """The same mixture with ``extra`` added to every weight's precision in each basin."""
        tilts = tuple(t.with_extra_precision(extra) for t in self.components)
        return eqx.tree_at(lambda m: m.components, self, tilts)
