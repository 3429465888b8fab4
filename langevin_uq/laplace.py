"""The Laplace approximation of the posterior as a starting drift for the Langevin sampler.

Around the MLE ``m`` the data term is approximately quadratic,
``nll(w) ~ nll(m) + 1/2 (w - m)^T H (w - m)`` with ``H`` its Hessian in the stochastic weights.
Under the OU prior (METHOD section 5) the drift correction that turns the prior SDE into one
whose law at ``T`` is prior times ``exp(-nll)`` of that quadratic is the Doob h-transform
``g = 2 grad log h``, with ``h(w, tau) = E[exp(-nll(w_T)) | w_tau = w]``. Given ``w_tau = w``
the prior puts ``w_T`` at ``N(w_bar + a (w - w_bar), v I)`` with ``a = exp(-(T - tau) / s^2)``
and ``v = s^2 (1 - a^2)``, so in the eigenbasis ``H = Q diag(lam) Q^T``

    g(w, tau) = -Q diag(2 a lam / (1 + v lam)) Q^T (w_bar + a (w - w_bar) - m).

For a Gaussian posterior this drift is exact; for a neural ODE it is the linearised answer,
from which training only has to learn the nonlinear remainder. Its gain stays finite at ``T``
(``2 lam``), unlike a bridge's, and in directions the data do not inform (``lam = 0``) it is
the prior itself, so replicas start prior-wide there.

The gradient at ``m`` is taken to be 0: the MLE pre-fit is meant to have converged, and where
it has not, a Newton step along weakly curved directions would throw the replicas far outside
where the quadratic holds (seen: the data model overflowing after a 20-epoch pre-fit).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._types import Array, Float


class LaplaceTransform(eqx.Module):
    """The h-transform drift of a quadratic data term (the module docstring's formula).

    Attributes:
        eigvecs: ``Q``, the Hessian's orthonormal eigenvectors as columns ``(ns, ns)``.
        eigvals: ``lam``, its eigenvalues with negative curvature set to 0 ``(ns,)``.
        centre: ``m``, where the quadratic is centred (the MLE's stochastic weights) ``(ns,)``.

    The arrays are fixed, not trained: `__call__` stops their gradients.
    """

    eigvecs: Float[Array, "ns ns"]
    eigvals: Float[Array, " ns"]
    centre: Float[Array, " ns"]

    @classmethod
    def from_hessian(
        cls, hessian: Float[np.ndarray, "ns ns"], centre: Float[Array, " ns"]
    ) -> "LaplaceTransform":
        """Eigendecompose a Hessian (symmetrised, in float64), dropping negative curvature."""
        h = np.asarray(hessian, np.float64)
        lam, q = np.linalg.eigh(0.5 * (h + h.T))
        dtype = centre.dtype
        return cls(jnp.asarray(q, dtype), jnp.asarray(np.maximum(lam, 0.0), dtype), centre)

    @classmethod
    def placeholder(cls, n: int, dtype) -> "LaplaceTransform":
        """Zero arrays of the right shapes: a skeleton for loading a checkpoint into."""
        return cls(jnp.zeros((n, n), dtype), jnp.zeros(n, dtype), jnp.zeros(n, dtype))

    def __call__(
        self,
        w: Float[Array, " ns"],
        remaining: Float[Array, ""],
        prior_mean: Float[Array, " ns"],
        prior_scale: float,
    ) -> Float[Array, " ns"]:
        """``g(w, tau)`` with ``remaining = T - tau``, in weight units per unit pseudo-time."""
        q, lam, centre = jax.lax.stop_gradient((self.eigvecs, self.eigvals, self.centre))
        a = jnp.exp(-remaining / prior_scale**2)
        v = prior_scale**2 * -jnp.expm1(-2 * remaining / prior_scale**2)
        c = prior_mean + a * (w - prior_mean) - centre
        return -q @ (2 * a * lam / (1 + v * lam) * (q.T @ c))


def data_term_hessian(
    data_term, w_s: Float[Array, " ns"], *, batch: int = 32
) -> Float[np.ndarray, "ns ns"]:
    """Hessian of ``data_term(w_s) -> scalar`` at ``w_s``, ``batch`` columns at a time."""
    grad = jax.grad(data_term)

    def column(e):
        return jax.jvp(grad, (w_s,), (e,))[1]

    eye = jnp.eye(w_s.shape[0], dtype=w_s.dtype)
    return np.asarray(jax.jit(lambda: jax.lax.map(column, eye, batch_size=batch))())
