"""The Langevin hypernetwork: a learned-drift SDE over the stochastic weights.

METHOD sections 5-6 (Eq. 9-14, 23, A-15, A-17). The sampler works in prior units
``u = (w - w_bar) / s`` (`langevin_uq.prior`), where the prior is ``du = -u dtau + gamma sqrt(2)
dB``. Replicas start near the MLE and take, on a grid of pseudo-time steps ``h_k``,

    u_{k+1} = e^{-h_k} u_k + c_k g_theta(u_k, tau_k) + gamma sqrt(2 c_k) xi_k,
    c_k = (1 - e^{-2 h_k}) / 2,

the prior's exact transition plus the learned correction ``g_theta`` (``c_k -> h_k`` for small
steps: Euler-Maruyama of Eq. 23 for the correction). Both chains share the transition noise, so
the KL between the discrete path laws is exactly ``sum_k c_k |g_theta|^2 / (4 gamma^2)`` (both at
the same pre-step state); its average over replicas is the path-KL estimate. With ``g = 0`` the
chain is the prior at every step size, so the regularising law is the prior's transition from the
start, within 0.25 % of the stationary variance for ``T >= 3``.

The drift ``g_theta`` (`Drift`) has three parts, each with one job:

* `GaussianTilt`: the exact h-transform of the prior towards a Gaussian likelihood with a
  diagonal-plus-low-rank precision, in closed form in ``tau``: the optimal drift for a model
  linear in its weights, started at the Gauss-Newton (Laplace) approximation at the MLE
  (`langevin_uq.htransform.GaussianStart`). Its parameters are relative (centre in the start's
  posterior sds, log precisions), so no Adam step moves it by more than a fraction of the
  posterior's width. With several basins, `langevin_uq.mixture_tilt.MixtureTilt` takes its place:
  one tilt per basin, each driving its own stratum of replicas.
* `ProjectedResidual`: an MLP on the projection of ``u`` onto the data-informed directions that
  adds what a Gaussian cannot (curved posteriors), its output scaled by the start's posterior sd
  in each direction, so its first steps move replicas by a fraction of the posterior width.
* an optional fixed guide (`langevin_uq.htransform.GaussNewtonTransform`): the h-transform of
  the data model linearised at each replica, which evaluates the model at every step.

Every part costs ``O(ns r)`` per replica and step with ``r`` the rank, so the sampler's cost
grows linearly in the number of stochastic weights.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ._linalg import expm_symmetric
from ._types import Array, Float, PRNGKeyArray
from .errors import ConfigError
from .htransform import GaussianStart, GaussNewtonTransform, guide_drift
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


def auto_final_dtau(max_precision: float, dtau: float) -> float:
    """The last pseudo-time step for a posterior whose largest precision (prior units) is given.

    The tilt's gain near ``T`` reaches ``2 lambda``: an explicit step must stay below ``1 /
    lambda``, and the last step's noise ``sqrt(2 h)`` below the posterior sd ``lambda^-1/2``.
    ``1e-3 / lambda`` keeps that noise at 4.5 % of the sd (0.1 % in variance).
    """
    return float(min(1e-4, 0.5 * dtau, 1e-3 / max(max_precision, 1e-12)))


class GaussianTilt(eqx.Module):
    """The h-transform of the OU prior towards ``exp(-1/2 (u - c)^T Lambda (u - c))``.

    With ``a = e^{-(T - tau)}`` and ``v = 1 - a^2`` the prior puts ``u_T`` at ``N(a u, v I)``
    given ``u_tau = u``, and the drift that tilts the law at ``T`` by the likelihood is

        g(u, tau) = -2 a (I + v Lambda)^-1 Lambda (a u - c),

    solved by Woodbury with ``Lambda = diag(d) + W K W^T`` (rank ``r``). At ``T`` it is
    ``2 grad log L``; for a likelihood of this form the law at ``T`` is exactly the posterior.

    Attributes:
        offset: trainable centre shift in units of ``sd``: ``c = centre + sd * offset``.
        log_diag: trainable ``log d`` ``(ns,)``.
        log_core: trainable symmetric ``(r, r)``; ``K = expm(log_core)`` stays positive definite.
        centre, sd, basis: fixed: the start's centre, its posterior sd per weight, and ``W``
            ``(ns, r)`` (the informed directions times the square roots of their precisions).
    """

    offset: Float[Array, " ns"]
    log_diag: Float[Array, " ns"]
    log_core: Float[Array, "r r"]
    centre: Float[Array, " ns"]
    sd: Float[Array, " ns"]
    basis: Float[Array, "ns r"]

    def __init__(self, start: GaussianStart, *, prior_start: bool = False):
        """From the Gaussian start; ``prior_start`` scales every precision down by 1e6 (the
        drift then starts as the prior SDE, in practice)."""
        dtype = start.centre.dtype
        shrink = 1e-6 if prior_start else 1.0
        rank = start.eigvals.shape[0]
        self.offset = jnp.zeros_like(start.centre)
        self.log_diag = jnp.log(jnp.maximum(start.diag * shrink, 1e-12)).astype(dtype)
        self.log_core = jnp.asarray(np.log(shrink) * np.eye(rank), dtype)
        self.centre = start.centre
        self.sd = start.posterior_sd()
        self.basis = start.eigvecs * jnp.sqrt(start.eigvals)

    def with_extra_precision(self, extra: float) -> "GaussianTilt":
        """The same tilt with ``extra`` added to every weight's precision (``d``)."""
        return eqx.tree_at(lambda t: t.log_diag, self, jnp.log(jnp.exp(self.log_diag) + extra))

    def __call__(
        self, u: Float[Array, "R ns"], remaining: Float[Array, ""]
    ) -> Float[Array, "R ns"]:
        centre, sd, basis = jax.lax.stop_gradient((self.centre, self.sd, self.basis))
        c = centre + sd * self.offset
        d = jnp.exp(self.log_diag)
        core = expm_symmetric(self.log_core)
        a = jnp.exp(-remaining)
        v = -jnp.expm1(-2 * remaining)
        x = a * u - c
        lam_x = d * x + (x @ basis) @ core.T @ basis.T
        e_inv = 1 / (1 + v * d)
        m = basis @ core  # (ns, r)
        inner = jnp.eye(core.shape[0], dtype=u.dtype) + v * (basis.T * e_inv) @ m
        y = e_inv * lam_x
        corr = jnp.linalg.solve(inner, (y @ basis).T).T  # (R, r)
        return -2 * a * (y - v * e_inv * (corr @ m.T))


class ProjectedResidual(eqx.Module):
    """An MLP correction in the data-informed directions: ``P o(z, tau)`` with
    ``z = P^T (u - centre) / sqrt(sd^2 + v)`` (the projection in units of its spread at ``tau``)
    and output ``o * sd / ((T - tau + sd^2) log(1 + T / sd^2))``, whose integral over the pseudo-
    time moves a replica by about ``o`` posterior sds in each direction.

    Attributes:
        mlp: ``r + 2 -> hidden -> r``, tanh, its last layer zero at the start.
        basis: ``P``, orthonormal ``(ns, r)``, fixed.
        centre: ``P^T`` of the start's centre ``(r,)``, fixed.
        sd: the start's posterior sd along ``P`` ``(r,)``, fixed.
    """

    mlp: MLP
    basis: Float[Array, "ns r"]
    centre: Float[Array, " r"]
    sd: Float[Array, " r"]

    def __init__(self, start: GaussianStart, hidden: list[int], *, key: PRNGKeyArray):
        rank = start.eigvals.shape[0]
        mlp = MLP(rank + 2, rank, hidden, "tanh", key=key)
        mlp = jax.tree.map(lambda a: a.astype(start.centre.dtype), mlp)
        last = mlp.layers[-1]
        self.mlp = eqx.tree_at(
            lambda m: (m.layers[-1].weight, m.layers[-1].bias),
            mlp,
            (jnp.zeros_like(last.weight), jnp.zeros_like(last.bias)),
        )
        self.basis = start.eigvecs
        self.centre = start.eigvecs.T @ start.centre
        self.sd = 1 / jnp.sqrt(1 + start.eigvals)

    def __call__(self, u, remaining, total, phi):
        basis, centre, sd = jax.lax.stop_gradient((self.basis, self.centre, self.sd))
        v = -jnp.expm1(-2 * remaining)
        z = (u @ basis - centre) / jnp.sqrt(sd**2 + v)
        z = jnp.concatenate([z, jnp.broadcast_to(phi, (u.shape[0], 2))], axis=-1)
        out = jax.vmap(self.mlp)(z)
        gain = sd / ((remaining + sd**2) * jnp.log1p(total / sd**2))
        return (out * gain) @ basis.T


class Drift(eqx.Module):
    """The learned drift correction ``g_theta(u, tau)`` in prior units (see the module docs).

    Attributes:
        tilt: the Gaussian h-transform part.
        residual: the MLP on the informed directions.
        guide: a fixed per-replica Gauss-Newton h-transform (``sampler.drift_init =
            "gauss-newton"``), or None.
    """

    tilt: GaussianTilt
    residual: ProjectedResidual
    guide: GaussNewtonTransform | None

    def __init__(
        self,
        start: GaussianStart,
        hidden: list[int],
        *,
        prior_start: bool = False,
        guide: GaussNewtonTransform | None = None,
        key: PRNGKeyArray,
    ):
        self.tilt = GaussianTilt(start, prior_start=prior_start)
        self.residual = ProjectedResidual(start, hidden, key=key)
        self.guide = guide

    rank = property(lambda self: self.residual.basis.shape[1])

    def with_extra_precision(self, extra: float) -> "Drift":
        """The same drift with ``extra`` added to every weight's precision in the tilt."""
        return eqx.tree_at(lambda d: d.tilt, self, self.tilt.with_extra_precision(extra))


class LangevinSampler(eqx.Module):
    """Everything but the trainable drift needed to simulate the posterior SDE.

    Attributes:
        prior: the OU prior (its mean and scale per weight).
        remaining: the pseudo-time grid as remaining times ``T - tau_k``, shape ``(S + 1,)``,
            from ``T`` down to 0. Kept this way (computed in float64 from ``taus``) because the
            last steps of a geometric grid lie far below float32's resolution at ``T``.
        init_center: replicas start at ``init_center + s * init_noise * xi`` (the MLE's
            ``w_S``; the noise is in prior units).
        init_noise: standard deviation of the initial perturbation, in prior units.
        feature_step: the pseudo-time in the drift's log-time feature (`drift_correction`):
            the grid's last step, kept when the grid is `refined`, so the drift stays the same
            function of pseudo-time.
    """

    prior: OUPrior
    remaining: Float[Array, " S+1"]
    init_center: Float[Array, " ns"]
    init_noise: float = eqx.field(static=True)
    feature_step: float = eqx.field(static=True)

    def __init__(
        self,
        prior: OUPrior,
        taus: Float[np.ndarray, " S+1"],
        init_center: Float[Array, " ns"],
        init_noise: float,
        feature_step: float | None = None,
    ):
        """``taus``: the grid ``0 = tau_0 < ... < tau_S = T`` (`pseudo_time_grid`)."""
        taus = np.asarray(taus, np.float64)
        self.prior = prior
        self.remaining = jnp.asarray(taus[-1] - taus, init_center.dtype)
        self.init_center = init_center
        self.init_noise = init_noise
        self.feature_step = float(taus[-1] - taus[-2]) if feature_step is None else feature_step

    @property
    def total_time(self) -> Float[Array, ""]:
        return self.remaining[0]

    def with_grid(self, taus: Float[np.ndarray, " S+1"]) -> "LangevinSampler":
        """The same sampler on another pseudo-time grid."""
        return LangevinSampler(self.prior, taus, self.init_center, self.init_noise)

    def refined(self) -> "LangevinSampler":
        """The same sampler and drift features on a grid with twice the steps: each step split
        in two at its geometric midpoint in remaining time (the last one at its middle). If the
        draws' law moves, the grid is too coarse for the drift (`discretisation_check`)."""
        r = np.asarray(self.remaining, np.float64)
        mid = np.sqrt(r[:-1] * r[1:])
        mid[-1] = 0.5 * r[-2]
        remaining = np.empty(2 * r.size - 1)
        remaining[0::2], remaining[1::2] = r, mid
        return LangevinSampler(self.prior, r[0] - remaining, self.init_center, self.init_noise,
                               self.feature_step)  # fmt: skip

    def score(
        self, drift: Drift, w: Float[Array, "R ns"], remaining: Float[Array, ""]
    ) -> Float[Array, "R ns"]:
        """The learned SDE's drift in score units, ``(g - u) / s``: the preconditioned Langevin
        drift ``s^2 grad log p`` divided by ``s^2``, an approximation of the posterior score."""
        u = self.prior.whiten(w)
        return (self.drift_correction(drift, u, remaining) - u) / self.prior.scale

    def drift_correction(
        self, drift: Drift, u: Float[Array, "R ns"], remaining: Float[Array, ""]
    ) -> Float[Array, "R ns"]:
        """``g_theta(u, tau)`` in prior units per unit pseudo-time, at ``remaining = T - tau``,
        for a batch of replicas."""
        g = self.learned_correction(drift, u, remaining)
        if drift.guide is not None:
            g = g + guide_drift(u, drift.guide, remaining, self.prior)
        return g

    def learned_correction(
        self, drift: Drift, u: Float[Array, "R ns"], remaining: Float[Array, ""]
    ) -> Float[Array, "R ns"]:
        """The drift's trainable parts, the tilt plus the residual: `drift_correction` without
        the guide."""
        total = self.total_time
        last = self.feature_step
        phi = jnp.stack(
            [jnp.exp(-remaining), jnp.log((remaining + last) / (total + last))
             / jnp.log(last / (total + last))]
        ).astype(u.dtype)  # fmt: skip
        return drift.tilt(u, remaining) + drift.residual(u, remaining, total, phi)

    def simulate(
        self,
        drift: Drift,
        key: PRNGKeyArray,
        n_replicas: int,
        gamma: Float[Array, ""] | float = 1.0,
        *,
        save_path: bool = False,
        log_ratio: bool = False,
        sticking: bool = False,
        detached: bool = False,
    ) -> tuple[Float[Array, "R ns"], Float[Array, " R"], Float[Array, "S+1 R ns"] | None]:
        """The replicas' chain (module docstring) and the path-KL per replica.

        With ``sticking``, the path-KL's value is unchanged but its gradient in the drift's
        parameters is the sticking-the-landing estimator's (Roeder et al. 2017): the gradient of
        the path's log ratio ``sum_k [g_k . Delta_k / 2 - c_k |g_k|^2 / 4] / gamma^2`` (``Delta_k
        = u_{k+1} - e^{-h_k} u_k``) through the path only, with the drift's parameters held
        fixed inside it. Its expectation is the same; where the drift is the exact h-transform,
        the log ratio plus the data term is the same for every path, and the gradient of every
        replica is zero (`langevin_uq.methods.ls.ELBO.sticking` says why training does not use
        it by default).

        With ``detached``, the path carries no gradient (nor does the guide's drift): the
        second output keeps its value, and its gradient in the drift's parameters is the score
        of the path's density, ``grad log dQ / dP_prior`` along the path held fixed (the path's
        log ratio above with live ``g_k``). What the score-function estimator of
        `langevin_uq.methods.ls.ELBO` needs: no derivative of the data model, so a guided
        gradient costs about what drawing the replicas costs.

        Returns:
            ``(w_T, kl, path)``: the last states in weight units ``(R, ns)``, each replica's
            path-KL estimate ``sum_k c_k |g|^2 / (4 gamma^2)`` ``(R,)`` (with ``log_ratio``, its
            path's ``log dP_prior / dQ = -kl - sum_k sqrt(2 c_k) g_k . xi_k / (2 gamma)``), and
            the path in weight units ``(S + 1, R, ns)`` when ``save_path`` (else ``None``)."""
        dtype = self.init_center.dtype
        gamma = jnp.asarray(gamma, dtype)
        k_init, k_steps = jr.split(key)
        ns = self.init_center.shape[0]
        u0 = self.prior.whiten(self.init_center) + self.init_noise * jr.normal(
            k_init, (n_replicas, ns), dtype
        )
        remaining = self.remaining.astype(dtype)
        step_keys = jr.split(k_steps, remaining.shape[0] - 1)
        params, static = eqx.partition(drift, eqx.is_array)
        fixed = eqx.combine(jax.lax.stop_gradient(params), static)

        def step(carry, inputs):
            u, kl, ito, stl = carry
            left, h, k = inputs
            learned = self.learned_correction(drift, u, left)
            guide = 0.0 if drift.guide is None else guide_drift(u, drift.guide, left, self.prior)
            if detached:
                guide = jax.lax.stop_gradient(guide)
            g = learned + guide
            c = -0.5 * jnp.expm1(-2 * h)
            noise = jr.normal(k, u.shape, dtype)
            move = jax.lax.stop_gradient(g) if detached else g
            u_next = jnp.exp(-h) * u + c * move + gamma * jnp.sqrt(2 * c) * noise
            kl = kl + c * jnp.sum(g**2, axis=-1) / (4 * gamma**2)
            if log_ratio:
                ito = ito + jnp.sqrt(2 * c) * jnp.sum(move * noise, axis=-1) / (2 * gamma)
            if sticking or detached:
                held = g if detached else self.learned_correction(fixed, u, left) + guide
                delta = u_next - jnp.exp(-h) * u
                stl = stl + jnp.sum(held * delta / 2 - c * held**2 / 4, axis=-1) / gamma**2
            return (u_next, kl, ito, stl), (u_next if save_path else None)

        if detached:
            u0 = jax.lax.stop_gradient(u0)
        elif drift.guide is not None:
            # Differentiating the guide through the path (training uses `detached` instead)
            # takes second derivatives of the data model; kept for every step, their
            # intermediates needed 36 GB on a 321-weight NODE (256 replicas x 100 steps).
            # Recomputed step by step in the backward pass instead.
            step = jax.checkpoint(step)
        zeros = jnp.zeros(n_replicas, dtype)
        steps = (remaining[:-1], remaining[:-1] - remaining[1:], step_keys)
        (u_end, kl, ito, stl), path = jax.lax.scan(step, (u0, zeros, zeros, zeros), steps)
        if sticking or detached:
            kl = jax.lax.stop_gradient(kl) + stl - jax.lax.stop_gradient(stl)
        if save_path:
            path = self.prior.unwhiten(jnp.concatenate([u0[None], path], axis=0))
        return self.prior.unwhiten(u_end), -kl - ito if log_ratio else kl, path


def anneal_gamma(epoch: Array | int, gamma0: float, anneal_epochs: int) -> Float[Array, ""]:
    """Diffusion multiplier of an epoch: linear from ``gamma0`` down to 1 over ``anneal_epochs``."""
    if anneal_epochs <= 0:
        return jnp.asarray(1.0)
    frac = jnp.clip(1.0 - jnp.asarray(epoch) / anneal_epochs, 0.0, 1.0)
    return 1.0 + (gamma0 - 1.0) * frac
