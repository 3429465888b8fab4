"""The basins of a multimodal weight posterior: one per mode of the data (issue 17).

Under the paper's marginal-mixture likelihood (METHOD 7b) with ``K > 1`` modes, a weight vector
whose trajectory follows mode ``k`` scores well and one between the modes badly: the weight
posterior of METHOD section 5 ("Which posterior"),

    log p(u | D) = -data term(u) / beta - |u|^2 / 2 + const      (prior units u),

has (at least) one basin per mode. `find_basins` locates them: it fits the MLE to each mode's
trajectories (a starting point only: the prior stays that of the single MLE of all data), climbs
from there to the basin's maximum a posteriori (MAP) with Adam, and takes the Gauss-Newton
(Laplace) Gaussian at each MAP. The Laplace log-mass of basin ``k`` is

    log m_k = log p(u_k | D) - 1/2 log det(I + Lambda_k),

``Lambda_k`` the Gauss-Newton curvature of the data term / beta in prior units at ``u_k``.
Where the data inform the weights weakly the basins are far from Gaussian, and
`prior_importance_fractions` (the prior as importance proposal) is the better estimate. The
basins' Gaussians are what the sampler's mixture start (`langevin_uq.mixture_tilt`) is built from.
"""

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._types import Float, Int
from .errors import ConfigError
from .htransform import GaussianStart, gaussian_start, prediction_jacobian
from .likelihoods import MarginalMixtureLikelihood
from .problem import TrainingArrays, data_log_tilt
from .train import fit_mle


@dataclass(frozen=True)
class Basin:
    """One basin of the weight posterior.

    Attributes:
        map_u: its MAP in prior units ``(ns,)``.
        log_post: the unnormalised log posterior at the MAP.
        log_det: ``log det(I + Lambda)`` of the Gauss-Newton curvature at the MAP.
        start: the basin's `GaussianStart` (centre at the MAP, no Newton step).
        factor: ``B = sqrt(D) J S`` with ``Lambda = B^T B`` ``(P, ns)``, float64.
    """

    map_u: Float[np.ndarray, " ns"]
    log_post: float
    log_det: float
    start: GaussianStart
    factor: Float[np.ndarray, "P ns"]

    @property
    def log_mass(self) -> float:
        """The Laplace log-mass (up to a constant shared by every basin)."""
        return self.log_post - 0.5 * self.log_det


def mode_order(likelihood: MarginalMixtureLikelihood) -> Int[np.ndarray, "G K"]:
    """Each group's mixture modes from the lowest mean over times and outputs to the highest
    (a group's absent modes last): rank ``k`` is what pairs modes across groups."""
    mean = np.asarray(likelihood.mean, np.float64).mean(axis=(2, 3))  # (G, K)
    present = np.asarray(likelihood.log_weights) > -1e29
    return np.argsort(np.where(present, mean, np.inf), axis=1)


def mode_labels(likelihood: MarginalMixtureLikelihood, y, group) -> Int[np.ndarray, " N"]:
    """Each trajectory's mode rank ``0..K-1`` (`mode_order`: mode 0 is the lowest in every
    group), by the nearest of its group's mode means."""
    mean = np.asarray(likelihood.mean, np.float64)  # (G, K, T, ny)
    n_present = np.sum(np.asarray(likelihood.log_weights) > -1e29, axis=1)
    order = mode_order(likelihood)
    y, group = np.asarray(y, np.float64), np.asarray(group)
    labels = np.zeros(len(y), dtype=int)
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        ranked = mean[g][order[g, : n_present[g]]]
        labels[members] = np.argmin(np.sum((y[members, None] - ranked[None]) ** 2, axis=(2, 3)), 1)
    return labels


def log_posterior(problem, beta: float):
    """``u -> log p(u | D)`` (unnormalised) for one weight vector in prior units: the data term
    of the run's likelihood divided by ``beta`` plus the standard normal prior."""
    tilt = _log_tilt(problem, beta)
    return lambda u: tilt(u)[0] - 0.5 * jnp.sum(u**2)


def _log_tilt(problem, beta: float):
    """``u -> (-data term / beta, predictions (G, T, ny))`` for one weight vector (prior units)."""
    tilt = data_log_tilt(problem.partition, problem.likelihood, problem.inputs, problem.train,
                         problem.w_d, beta)  # fmt: skip
    return lambda u: tilt(problem.prior.unwhiten(u))


def prior_importance_fractions(
    problem, beta: float, key, draws: int = 16384, batch: int = 1024
) -> tuple[Float[np.ndarray, " K"], float]:
    """Each mode's posterior mass by importance sampling with the prior as the proposal: the
    weights are ``exp(-data term / beta)``, and a draw belongs to the mode whose mean
    trajectories (ranked as in `mode_labels`, summed over groups) its predictions are nearest.
    Unbiased whatever the basins' shapes, and accurate where the data inform the weights weakly
    (many draws keep weight). Returns the fractions and the effective sample size."""
    likelihood = problem.likelihood
    mean = np.asarray(likelihood.mean, np.float64)  # (G, K, T, ny)
    ranked = np.take_along_axis(mean, mode_order(likelihood)[:, :, None, None], axis=1)
    present = np.asarray(likelihood.present, np.float64)[:, None]
    value = jax.jit(jax.vmap(_log_tilt(problem, beta)))
    u = jax.random.normal(key, (draws, problem.partition.n_stochastic), problem.dtype)
    log_w, label = [], []
    for s in range(0, draws, batch):
        lw, pred = value(u[s : s + batch])
        pred = np.asarray(pred, np.float64)[:, :, None]  # (B, G, 1, T, ny)
        d = np.sum(present * np.sum((pred - ranked[None]) ** 2, axis=(3, 4)), axis=1)
        log_w.append(np.asarray(lw, np.float64))
        label.append(np.argmin(np.where(np.isfinite(d), d, np.inf), axis=1))
    log_w, label = np.concatenate(log_w), np.concatenate(label)
    log_w = np.where(np.isfinite(log_w), log_w, -np.inf)
    w = np.exp(log_w - np.max(log_w))
    fractions = np.array([w[label == k].sum() for k in range(mean.shape[1])]) / w.sum()
    return fractions, float(w.sum() ** 2 / np.sum(w**2))


def _climb(value, u0, steps: int, lr: float):
    """Adam on ``-value`` from ``u0``; the best point seen (a NaN step is never kept)."""
    optimiser = optax.adam(lr)
    grad = jax.value_and_grad(lambda u: -value(u))

    @eqx.filter_jit
    def run(u, state):
        def body(carry, _):
            u, state, best_u, best = carry
            loss, g = grad(u)
            better = jnp.isfinite(loss) & (loss < best)
            best_u, best = jnp.where(better, u, best_u), jnp.where(better, loss, best)
            updates, state = optimiser.update(g, state, u)
            return (optax.apply_updates(u, updates), state, best_u, best), None

        init = (u, state, u, jnp.asarray(jnp.inf, u.dtype))
        (u, state, best_u, best), _ = jax.lax.scan(body, init, None, length=steps)
        return best_u, best

    return run(u0, optimiser.init(u0))


def _mode_curvature(likelihood: MarginalMixtureLikelihood, mode_index, n_times, beta):
    """The data term's Gauss-Newton curvature in each prediction for a trajectory inside mode
    ``mode_index[g]`` of every group: ``1 / (sigma_k^2 beta)`` per time (``/ T`` with the
    ``"mean"`` reduction)."""
    sig = np.asarray(likelihood.sigma, np.float64)
    present = np.asarray(likelihood.present, np.float64)[:, None, None]
    per_group = sig[np.arange(sig.shape[0]), mode_index]  # (G, T, ny)
    times = n_times if likelihood.time_reduction == "mean" else 1
    return present / (per_group**2 * times * beta)


def find_basins(
    problem, beta: float, max_rank: int, *, mle_epochs: int = 1000, map_steps: int = 2000,
    map_lr: float = 1e-2,
) -> list[Basin]:  # fmt: skip
    """One `Basin` per mode of the run's marginal-mixture likelihood, lowest mode first.

    For mode ``k``: the MLE of the trajectories labelled ``k`` (`mode_labels`), from the MLE of
    all data (``mle_epochs`` Adam epochs); then ``map_steps`` Adam steps of ``map_lr`` (prior
    units) on the log posterior (`log_posterior`) from there; then the Gauss-Newton Gaussian at
    the MAP with the mode's own variance (`_mode_curvature`).
    """
    likelihood = problem.likelihood
    if not isinstance(likelihood, MarginalMixtureLikelihood):
        raise ConfigError("sampler.modes > 1 needs likelihood.kind = 'marginal-mixture'")
    partition, prior, inputs, train = (problem.partition, problem.prior, problem.inputs,
                                       problem.train)  # fmt: skip
    labels = mode_labels(likelihood, train.y, train.group)
    value = log_posterior(problem, beta)
    n_times = train.y.shape[1]
    order = mode_order(likelihood)  # order[g, k]: the likelihood's mode of rank k in group g
    n_modes = int(labels.max()) + 1
    basins = []
    for k in range(n_modes):
        members = np.flatnonzero(labels == k)
        subset = TrainingArrays(y=train.y[members], group=train.group[members])
        fitted = fit_mle(partition, problem.w_mle, inputs, subset, None, epochs=mle_epochs,
                         lr=1e-2, patience=mle_epochs)  # fmt: skip
        w_s, _ = partition.split(fitted.w)
        u_map, _ = _climb(value, prior.whiten(w_s), map_steps, map_lr)
        log_post = float(value(u_map))
        w_map = prior.unwhiten(u_map)
        jac = prediction_jacobian(partition, w_map, problem.w_d, inputs)
        curvature = _mode_curvature(likelihood, order[:, min(k, order.shape[1] - 1)], n_times,
                                    beta).ravel()  # fmt: skip
        factor = np.sqrt(curvature)[:, None] * np.asarray(jac, np.float64)
        factor = factor * np.asarray(prior.scale, np.float64)[None]
        gram = factor @ factor.T if factor.shape[0] < factor.shape[1] else factor.T @ factor
        log_det = float(np.linalg.slogdet(np.eye(gram.shape[0]) + gram)[1])
        start = gaussian_start(jac, curvature, u_map, prior.scale, max_rank)
        basins.append(Basin(np.asarray(u_map, np.float64), log_post, log_det, start, factor))
    return basins


def laplace_fractions(basins: list[Basin]) -> Float[np.ndarray, " K"]:
    """The basins' Laplace masses normalised to sum to one."""
    log_mass = np.array([b.log_mass for b in basins])
    p = np.exp(log_mass - log_mass.max())
    return p / p.sum()
