"""Likelihoods that score the replicas' predictions against the data (METHOD section 7).

Every likelihood receives the predictions of all R replicas for each condition group,
``y_pred`` of shape ``(R, G, T, ny)`` (trajectories in a group share their inputs, so one
prediction per group serves all of them), and a batch of observed trajectories with their group
ids. ``loss`` returns the data term of the training loss (Eq. 13): ``-(1/R) sum_r log p(D | w^r)``
for the probabilistic likelihoods, ``sum_g N_g ES_g`` for the energy score. Batches are uniform
draws of trajectories; ``scale = N_train / B`` makes every estimate unbiased for the full sum.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from sklearn.cluster import KMeans

from ._types import Array, Float, Int
from .errors import ConfigError
from .strata import strata

KINDS = ("gaussian", "marginal-mixture", "energy-score")
_LOG_2PI = float(np.log(2 * np.pi))


class AbstractLikelihood(eqx.Module):
    """Base class: the data term of the loss for a batch of trajectories."""

    @abc.abstractmethod
    def loss(
        self,
        y_pred: Float[Array, "R G T ny"],
        y: Float[Array, "B T ny"],
        group: Int[Array, " B"],
        scale: Float[Array, ""],
        log_sigma: Float[Array, "R ny"] | None = None,
    ) -> Float[Array, ""]:
        """Data term of the loss; ``scale`` is ``N_train / B``; ``log_sigma`` the replicas'
        learned noise (`GaussianLikelihood` only)."""

    @abc.abstractmethod
    def curvature(
        self, y: Float[np.ndarray, "N T ny"], group: Int[np.ndarray, " N"], n_groups: int,
        beta: float,
    ) -> Float[np.ndarray, "G T ny"]:  # fmt: skip
        """The Gauss-Newton curvature of ``data term / beta`` in each group's prediction, near
        the data's mean: what the sampler's Gaussian start (`langevin_uq.htransform`) uses."""


class GaussianLikelihood(AbstractLikelihood):
    """Independent Gaussian observations (Eq. 17-18): ``y ~ N(y_hat(w), sigma^2)``.

    Attributes:
        sigma: noise standard deviation per output, shape ``(ny,)`` (with a learned noise, the
            MLE's: what the Gaussian start's curvature uses).
        sigma_unit: with a learned noise, the data's output scale ``(ny,)``: a replica's
            ``exp(log_sigma)`` is in the data's units, its predictions in scaled ones.
    """

    sigma: Float[Array, " ny"]
    sigma_unit: Float[Array, " ny"] | None = None

    def __check_init__(self):
        if not bool(np.all(np.asarray(self.sigma) > 0)):
            raise ConfigError(f"likelihood.sigma must be positive, got {np.asarray(self.sigma)}")

    def loss(self, y_pred, y, group, scale, log_sigma=None):
        if log_sigma is not None:
            sigma = jnp.exp(log_sigma) / self.sigma_unit  # (R, ny)
            residual = (y[None] - y_pred[:, group]) / sigma[:, None, None, :]
            norm = jnp.sum(jnp.log(sigma) + 0.5 * _LOG_2PI, axis=-1)
            per_replica = (
                0.5 * jnp.sum(residual**2, axis=(1, 2, 3)) + y.shape[0] * y.shape[1] * norm
            )
            return scale * jnp.mean(per_replica)
        residual = (y[None] - y_pred[:, group]) / self.sigma
        per_replica = 0.5 * jnp.sum(residual**2, axis=(1, 2, 3))
        norm = y.shape[0] * y.shape[1] * jnp.sum(jnp.log(self.sigma) + 0.5 * _LOG_2PI)
        return scale * (jnp.mean(per_replica) + norm)

    def curvature(self, y, group, n_groups, beta):
        counts = np.bincount(np.asarray(group), minlength=n_groups).astype(np.float64)
        sigma = np.asarray(self.sigma, np.float64)
        return np.broadcast_to(counts[:, None, None] / (sigma**2 * beta), (n_groups, *y.shape[1:]))


class MarginalMixtureLikelihood(AbstractLikelihood):
    """The paper's per-time mixture of the data's modes (Eq. 19-21).

    Attributes:
        log_weights: ``log pi_k`` per group and mode, ``(G, K)`` (``-inf``-like for empty modes).
        mean: mode means ``mu_k(t_j)``, ``(G, K, T, ny)``.
        sigma: ``sqrt(sigma_D^2 + sigma_MLE^2)`` (Eq. 21), ``(G, K, T, ny)``.
        present: 1 for groups with training trajectories, 0 for the others (a group seen only
            in validation has no modes and contributes nothing), ``(G,)``.
        time_reduction: ``"sum"`` or ``"mean"`` over observation times.
        strata_log_mass: with a stratified sampler (`for_strata`), the basins' log shares of
            the replicas ``(K,)``; ``None`` scores every replica against the whole mixture.
        mode_rank: with ``strata_log_mass``, each mode's rank per group (`langevin_uq.modes.
            mode_order`: rank ``k`` is basin ``k``) ``(G, K)``.
    """

    log_weights: Float[Array, "G K"]
    mean: Float[Array, "G K T ny"]
    sigma: Float[Array, "G K T ny"]
    present: Float[Array, " G"]
    time_reduction: str = eqx.field(static=True)
    strata_log_mass: Float[Array, " K"] | None = None
    mode_rank: Int[Array, "G K"] | None = None

    def loss(self, y_pred, y, group, scale, log_sigma=None):
        z = (y_pred[:, :, None] - self.mean[None]) / self.sigma[None]
        log_normal = jnp.sum(-0.5 * z**2 - jnp.log(self.sigma[None]) - 0.5 * _LOG_2PI, axis=-1)
        log_w = self._replica_log_weights(y_pred.shape[0])
        log_mix = jax.nn.logsumexp(log_normal + log_w[..., None], axis=2)
        reduce = jnp.mean if self.time_reduction == "mean" else jnp.sum
        return -jnp.mean(jnp.sum(reduce(log_mix, axis=-1) * self.present, axis=-1))

    def _replica_log_weights(self, n: int) -> Float[Array, "R G K"]:
        """``log pi_k`` per replica: the whole mixture, or with strata the replica's own mode
        alone in every group where that mode is present (``pi_k`` kept, not renormalised, so
        inside its basin the restricted score is the mixture's up to the other modes' share)."""
        log_w = self.log_weights[None]
        if self.strata_log_mass is None:
            return log_w
        own = self.mode_rank[None] == strata(self.strata_log_mass, n)[:, None, None]
        own = own & (log_w > -1e29)
        keep = own | ~jnp.any(own, axis=-1, keepdims=True)
        return jnp.where(keep, log_w, -1e30)

    def for_strata(self, mass: Float[np.ndarray, " K"], mode_rank: Int[np.ndarray, "G K"]):
        """The same likelihood scoring replica ``i`` of ``R`` against its stratum's mode only
        (`langevin_uq.strata`, ``mass`` the basins' shares, lowest mode first): the data term of
        the weight posterior restricted to that basin (`langevin_uq.mixture_tilt`)."""
        mass = np.asarray(mass, np.float64)
        log_mass = jnp.asarray(np.log(np.maximum(mass / mass.sum(), 1e-30)), self.mean.dtype)
        return eqx.tree_at(lambda s: (s.strata_log_mass, s.mode_rank), self,
                           (log_mass, jnp.asarray(mode_rank)),
                           is_leaf=lambda x: x is None)  # fmt: skip

    def curvature(self, y, group, n_groups, beta):
        """One Gaussian per group and time with the mixture's mean and variance."""
        w = np.exp(np.asarray(self.log_weights, np.float64))[:, :, None, None]
        mean, sig = np.asarray(self.mean, np.float64), np.asarray(self.sigma, np.float64)
        first = np.sum(w * mean, axis=1)
        var = np.sum(w * (sig**2 + mean**2), axis=1) - first**2
        times = y.shape[1] if self.time_reduction == "mean" else 1
        present = np.asarray(self.present, np.float64)[:, None, None]
        return present / (np.maximum(var, 1e-12) * times * beta)


class EnergyScoreLikelihood(AbstractLikelihood):
    """Energy score between predicted and observed whole trajectories (METHOD 7c).

    ``ES_g = mean_{r,i} |y_hat^r - y^i| - 1/2 mean_{r != r'} |y_hat^r - y_hat^r'|`` with whole
    trajectories (scaled outputs) as vectors; the loss is ``sum_g N_g ES_g``. Strictly proper: in
    expectation it is minimised only when the replicas' law of trajectories equals the data's.

    With ``marginal``, each time and output is scored on its own and the scores are summed (the
    CRPS per time): proper for the per-time marginals only, not for the joint law. Use it when
    the data's trajectories are rougher than any model trajectory (intrinsic noise, as in the
    Schloegl SSA): there the whole-trajectory score prefers model trajectories near each data
    trajectory's time average, whose spread is narrower than the data's spread at any one time.

    Attributes:
        weight: per time and output factor on the scaled outputs (the inverse spread), or None.
        marginal: score per-time marginals instead of whole trajectories.
    """

    weight: Float[Array, "T ny"] | None = None
    marginal: bool = eqx.field(static=True, default=False)

    def loss(self, y_pred, y, group, scale, log_sigma=None):
        if self.weight is not None:
            y_pred, y = y_pred * self.weight, y * self.weight
        n_rep = y_pred.shape[0]
        pred = y_pred.reshape(n_rep, y_pred.shape[1], -1)
        obs = y.reshape(y.shape[0], -1)
        distance = _absolute_sum if self.marginal else _norm
        fit = jnp.mean(distance(pred[:, group] - obs[None]), axis=0)
        pair = distance(pred[:, None] - pred[None])
        spread = jnp.sum(pair, axis=(0, 1)) / (n_rep * (n_rep - 1))
        return scale * jnp.sum(fit - 0.5 * spread[group])

    def curvature(self, y, group, n_groups, beta):
        """A Gaussian whose predictive spread is the data's (one observation per group, each
        time weighted ``1/T``): the energy score's minimiser is the data's law, whatever the
        number of trajectories or ``beta``."""
        y = np.asarray(y, np.float64)
        group = np.asarray(group)
        spread = np.stack([y[group == g].std(axis=0) for g in np.unique(group)]).mean(axis=0)
        spread = np.maximum(spread, max(1e-2 * float(spread.max()), 1e-6))
        return np.broadcast_to(1.0 / (y.shape[1] * spread**2), (n_groups, *y.shape[1:]))


def _norm(d: Float[Array, "... D"]) -> Float[Array, "..."]:
    # A tiny offset keeps the gradient finite where two trajectories coincide.
    return jnp.sqrt(jnp.sum(d**2, axis=-1) + 1e-12)


def _absolute_sum(d: Float[Array, "... D"]) -> Float[Array, "..."]:
    return jnp.sum(jnp.abs(d), axis=-1)


def energy_score_per_trajectory(
    y_pred: Float[Array, "R G T ny"], y: Float[Array, "B T ny"], group: Int[Array, " B"]
) -> Float[Array, ""]:
    """Mean energy score of held-out trajectories against their group's replicas."""
    return EnergyScoreLikelihood().loss(y_pred, y, group, jnp.asarray(1.0)) / y.shape[0]


def build_likelihood(
    kind: str,
    *,
    y: Float[np.ndarray, "N T ny"],
    group: Int[np.ndarray, " N"],
    n_groups: int,
    y_mle: Float[np.ndarray, "G T ny"],
    sigma: str | float = "auto",
    modes: int = 1,
    time_reduction: str = "sum",
    time_weighting: str = "inverse-spread",
    marginal: bool = False,
    seed: int = 0,
    output_scale: Float[np.ndarray, " ny"] | None = None,
) -> AbstractLikelihood:
    """Build a likelihood from the training data and the MLE's predictions.

    Args:
        kind: ``"gaussian"``, ``"marginal-mixture"`` or ``"energy-score"``.
        y: training outputs (scaled), ``(N, T, ny)``.
        group: group id of each training trajectory, ``(N,)``.
        n_groups: number of groups ``G`` (ids run over ``0..G-1``).
        y_mle: the MLE's prediction for each group, ``(G, T, ny)``.
        sigma: ``"auto"``, ``"learn"`` or a positive float. For ``gaussian``, auto is the MLE's
            RMS residual per output, and ``"learn"`` takes each replica's ``log_sigma`` (in the
            data's units, ``output_scale`` the data's scale per output); for the mixture auto
            is Eq. 21 per mode, time and output.
        modes: number of modes K for the mixture (k-means on whole trajectories per group).
        time_reduction: ``"sum"`` or ``"mean"`` over times for the mixture.
        time_weighting: for the energy score, ``"none"`` or ``"inverse-spread"``: scale each
            time and output by the inverse of the data's spread there (averaged over groups),
            so that times where trajectories differ little still count. The score is then in
            units of the data's spread, whatever the outputs' units, so its balance against
            the KL does not move when the data are rescaled (normalising the weights to mean 1
            instead left the data's units in it: on OU data of half the spread, sd(w1) came out
            42 % wide against 2 % here).
        marginal: for the energy score, score each time's marginal instead of whole
            trajectories (see `EnergyScoreLikelihood`).
        seed: seed of the k-means initialisation.
    """
    if kind not in KINDS:
        raise ConfigError(f"likelihood.kind = {kind!r}; use one of {', '.join(KINDS)}")
    if time_reduction not in ("sum", "mean"):
        raise ConfigError(f"likelihood.time_reduction = {time_reduction!r}; use 'sum' or 'mean'")
    if modes < 1:
        raise ConfigError(f"likelihood.modes must be at least 1, got {modes}")
    if not (sigma in ("auto", "learn") or (isinstance(sigma, int | float) and sigma > 0)):
        raise ConfigError(
            f"likelihood.sigma must be 'auto', 'learn' or a positive number, got {sigma!r}"
        )
    if sigma == "learn" and kind != "gaussian":
        raise ConfigError(f"likelihood.sigma = 'learn' needs the gaussian likelihood, not {kind}")
    if marginal and kind != "energy-score":
        raise ConfigError(f"likelihood.marginal applies to the energy score only, not to {kind}")
    floor = 1e-3 * max(float(np.std(y)), 1e-6)
    if kind == "energy-score":
        if time_weighting == "none":
            return EnergyScoreLikelihood(marginal=marginal)
        spread = np.stack([y[group == g].std(axis=0) for g in np.unique(group)]).mean(axis=0)
        # Floor at 1 % of the largest spread: a fixed initial condition has none at all.
        weight = 1.0 / np.maximum(spread, max(1e-2 * float(spread.max()), floor))
        return EnergyScoreLikelihood(weight=jnp.asarray(weight, y.dtype), marginal=marginal)
    if kind == "gaussian":
        if sigma in ("auto", "learn"):
            residual = y - y_mle[group]
            sig = np.sqrt(np.mean(residual**2, axis=(0, 1)))
        else:
            sig = np.full(y.shape[-1], float(sigma))
        unit = None
        if sigma == "learn":
            unit = jnp.asarray(np.ones(y.shape[-1]) if output_scale is None else output_scale,
                               y.dtype)  # fmt: skip
        return GaussianLikelihood(sigma=jnp.asarray(np.maximum(sig, floor), dtype=y.dtype),
                                  sigma_unit=unit)  # fmt: skip
    return _mixture(y, group, n_groups, y_mle, sigma, modes, time_reduction, seed, floor)


def _mixture(y, group, n_groups, y_mle, sigma, modes, time_reduction, seed, floor):
    n_t, n_y = y.shape[1:]
    log_w = np.full((n_groups, modes), -1e30)
    present = np.zeros(n_groups)
    mean = np.zeros((n_groups, modes, n_t, n_y))
    sig = np.ones((n_groups, modes, n_t, n_y))
    for g in range(n_groups):
        members = y[group == g]
        if len(members) == 0:
            continue
        present[g] = 1.0
        k = min(modes, len(members))
        if k > 1:
            km = KMeans(n_clusters=k, n_init=10, random_state=seed)
            labels = km.fit_predict(members.reshape(len(members), -1))
        else:
            labels = np.zeros(len(members), dtype=int)
        for m in range(k):
            block = members[labels == m]
            mu = block.mean(axis=0)
            log_w[g, m] = np.log(len(block) / len(members))
            mean[g, m] = mu
            if sigma == "auto":
                spread = block.std(axis=0) if len(block) > 1 else np.zeros_like(mu)
                # Eq. 21: the MLE's distance to the mean of all the group's data, the same
                # for every mode (METHOD 7b; the distance to each mode's mean made each mode
                # about half the gap between bimodal modes wide).
                sig[g, m] = np.sqrt(spread**2 + (members.mean(axis=0) - y_mle[g]) ** 2)
            else:
                sig[g, m] = float(sigma)
    dtype = y.dtype
    return MarginalMixtureLikelihood(
        log_weights=jnp.asarray(log_w, dtype),
        mean=jnp.asarray(mean, dtype),
        sigma=jnp.asarray(np.maximum(sig, floor), dtype),
        present=jnp.asarray(present, dtype),
        time_reduction=time_reduction,
    )
