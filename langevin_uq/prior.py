"""The Ornstein-Uhlenbeck prior on the stochastic weights (METHOD section 5, Eq. 3)."""

import equinox as eqx
import jax.numpy as jnp

from ._types import Array, Float


class OUPrior(eqx.Module):
    """Prior SDE ``dw = -(w - mean) / scale^2 dtau + gamma sqrt(2) dB``.

    With ``gamma = 1`` its stationary law is ``N(mean, scale^2 I)``.

    Attributes:
        mean: the prior mean ``w_bar`` (zeros or the MLE), shape ``(ns,)``.
        scale: the stationary standard deviation ``s``.
    """

    mean: Float[Array, " ns"]
    scale: float = eqx.field(static=True)

    def __check_init__(self):
        if not self.scale > 0:
            raise ValueError(f"prior scale must be positive, got {self.scale}")

    def drift(self, w: Float[Array, "... ns"]) -> Float[Array, "... ns"]:
        """``f_p(w) = -(w - w_bar) / s^2``, the score of the stationary law."""
        return -(w - self.mean) / self.scale**2

    def marginal_variance(self, t_end: float, init_sd: float) -> float:
        """Variance of each coordinate at pseudo-time ``t_end`` started at ``mean + init_sd xi``.

        This is the prior the path-KL ELBO actually regularises towards (see `sampler`).
        """
        decay = jnp.exp(-2.0 * t_end / self.scale**2)
        return float(self.scale**2 * (1.0 - decay) + init_sd**2 * decay)
