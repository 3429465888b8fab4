"""The Ornstein-Uhlenbeck prior on the stochastic weights (METHOD section 5, Eq. 3).

The prior SDE is preconditioned: ``dw = -(w - w_bar) dtau + gamma sqrt(2) s dB`` with a scale
``s`` per weight. Its stationary law is ``N(w_bar, diag s^2)`` (with ``gamma = 1``), as for the
paper's ``dw = -(w - w_bar) / s^2 dtau + sqrt(2) dB``, but every weight relaxes at rate 1
whatever its scale, so small scales are not stiff and a pseudo-time span ``T >= 3`` forgets the
start for every weight alike (METHOD section 5, "Which posterior"). In whitened coordinates
``u = (w - w_bar) / s`` it is the standard OU process ``du = -u dtau + gamma sqrt(2) dB``, which
is where the sampler works.
"""

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ._types import Array, Float


class OUPrior(eqx.Module):
    """Stationary mean and scale per stochastic weight.

    Attributes:
        mean: the prior mean ``w_bar`` (zeros or the MLE), shape ``(ns,)``.
        scale: the stationary standard deviation ``s`` per weight, shape ``(ns,)``.
    """

    mean: Float[Array, " ns"]
    scale: Float[Array, " ns"]

    def __init__(self, mean: Float[Array, " ns"], scale: float | Float[Array, " ns"]):
        self.mean = jnp.asarray(mean)
        self.scale = jnp.broadcast_to(jnp.asarray(scale, self.mean.dtype), self.mean.shape)

    def __check_init__(self):
        scale = np.asarray(self.scale)
        if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            raise ValueError(f"prior scale must be positive, got {scale}")

    def whiten(self, w: Float[Array, "... ns"]) -> Float[Array, "... ns"]:
        """``u = (w - w_bar) / s``: weights in prior units."""
        return (w - self.mean) / self.scale

    def unwhiten(self, u: Float[Array, "... ns"]) -> Float[Array, "... ns"]:
        """``w = w_bar + s u``."""
        return self.mean + self.scale * u

    def transition(self, remaining, start: Float[Array, "... ns"], init_sd: float = 0.0):
        """Mean and variance of ``w`` after pseudo-time ``remaining`` from ``start + init_sd xi``.

        This is the prior the path-KL ELBO regularises towards; for ``remaining >= 3`` it is
        the stationary law to within 0.25 % in variance.
        """
        a = np.exp(-remaining)
        mean = self.mean + a * (start - self.mean)
        var = self.scale**2 * (1 - a**2) + init_sd**2 * a**2
        return mean, var
