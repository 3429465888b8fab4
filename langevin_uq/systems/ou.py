"""The OU / Langevin demonstration system and the analytic law of its weights (METHOD.md
section 11; paper Eq. 28-31 and App. C).

Each trajectory relaxes as x(t) = mu + (x0 - mu) exp(-theta t) with its own rate theta and level mu
drawn independently, theta ~ N(theta_mean, theta_sd^2) and mu ~ N(mu_mean, mu_sd^2). A linear model
dx/dt = w1 x + w2 reproduces it exactly with w1 = -theta and w2 = theta mu, so the law of (w1, w2)
is known in closed form (`OUWeightLaw`) and checks what the sampler learns.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from langevin_uq._types import Array, Float, PRNGKeyArray
from langevin_uq.data import Trajectories, from_arrays
from langevin_uq.systems._checks import check_grid, observation_times
from langevin_uq.systems._checks import require as _require

__all__ = ["OUSystem", "OUWeightLaw", "ou_true_weights", "simulate_ou"]


def _check_moments(theta_mean, theta_sd, mu_mean, mu_sd) -> None:
    for name, value in [("theta_mean", theta_mean), ("mu_mean", mu_mean)]:
        _require(math.isfinite(value), f"{name} must be finite but is {value!r}.")
    for name, value in [("theta_sd", theta_sd), ("mu_sd", mu_sd)]:
        _require(
            math.isfinite(value) and value >= 0, f"{name} must be finite and >= 0 but is {value!r}."
        )


class OUSystem(eqx.Module):
    """Configuration of the OU demonstration data set.

    Attributes
    ----------
    theta_mean, theta_sd : float
        Mean and standard deviation of the relaxation rate theta.
    mu_mean, mu_sd : float
        Mean and standard deviation of the equilibrium level mu.
    x0 : float
        Initial state shared by all trajectories (known, so it is also ``y0``).
    n : int
        Number of trajectories N.
    n_times : int
        Number of observation times T, ``linspace(0, t_end, n_times)``.
    t_end : float
        Last observation time.
    """

    theta_mean: float = 1.0
    theta_sd: float = 0.15
    mu_mean: float = 1.0
    mu_sd: float = 0.15
    x0: float = 0.0
    n: int = 1024
    n_times: int = 50
    t_end: float = 5.0

    def __check_init__(self) -> None:
        _check_moments(self.theta_mean, self.theta_sd, self.mu_mean, self.mu_sd)
        _require(math.isfinite(self.x0), f"x0 must be finite but is {self.x0!r}.")
        check_grid(self.n, self.n_times, self.t_end)

    def times(self) -> Float[np.ndarray, " T"]:
        """Observation times ``linspace(0, t_end, n_times)`` as float32."""
        return observation_times(self.t_end, self.n_times)


def _draw_theta_mu(
    law: "OUWeightLaw", key: PRNGKeyArray, n: int
) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
    """Independent theta and mu draws, the single source of randomness of this module."""
    key_theta, key_mu = jr.split(key)
    theta = law.theta_mean + law.theta_sd * jr.normal(key_theta, (n,))
    mu = law.mu_mean + law.mu_sd * jr.normal(key_mu, (n,))
    return theta, mu


def _system_draws(system: OUSystem, key: PRNGKeyArray) -> tuple[Array, Array, PRNGKeyArray]:
    # The noise key is split off first, so the same `key` gives the same theta and mu whatever
    # `noise_sd` is, and `ou_true_weights` sees the draws behind `simulate_ou`.
    key_params, key_noise = jr.split(key)
    theta, mu = _draw_theta_mu(OUWeightLaw.from_system(system), key_params, system.n)
    return theta, mu, key_noise


def simulate_ou(system: OUSystem, key: PRNGKeyArray, noise_sd: float = 0.0) -> Trajectories:
    """Simulate the OU data set: N trajectories of x(t) = mu + (x0 - mu) exp(-theta t).

    Parameters
    ----------
    system : OUSystem
        The configuration.
    key : PRNGKeyArray
        The one key the whole data set is drawn from.
    noise_sd : float, default 0
        Standard deviation of iid Gaussian observation noise added to ``y[:, 1:]``; the known
        initial state ``y[:, 0] = y0 = x0`` stays exact.

    Returns
    -------
    Trajectories
        float32 data with shared times, ny = 1, no inputs, and one condition group.
    """
    _require(
        math.isfinite(noise_sd) and noise_sd >= 0, f"noise_sd must be >= 0 but is {noise_sd!r}."
    )
    theta, mu, key_noise = _system_draws(system, key)
    t = jnp.asarray(system.times())
    x = mu[:, None] + (system.x0 - mu[:, None]) * jnp.exp(-theta[:, None] * t)
    x = x.at[:, 0].set(system.x0)
    if noise_sd > 0:
        x = x.at[:, 1:].add(noise_sd * jr.normal(key_noise, (system.n, system.n_times - 1)))
    y = np.asarray(x, dtype=np.float32)[:, :, None]
    y0 = np.full((system.n, 1), system.x0, dtype=np.float32)
    return from_arrays(system.times(), y, y0=y0)


def ou_true_weights(system: OUSystem, key: PRNGKeyArray) -> Float[Array, "n 2"]:
    """The exact weights (w1, w2) = (-theta, theta mu) of each trajectory `simulate_ou` draws
    with the same `key`.
    """
    theta, mu, _ = _system_draws(system, key)
    return jnp.stack([-theta, theta * mu], axis=-1)


def _normal_logpdf(z: Array, mean: float, sd: float) -> Array:
    return -0.5 * ((z - mean) / sd) ** 2 - jnp.log(sd) - 0.5 * jnp.log(2 * jnp.pi)


class OUWeightLaw(eqx.Module):
    """Analytic law of the OU model weights (w1, w2) = (-theta, theta mu) (App. C).

    Attributes
    ----------
    theta_mean, theta_sd, mu_mean, mu_sd : float
        Moments of the independent Gaussians theta and mu. Densities and scores need both
        standard deviations > 0.
    """

    theta_mean: float
    theta_sd: float
    mu_mean: float
    mu_sd: float

    def __check_init__(self) -> None:
        _check_moments(self.theta_mean, self.theta_sd, self.mu_mean, self.mu_sd)

    @classmethod
    def from_system(cls, system: OUSystem) -> "OUWeightLaw":
        """The weight law of the data `simulate_ou(system, ...)` produces."""
        return cls(system.theta_mean, system.theta_sd, system.mu_mean, system.mu_sd)

    def mean(self) -> Float[Array, "2"]:
        """(E w1, E w2) = (-theta_mean, theta_mean mu_mean)."""
        return jnp.array([-self.theta_mean, self.theta_mean * self.mu_mean])

    def cov(self) -> Float[Array, "2 2"]:
        """Covariance matrix: Var w1 = theta_sd^2, Cov(w1, w2) = -mu_mean theta_sd^2,
        Var w2 = theta_mean^2 mu_sd^2 + mu_mean^2 theta_sd^2 + theta_sd^2 mu_sd^2.
        """
        var_t, var_m = self.theta_sd**2, self.mu_sd**2
        var_w2 = self.theta_mean**2 * var_m + self.mu_mean**2 * var_t + var_t * var_m
        c12 = -self.mu_mean * var_t
        return jnp.array([[var_t, c12], [c12, var_w2]])

    def sd(self) -> Float[Array, "2"]:
        """Standard deviations (sd w1, sd w2)."""
        return jnp.sqrt(jnp.diag(self.cov()))

    def corr(self) -> Float[Array, "2 2"]:
        """Correlation matrix; ``corr()[0, 1]`` is the correlation of w1 and w2."""
        sd = self.sd()
        return self.cov() / (sd[:, None] * sd[None, :])

    def log_density(self, w: Float[Array, "*batch 2"]) -> Float[Array, "*batch"]:
        """log p(w1, w2) = log[N(-w1; theta_mean, theta_sd^2) N(-w2/w1; mu_mean, mu_sd^2) / |w1|].

        The change of variables (theta, mu) -> (-theta, theta mu) has Jacobian |theta| = |w1|.
        """
        w = jnp.asarray(w)
        w1, w2 = w[..., 0], w[..., 1]
        return (
            _normal_logpdf(-w1, self.theta_mean, self.theta_sd)
            + _normal_logpdf(-w2 / w1, self.mu_mean, self.mu_sd)
            - jnp.log(jnp.abs(w1))
        )

    def score(self, w: Float[Array, "*batch 2"]) -> Float[Array, "*batch 2"]:
        """Gradient of `log_density` with respect to (w1, w2), at each point of the batch."""
        w = jnp.asarray(w)
        flat = w.reshape(-1, 2)
        grads = jax.vmap(jax.grad(self.log_density))(flat)
        return grads.reshape(w.shape)

    def sample(self, key: PRNGKeyArray, n: int) -> Float[Array, "n 2"]:
        """Draw `n` independent (w1, w2) pairs."""
        theta, mu = _draw_theta_mu(self, key, n)
        return jnp.stack([-theta, theta * mu], axis=-1)
