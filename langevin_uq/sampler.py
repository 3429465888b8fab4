"""The Langevin hypernetwork: a learned-drift SDE over the stochastic weights.

METHOD sections 5-6 (Eq. 9-14, 23, A-15, A-17). Replicas ``w^r`` start near the MLE and follow

    w_{k+1} = w_k + dtau_k [f_p(w_k) + g_theta(w_k, tau_k)] + gamma sqrt(2 dtau_k) xi_k

with the OU prior drift ``f_p`` and a learned correction ``g_theta``. Both SDEs share the
diffusion, so the KL between the discrete path laws is exactly the sum over steps of
``dtau_k |g_theta(w_k, tau_k)|^2 / (4 gamma^2)`` (both drifts at the same pre-step state); its
average over replicas is the path-KL estimate. The last states are the posterior samples.

Two choices go beyond the paper (METHOD marks the drift form as a choice), both measured:

* The drift also sees the pseudo-time ``tau``. With a time-independent drift the path KL is a
  loose bound whose optimum is far too wide when the posterior is much narrower than the prior
  (2.3x the exact posterior sd at posterior sd 0.15 under a unit prior); with ``tau`` as input the
  optimal drift is the Doob h-transform of the prior and the bound is tight.
* The pseudo-time grid is geometric towards ``T`` (steps shrink like the remaining time), and the
  network's output is divided by the remaining time, so that the late, stiff part of the
  transport is resolved with the same number of steps per decade of scale.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ._types import Array, Float, PRNGKeyArray
from .errors import ConfigError
from .htransform import GaussNewtonTransform, LaplaceTransform
from .model import MLP
from .prior import OUPrior

SCHEDULES = ("geometric", "uniform")


def pseudo_time_grid(
    steps: int, dtau: float, schedule: str = "geometric", final_dtau: float = 1e-4
) -> Float[np.ndarray, " S+1"]:
    """Pseudo-times ``0 = tau_0 < ... < tau_S = T`` with ``T = steps * dtau``.

    ``"uniform"`` takes equal steps ``dtau`` (the paper). ``"geometric"`` makes the remaining time
    ``T - tau_k`` decay geometrically from ``T`` to ``final_dtau``, so the last step is
    ``final_dtau`` and ``dtau_k / (T - tau_k)`` is the same for every step.
    """
    if steps < 2:
        raise ConfigError(f"sampler.steps must be at least 2, got {steps}")
    if not dtau > 0:
        raise ConfigError(f"sampler.dtau must be positive, got {dtau}")
    total = steps * dtau
    if schedule == "uniform":
        return np.linspace(0.0, total, steps + 1)
    if schedule != "geometric":
        raise ConfigError(f"sampler.schedule = {schedule!r}; use one of {', '.join(SCHEDULES)}")
    if not 0 < final_dtau < dtau:
        raise ConfigError(f"sampler.final_dtau must lie in (0, dtau = {dtau}), got {final_dtau}")
    ratio = (final_dtau / total) ** (1.0 / (steps - 1))
    remaining = total * ratio ** np.arange(steps)
    return np.append(total - remaining, total)


class Drift(eqx.Module):
    """The learned drift correction ``g_theta(w, tau)``; the sampler's drift is ``f_p + g``.

    Inputs are the weights relative to the sampler's starting point in units of the prior scale,
    and (when time-dependent) two features of ``tau``. The output is a linear map plus an MLP;
    both output layers start at zero, so training starts from the prior SDE, or, with
    ``guide``, from an h-transform of an approximate likelihood (`langevin_uq.htransform`), a
    fixed term the trained part is added to.
    """

    linear: eqx.nn.Linear
    mlp: MLP
    guide: LaplaceTransform | GaussNewtonTransform | None
    time_dependent: bool = eqx.field(static=True)

    def __init__(
        self,
        n_weights: int,
        hidden: list[int],
        *,
        time_dependent: bool,
        contraction: float = 0.0,
        guide: LaplaceTransform | GaussNewtonTransform | None = None,
        key: PRNGKeyArray,
    ):
        n_in = 3 * n_weights + 2 if time_dependent else n_weights
        k_lin, k_mlp = jr.split(key)
        linear = eqx.nn.Linear(n_in, n_weights, key=k_lin)
        # Start from -contraction * u on the weights (a bridge-like pull back to the start
        # when time-dependent); contraction = 0 starts from the prior SDE.
        weight = (
            jnp.zeros_like(linear.weight).at[:, :n_weights].set(-contraction * jnp.eye(n_weights))
        )
        self.linear = eqx.tree_at(
            lambda lin: (lin.weight, lin.bias), linear, (weight, jnp.zeros_like(linear.bias))
        )
        mlp = MLP(n_in, n_weights, hidden, "tanh", key=k_mlp)
        last = mlp.layers[-1]
        self.mlp = eqx.tree_at(
            lambda m: (m.layers[-1].weight, m.layers[-1].bias),
            mlp,
            (jnp.zeros_like(last.weight), jnp.zeros_like(last.bias)),
        )
        self.guide = guide
        self.time_dependent = time_dependent

    def __call__(self, z: Float[Array, " n_in"]) -> Float[Array, " ns"]:
        return self.linear(z) + self.mlp(z)


class LangevinSampler(eqx.Module):
    """Everything but the trainable drift needed to simulate the posterior SDE.

    Attributes:
        prior: the OU prior (its mean and scale).
        remaining: the pseudo-time grid as remaining times ``T - tau_k``, shape ``(S + 1,)``,
            from ``T`` down to 0. Kept this way (computed in float64 from ``taus``) because the
            last steps of a geometric grid lie far below float32's resolution at ``T``.
        init_center: replicas start at ``init_center + init_noise * xi`` (the MLE's ``w_S``).
        init_noise: standard deviation of the initial perturbation.
    """

    prior: OUPrior
    remaining: Float[Array, " S+1"]
    init_center: Float[Array, " ns"]
    init_noise: float = eqx.field(static=True)

    def __init__(
        self,
        prior: OUPrior,
        taus: Float[np.ndarray, " S+1"],
        init_center: Float[Array, " ns"],
        init_noise: float,
    ):
        """``taus``: the grid ``0 = tau_0 < ... < tau_S = T`` (`pseudo_time_grid`)."""
        taus = np.asarray(taus, np.float64)
        self.prior = prior
        self.remaining = jnp.asarray(taus[-1] - taus, init_center.dtype)
        self.init_center = init_center
        self.init_noise = init_noise

    @property
    def total_time(self) -> Float[Array, ""]:
        return self.remaining[0]

    def with_grid(self, taus: Float[np.ndarray, " S+1"]) -> "LangevinSampler":
        """The same sampler on another pseudo-time grid."""
        return LangevinSampler(self.prior, taus, self.init_center, self.init_noise)

    def drift_correction(
        self, drift: Drift, w: Float[Array, " ns"], remaining: Float[Array, ""]
    ) -> Float[Array, " ns"]:
        """``g_theta(w, tau)`` in weight units per unit pseudo-time, at ``remaining = T - tau``."""
        s = self.prior.scale
        base = 0.0 if drift.guide is None else drift.guide(w, remaining, self.prior.mean, s)
        u = (w - self.init_center) / s
        if not drift.time_dependent:
            return base + drift(u) / s
        total = self.total_time
        offset = self.remaining[-2]
        shifted = remaining + offset
        phi = jnp.stack([1 - remaining / total, jnp.log(shifted / total) / jnp.log(offset / total)])
        phi = phi.astype(w.dtype)
        # u * phi lets the linear part's gain change with tau, as the h-transform's does.
        z = jnp.concatenate([u, u * phi[0], u * phi[1], phi])
        return base + s * drift(z) / shifted

    def drift(self, drift: Drift, w: Float[Array, " ns"], remaining: Float[Array, ""]):
        """The posterior SDE's full drift ``f_theta = f_p + g_theta`` (approximates the score)
        at ``remaining = T - tau``."""
        return self.prior.drift(w) + self.drift_correction(drift, w, remaining)

    def simulate(
        self,
        drift: Drift,
        key: PRNGKeyArray,
        n_replicas: int,
        gamma: Float[Array, ""] | float = 1.0,
        *,
        save_path: bool = False,
    ) -> tuple[Float[Array, "R ns"], Float[Array, " R"], Float[Array, "S+1 R ns"] | None]:
        """Euler-Maruyama with ``n_replicas`` replicas (Eq. 23) and the path-KL per replica.

        Returns:
            ``(w_T, kl, path)``: the last states ``(R, ns)``, each replica's path-KL estimate
            ``sum_k dtau_k |g|^2 / (4 gamma^2)`` ``(R,)``, and the whole path ``(S + 1, R, ns)``
            when ``save_path`` (else ``None``).
        """
        dtype = self.init_center.dtype
        gamma = jnp.asarray(gamma, dtype)
        k_init, k_steps = jr.split(key)
        ns = self.init_center.shape[0]
        w0 = self.init_center + self.init_noise * jr.normal(k_init, (n_replicas, ns), dtype)
        remaining = self.remaining.astype(dtype)
        step_keys = jr.split(k_steps, remaining.shape[0] - 1)
        correction = jax.vmap(self.drift_correction, in_axes=(None, 0, None))

        def step(carry, inputs):
            w, kl = carry
            left, dtau, k = inputs
            g = correction(drift, w, left)
            noise = jr.normal(k, w.shape, dtype)
            w_next = w + dtau * (self.prior.drift(w) + g) + gamma * jnp.sqrt(2 * dtau) * noise
            kl = kl + dtau * jnp.sum(g**2, axis=-1) / (4 * gamma**2)
            return (w_next, kl), (w_next if save_path else None)

        (w_end, kl), path = jax.lax.scan(
            step,
            (w0, jnp.zeros(n_replicas, dtype)),
            (remaining[:-1], remaining[:-1] - remaining[1:], step_keys),
        )
        if save_path:
            path = jnp.concatenate([w0[None], path], axis=0)
        return w_end, kl, path


def anneal_gamma(epoch: Array | int, gamma0: float, anneal_epochs: int) -> Float[Array, ""]:
    """Diffusion multiplier of an epoch: linear from ``gamma0`` down to 1 over ``anneal_epochs``."""
    if anneal_epochs <= 0:
        return jnp.asarray(1.0)
    frac = jnp.clip(1.0 - jnp.asarray(epoch) / anneal_epochs, 0.0, 1.0)
    return 1.0 + (gamma0 - 1.0) * frac
