"""The Langevin sampler (``method.kind = "ls"``): a learned-drift SDE trained on the ELBO.

The drift starts from a Gaussian fitted at the MLE (`drift_start`, METHOD section 6), with an
extra precision calibrated on the first epoch's ELBO (``drift_init = "laplace"``) or a fixed
Gauss-Newton h-transform (``"gauss-newton"``); `ELBO` is the loss of Eq. 13. A divergence can be
retried from the last good state with ``sampler.dtau`` halved (`LangevinMethod.retries`).
"""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._types import Array, Float, Int, PRNGKeyArray
from ..config import SamplerOptions, TrainOptions
from ..errors import TrainingDivergedError
from ..htransform import (
    GaussianStart,
    GaussNewtonTransform,
    calibrate_start,
    gaussian_start,
    prediction_jacobian,
)
from ..likelihoods import AbstractLikelihood, MarginalMixtureLikelihood
from ..mixture_tilt import MixtureTilt
from ..modes import find_basins, laplace_fractions, mode_order, prior_importance_fractions
from ..posterior import LangevinPosterior
from ..problem import GroupInputs, TrainingArrays, group_means, predict_ensemble_finite
from ..sampler import (
    Drift,
    LangevinSampler,
    anneal_gamma,
    auto_final_dtau,
    pseudo_time_grid,
)
from ..seeding import fit_keys, stream
from ..train import heldout_score, minibatch
from ..weights import WeightPartition
from .base import AbstractMethod, kept_in


class Trainable(eqx.Module):
    """What the ELBO optimises: the drift network and, for ``bll-reopt``, ``w_D``."""

    drift: Drift
    w_d: Float[Array, " nd"] | None


class ELBO(eqx.Module):
    """The loss of Eq. 13: data term of the likelihood plus ``beta`` times the path KL.

    Attributes:
        sampler: the prior, pseudo-time grid and initial condition of the replicas.
        partition: flat-weight layout and the ``w_S``/``w_D`` split.
        likelihood: the data term.
        inputs: one input per condition group.
        train, validation: observed trajectories (validation may be ``None``).
        w_d_fixed: ``w_D`` when it is not optimised (``bll-fixed``; empty for ``full``).
        replicas: number of replicas R.
        beta: weight of the KL.
        batch: trajectories per epoch in the data term (``0`` = all).
        gamma0, anneal_epochs: the diffusion annealing schedule.
        sticking: the path KL's gradient by sticking the landing
            (`langevin_uq.sampler.LangevinSampler.simulate`): zero for every replica where the
            drift is exact (on a 2-D exact case the gradient's sd across keys is 11x smaller
            at 100 steps, 47x at 400). Off: it costs 1.59x per gradient on a 321-weight NODE,
            and on the cases measured (`bench/sticking_vs_plain.py`: rows 1, 2, 10, and row 7
            at 64 replicas) it changed nothing. Training from the Gauss-Newton start worsened
            the ELBO with either; that came from the guide's derivative, then held fixed in
            its linearisation (`langevin_uq.htransform.GaussNewtonTransform`).
        detached: the gradient by the score function along detached paths (`_score_function`),
            on whenever a Gauss-Newton guide is present. Through the paths, the guided gradient
            takes second derivatives of the data model and is heavy-tailed: on a 33-weight NODE
            (`bench/guide_gradient.py --estimators`, 16 replicas x 40 steps, 400 keys) its norm
            had median 0.86, 99th percentile 1.1e4 and maximum 1.1e6, the detached one's 1.1, 97
            and 219 (same mean: rms z of the difference 1.04); per value and gradient on the
            321-weight NODE (64 replicas x 100 steps) 25 s against 3.3 s. Without a guide the
            gradient through the paths is the less noisy one (the detached one's spread is 5.5x
            its own there), so it stays the default.
    """

    sampler: LangevinSampler
    partition: WeightPartition
    likelihood: AbstractLikelihood
    inputs: GroupInputs
    train: TrainingArrays
    validation: TrainingArrays | None
    w_d_fixed: Float[Array, " nd"]
    replicas: int = eqx.field(static=True)
    beta: float = eqx.field(static=True)
    batch: int = eqx.field(static=True)
    gamma0: float = eqx.field(static=True)
    anneal_epochs: int = eqx.field(static=True)
    sticking: bool = eqx.field(static=True, default=False)
    detached: bool = eqx.field(static=True, default=False)

    def __call__(self, params: Trainable, key: PRNGKeyArray, epoch: Int[Array, ""]):
        """``(loss, (nll, kl, heldout, gamma))`` of one epoch's Monte Carlo estimate."""
        w_s, kl, gamma = self.replicas_at(params, key, epoch)
        k_batch = jr.split(key)[1]
        w_d = self.w_d_fixed if params.w_d is None else params.w_d
        w = self.partition.join(w_s, w_d)
        y_max = jnp.max(jnp.abs(self.train.y))
        pred, _ = predict_ensemble_finite(self.partition, w, self.inputs, y_max)
        y, group, scale = minibatch(self.train, self.batch, k_batch, pred.dtype)
        heldout = heldout_score(pred, self.validation)
        if self.detached:
            log_sigma = self.partition.log_sigma(w)

            def replica_nll(p, s):
                s = None if s is None else s[None]
                return self.likelihood.loss(p[None], y, group, scale, s)

            loss, nll, kl = self._score_function(jax.vmap(replica_nll)(pred, log_sigma), kl)
            return loss, (nll, kl, heldout, gamma)
        nll = self.likelihood.loss(pred, y, group, scale, self.partition.log_sigma(w))
        kl = jnp.mean(kl)
        return nll + self.beta * kl, (nll, kl, heldout, gamma)

    def _score_function(self, nll_r: Float[Array, " R"], kl: Float[Array, " R"]):
        """``(loss, nll, kl)`` with the score-function gradient along detached paths
        (``detached``), from each replica's data term and log ratio of its path.

        Each replica's cost ``F_r = nll_r + beta log dQ/dP_prior(path_r)`` is what the ELBO
        averages; its gradient is ``E[(F - E F) grad log q(path)]`` (the log-variance loss's
        gradient on its own paths, Nuesken & Richter 2021), estimated with each replica's
        leave-one-out mean as baseline. It vanishes replica by replica where the drift is exact
        (``F`` is then the same for every path), like sticking the landing, and never
        differentiates the data model or the path. The KL reported is the paths' mean log
        ratio (unbiased; noisier than the reparameterised estimate by its Ito term).
        """
        cost = jax.lax.stop_gradient(nll_r + self.beta * kl)
        centred = (cost - jnp.mean(cost)) * self.replicas / (self.replicas - 1)
        surrogate = jnp.mean(centred * kl)
        nll, kl = jnp.mean(nll_r), jnp.mean(jax.lax.stop_gradient(kl))
        return nll + self.beta * kl + surrogate - jax.lax.stop_gradient(surrogate), nll, kl

    def replicas_at(self, params: Trainable, key: PRNGKeyArray, epoch: Int[Array, ""]):
        """The epoch's replicas ``w_S`` ``(R, ns)``, their path-KLs ``(R,)`` and gamma.

        With ``detached`` the path-KLs are the paths' log ratios ``log dQ/dP_prior``, whose
        gradient is the paths' score (`langevin_uq.sampler.LangevinSampler.simulate`).
        """
        gamma = anneal_gamma(epoch, self.gamma0, self.anneal_epochs)
        k_paths = jr.split(key)[0]
        if self.detached:
            w_s, log_ratio, _ = self.sampler.simulate(
                params.drift, k_paths, self.replicas, gamma, log_ratio=True, detached=True
            )
            return w_s, -log_ratio, gamma
        w_s, kl, _ = self.sampler.simulate(params.drift, k_paths, self.replicas, gamma,
                                           sticking=self.sticking)  # fmt: skip
        return w_s, kl, gamma


MIN_IMPORTANCE_ESS = 200.0
"""The prior-proposal importance estimate of the basins' masses (16384 draws,
`langevin_uq.modes.prior_importance_fractions`) replaces their Laplace masses from this
effective sample size on (standard error of a fraction below about 0.035). On the Schloegl NODE
with beta = 1 and "mean" its ESS was 9-13 % of the draws and it gave 0.62-0.63 and 0.67 for the
low mode (se 0.01; 1.6 s) where Laplace gave 0.47 and 0.59; with beta = 0.01 the ESS is 1 and
Laplace (1 - e^-1400) stands."""

_RUNAWAY = 1e3
"""Replicas farther than this many prior scales from the prior mean have left any posterior:
the SDE step, not the data model, is what diverged."""


class LangevinMethod(AbstractMethod):
    """The Langevin sampler of ``[sampler]``, trained with ``[train]``.

    The record it keeps in ``model.json`` (``drift``) is the drift's shape, fixed when the run
    starts: ``rank`` and the resolved ``final_dtau`` (a placeholder start of that rank is what a
    checkpoint loads into), ``max_precision`` and the calibration's ``start_*`` entries.
    """

    kinds: ClassVar[tuple[str, ...]] = ("ls",)
    needs_beta: ClassVar[bool] = False
    retries: ClassVar[bool] = True

    sampler: SamplerOptions
    train: TrainOptions

    @property
    def samples_noise(self) -> bool:
        """The Gauss-Newton guide linearises the predictions for one noise sd, the MLE's
        (INTERFACE.md): it holds a learned noise there instead of drawing it from its prior."""
        return self.sampler.drift_init != "gauss-newton"

    def _sampler(self, setup, record: dict) -> LangevinSampler:
        s = self.sampler
        taus = pseudo_time_grid(s.steps, s.dtau, s.schedule, record["final_dtau"])
        w_s = setup.partition.split(setup.w_mle)[0]
        return LangevinSampler(prior=setup.prior, taus=taus, init_center=w_s,
                               init_noise=s.init_noise)  # fmt: skip

    def _params(self, setup, start: GaussianStart, guide, tilt=None) -> Trainable:
        s = self.sampler
        drift = Drift(start, s.drift_hidden, prior_start=s.drift_init != "laplace", guide=guide,
                      key=fit_keys(self.train.seed)["drift"])  # fmt: skip
        if tilt is not None:  # several basins (sampler.modes > 1): the mixture h-transform
            drift = eqx.tree_at(lambda d: d.tilt, drift, tilt)
        w_d = setup.w_d if setup.partition.reoptimise_deterministic else None
        return Trainable(drift=drift, w_d=w_d)

    def skeleton(self, setup, record: dict | None) -> Trainable:
        start = GaussianStart.placeholder(setup.partition.n_stochastic, record["rank"], setup.dtype)
        guide = None
        if self.sampler.drift_init == "gauss-newton":
            n_groups, n_times, n_inputs = setup.grid
            guide = GaussNewtonTransform.placeholder(
                setup.partition, n_groups, n_times, setup.scaler.shift.shape[0], n_inputs,
                setup.dtype, self.sampler.gauss_newton_iterations,
            )  # fmt: skip
        tilt = None
        if "mode_ranks" in (record or {}):
            n, dtype = setup.partition.n_stochastic, setup.dtype
            starts = [GaussianStart.placeholder(n, r, dtype) for r in record["mode_ranks"]]
            tilt = MixtureTilt(starts, jnp.asarray(record["mode_fractions"]))
        return self._params(setup, start, guide, tilt)

    def n_modes(self, problem) -> int:
        """``sampler.modes`` resolved: ``"auto"`` is the mixture likelihood's ``K``, else 1."""
        if self.sampler.modes != "auto":
            return int(self.sampler.modes)
        if isinstance(problem.likelihood, MarginalMixtureLikelihood):
            return int(problem.likelihood.log_weights.shape[1])
        return 1

    def init(self, problem) -> tuple[Trainable, dict]:
        """The drift's start at the MLE (calibrated for ``"laplace"``) and its record; with
        several modes, the mixture of the basins' Gaussian tilts (`langevin_uq.mixture_tilt`),
        their ranks and Laplace fractions recorded as ``mode_ranks`` and ``mode_fractions``."""
        s = self.sampler
        start, record = drift_start(problem, s, self.train.beta)
        tilt = None
        if self.n_modes(problem) > 1:
            tilt, record = self._mixture(problem, record)
        guide = None
        if s.drift_init == "gauss-newton":
            guide = GaussNewtonTransform.from_data(
                problem.partition, problem.inputs, problem.w_d, problem.train.y,
                problem.train.group, problem.likelihood.sigma, self.train.beta,
                s.gauss_newton_iterations,
            )  # fmt: skip
        params = self._params(problem, start, guide, tilt)
        if s.drift_init == "laplace":
            params = self._calibrate(self.objective(problem, record), params, record)
        return params, record

    def _mixture(self, problem, record: dict) -> tuple[MixtureTilt, dict]:
        """The basins' mixture tilt, started where the replicas start, with the basins' masses
        (the prior-proposal importance estimate where its ESS reaches `MIN_IMPORTANCE_ESS`,
        else the Laplace fractions); ``final_dtau`` ("auto") resolved for the largest
        precision."""
        s, tr = self.sampler, self.train
        weight = tr.beta if tr.beta > 0 else 1.0
        basins = find_basins(problem, weight, s.max_rank, mle_epochs=tr.mle_epochs)
        fractions, source = laplace_fractions(basins), "laplace"
        sampled, ess = prior_importance_fractions(problem, weight, stream(tr.seed, "fit/modes"))
        if ess >= MIN_IMPORTANCE_ESS:
            fractions, source = sampled, "prior-importance"
        tilt = MixtureTilt([b.start for b in basins], jnp.asarray(fractions),
                           prior_start=s.drift_init != "laplace")  # fmt: skip
        largest = max([record["max_precision"]] + [b.start.max_precision for b in basins])
        record = {
            **record,
            "mode_ranks": [int(b.start.eigvals.shape[0]) for b in basins],
            "mode_fractions": [float(f) for f in fractions],
            "mode_mass_source": source,
            "mode_importance_ess": ess,
            "max_precision": largest,
        }
        if s.final_dtau == "auto":
            record["final_dtau"] = auto_final_dtau(largest, s.dtau)
        return tilt, record

    def _calibrate(self, objective: ELBO, params: Trainable, record: dict) -> Trainable:
        """The Gaussian start's extra precision (`langevin_uq.htransform.calibrate_start`), chosen
        by the ELBO on the first epoch's keys; recorded in ``record``."""
        key = stream(self.train.seed, "fit/calibrate")

        @eqx.filter_jit
        def loss(drift):
            return objective(eqx.tree_at(lambda p: p.drift, params, drift), key, jnp.asarray(0))[0]

        drift, extra, tried = calibrate_start(params.drift, loss, record["max_precision"],
                                              record["final_dtau"])  # fmt: skip
        record.update(start_extra_precision=extra, start_losses=tried)
        return eqx.tree_at(lambda p: p.drift, params, drift)

    def objective(self, problem, record: dict) -> ELBO:
        """The ELBO; with several basins each replica's data term is its basin's
        (`langevin_uq.mixture_tilt`)."""
        s, tr = self.sampler, self.train
        likelihood = problem.likelihood
        if "mode_fractions" in record:
            rank = np.argsort(mode_order(likelihood), axis=1)
            likelihood = likelihood.for_strata(record["mode_fractions"], rank)
        return ELBO(
            sampler=self._sampler(problem, record), partition=problem.partition,
            likelihood=likelihood, inputs=problem.inputs, train=problem.train,
            validation=problem.validation, w_d_fixed=problem.w_d, replicas=s.replicas,
            beta=tr.beta, batch=tr.batch_trajectories, gamma0=s.gamma0,
            anneal_epochs=s.anneal_epochs, detached=s.drift_init == "gauss-newton",
        )  # fmt: skip

    def posterior(self, setup, params: Trainable, record: dict):
        w_d = params.w_d if params.w_d is not None else setup.w_d
        return LangevinPosterior(sampler=self._sampler(setup, record), drift=params.drift), w_d

    def divergence_message(self, objective, state, key, config, halvings: int, run_dir) -> str:
        """The replicas ran away (the SDE step) or the data model overflowed (the rate)."""
        epoch = int(state.epoch)
        kept = kept_in(run_dir, state)
        after = f" after {halvings} halving(s) of sampler.dtau" if halvings else ""
        lr = config.train.lr
        replicas = eqx.filter_jit(objective.replicas_at)
        w_s, _, _ = replicas(state.params, jr.fold_in(key, epoch), jnp.asarray(epoch))
        spread = float(jnp.max(jnp.abs(objective.sampler.prior.whiten(w_s))))
        if not spread < _RUNAWAY:  # also true for NaN
            return (
                f"the Langevin replicas ran away at epoch {epoch + 1}{after} (up to {spread:.3g} "
                f"prior scales from the prior mean): "
                f"sampler.dtau = {config.sampler.dtau:g} is likely too large for the learned "
                f"drift, or train.lr = {lr:g} too high; resume with train.divergence_retries = "
                f"1 (halves dtau from the last good state) or a lower train.lr{kept}"
            )
        return (
            f"the loss became NaN or infinite at epoch {epoch + 1}{after} with finite replicas: "
            f"the data model overflowed for some replicas; lower train.lr = {lr:g} or raise "
            f"model.substeps, then resume{kept}"
        )


def drift_start(problem, s: SamplerOptions, beta: float) -> tuple[GaussianStart, dict]:
    """The Gaussian start of the drift (`langevin_uq.htransform.gaussian_start`) at the MLE,
    and the drift's shape: its rank and the resolved ``sampler.final_dtau``."""
    partition, inputs, train = problem.partition, problem.inputs, problem.train
    w_s, w_d = partition.split(problem.w_mle)
    jac = prediction_jacobian(partition, w_s, w_d, inputs)
    weight = beta if beta > 0 else 1.0
    curvature = problem.likelihood.curvature(
        np.asarray(train.y), np.asarray(train.group), inputs.n_groups, weight
    )
    if not (np.all(np.isfinite(jac)) and np.all(np.isfinite(curvature))):
        raise TrainingDivergedError(
            "the data model's Jacobian at the MLE is not finite, so the sampler cannot start "
            "from it; check the data, or lower train.mle_lr"
        )
    means, counts = group_means(train.y, train.group, inputs.n_groups)
    residual = np.where(np.asarray(counts)[:, None, None] > 0, means - problem.y_mle, 0.0).ravel()
    jac, curvature, residual = _with_noise_rows(
        partition, jac, np.ravel(curvature), residual, train.y.shape, weight
    )
    prior = problem.prior
    start = gaussian_start(jac, curvature, prior.whiten(w_s), prior.scale, s.max_rank,
                           residual)  # fmt: skip
    final = s.final_dtau
    if final == "auto":
        final = auto_final_dtau(start.max_precision, s.dtau)
    return start, {"rank": int(start.eigvals.shape[0]), "final_dtau": float(final),
                   "max_precision": start.max_precision}  # fmt: skip


def _with_noise_rows(partition: WeightPartition, jac, curvature, residual, shape, beta):
    """The Gauss-Newton rows of a learned noise's sampled ``log_sigma`` entries, appended.

    The predictions do not depend on ``log_sigma``, but the likelihood does: at the MLE the
    curvature of ``N log sigma + SSR / (2 sigma^2)`` in ``log sigma`` is ``2 N`` for ``N``
    observations of the output. Each sampled entry gets a unit row with that precision (and a
    zero residual: the MLE is its minimum)."""
    if not partition.n_noise:
        return jac, curvature, residual
    first = partition.n_weights - partition.n_noise
    columns = {j: k for k, j in enumerate(partition.stochastic_index)}
    rows = [k for k in range(first, partition.n_weights) if k in columns]
    if not rows:
        return jac, curvature, residual
    extra = np.zeros((len(rows), jac.shape[1]))
    extra[np.arange(len(rows)), [columns[k] for k in rows]] = 1.0
    n_obs = shape[0] * shape[1]
    return (np.concatenate([jac, extra]), np.concatenate([curvature, np.full(len(rows),
            2.0 * n_obs / beta)]), np.concatenate([residual, np.zeros(len(rows))]))  # fmt: skip
