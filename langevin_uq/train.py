"""MLE pre-fit and ELBO training of the Langevin hypernetwork (METHOD sections 4 and 8).

Both loops run a fixed number of epochs per jitted call as one `lax.scan` (the chunk), so the
host sees the state only for the progress bar, the history and checkpoints. The key of epoch
``e`` is ``fold_in(key, e)``: a run resumed from a checkpoint draws exactly the keys an
uninterrupted run would have drawn.
"""

from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax

from ._types import Array, Float, Int, PRNGKeyArray, PyTree
from .likelihoods import AbstractLikelihood, energy_score_per_trajectory
from .problem import (
    GroupInputs,
    TrainingArrays,
    predict_ensemble_finite,
    predict_groups,
)
from .sampler import Drift, LangevinSampler, anneal_gamma
from .weights import WeightPartition

CHUNK = 10
"""Epochs per jitted call; a checkpoint can only be written between chunks."""


# --------------------------------------------------------------------------- MLE pre-fit


class MLEResult(NamedTuple):
    w: Float[Array, " nw"]
    train_mse: float
    validation_mse: float
    epochs: int


def _mse(partition, w, inputs, data: TrainingArrays):
    pred = predict_groups(partition, w, inputs)
    return jnp.mean((data.y - pred[data.group]) ** 2)


def fit_mle(
    partition: WeightPartition,
    w_init: Float[Array, " nw"],
    inputs: GroupInputs,
    train: TrainingArrays,
    validation: TrainingArrays | None,
    *,
    epochs: int,
    lr: float,
    patience: int,
) -> MLEResult:
    """Least-squares fit of all weights with Adam and early stopping (METHOD section 4).

    The returned weights are those with the lowest validation error (training error when there
    is no validation set); training stops once ``patience`` epochs pass without improvement.
    """
    optimiser = optax.adam(lr)
    watch = validation if validation is not None else train

    @eqx.filter_jit
    def chunk(w, opt_state, best_w, best, since):
        def body(carry, _):
            w, opt_state, best_w, best, since = carry
            grad = jax.grad(_mse, argnums=1)(partition, w, inputs, train)
            updates, opt_state = optimiser.update(grad, opt_state, w)
            w = optax.apply_updates(w, updates)
            score = _mse(partition, w, inputs, watch)
            better = jnp.isfinite(score) & (score < best)
            best_w = jnp.where(better, w, best_w)
            best = jnp.where(better, score, best)
            since = jnp.where(better, 0, since + 1)
            return (w, opt_state, best_w, best, since), None

        carry, _ = jax.lax.scan(body, (w, opt_state, best_w, best, since), None, length=CHUNK)
        return carry

    carry = (
        w_init,
        optimiser.init(w_init),
        w_init,
        jnp.asarray(jnp.inf, w_init.dtype),
        jnp.asarray(0, jnp.int32),  # an array from the start, so the chunk compiles once
    )
    done = 0
    while done < epochs:
        carry = chunk(*carry)
        done += CHUNK
        if int(carry[4]) >= patience:
            break
    best_w = carry[2]
    return MLEResult(
        w=best_w,
        train_mse=float(_mse(partition, best_w, inputs, train)),
        validation_mse=float(_mse(partition, best_w, inputs, watch)),
        epochs=done,
    )


# --------------------------------------------------------------------------- ELBO training


class Trainable(eqx.Module):
    """What the ELBO optimises: the drift network and, for ``bll-reopt``, ``w_D``."""

    drift: Drift
    w_d: Float[Array, " nd"] | None


class TrainState(eqx.Module):
    """Everything a checkpoint holds: the next epoch, the trainables and Adam's state.

    ``params`` is a `Trainable` for the Langevin sampler and the guide's unconstrained
    parameters for BBVI.
    """

    epoch: Int[Array, ""]
    params: PyTree
    opt_state: optax.OptState


class EpochInfo(NamedTuple):
    """Per-epoch diagnostics returned by the training step (all arrays of shape ``(CHUNK,)``)."""

    loss: Array
    nll: Array
    kl: Array
    heldout: Array
    gamma: Array
    grad_norm: Array
    active: Array


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

    def __call__(self, params: Trainable, key: PRNGKeyArray, epoch: Int[Array, ""]):
        """``(loss, (nll, kl, heldout, gamma))`` of one epoch's Monte Carlo estimate."""
        w_s, kl, gamma = self.replicas_at(params, key, epoch)
        k_batch = jr.split(key)[1]
        w_d = self.w_d_fixed if params.w_d is None else params.w_d
        w = self.partition.join(w_s, w_d)
        y_max = jnp.max(jnp.abs(self.train.y))
        pred, _ = predict_ensemble_finite(self.partition, w, self.inputs, y_max)
        y, group, scale = minibatch(self.train, self.batch, k_batch, pred.dtype)
        nll = self.likelihood.loss(pred, y, group, scale, self.partition.log_sigma(w))
        kl = jnp.mean(kl)
        heldout = heldout_score(pred, self.validation)
        return nll + self.beta * kl, (nll, kl, heldout, gamma)

    def replicas_at(self, params: Trainable, key: PRNGKeyArray, epoch: Int[Array, ""]):
        """The epoch's replicas ``w_S`` ``(R, ns)``, their path-KLs ``(R,)`` and gamma."""
        gamma = anneal_gamma(epoch, self.gamma0, self.anneal_epochs)
        w_s, kl, _ = self.sampler.simulate(params.drift, jr.split(key)[0], self.replicas, gamma)
        return w_s, kl, gamma


def minibatch(
    train: TrainingArrays, batch: int, key: PRNGKeyArray, dtype
) -> tuple[Float[Array, "B T ny"], Int[Array, " B"], Float[Array, ""]]:
    """A uniform draw of ``batch`` trajectories (``0`` = all) and the scale ``N_train / B``."""
    n_train = train.y.shape[0]
    if 0 < batch < n_train:
        idx = jr.choice(key, n_train, (batch,), replace=False)
        return train.y[idx], train.group[idx], jnp.asarray(n_train / batch, dtype)
    return train.y, train.group, jnp.asarray(1.0, dtype)


def heldout_score(
    pred: Float[Array, "R G T ny"], validation: TrainingArrays | None
) -> Float[Array, ""]:
    """Mean energy score of the validation trajectories against the ensemble (no gradient)."""
    if validation is None:
        return jnp.asarray(jnp.nan, pred.dtype)
    pred = jax.lax.stop_gradient(pred)
    return energy_score_per_trajectory(pred, validation.y, validation.group)


def init_state(params: PyTree, optimiser: optax.GradientTransformation) -> TrainState:
    return TrainState(
        epoch=jnp.asarray(0, jnp.int32),
        params=params,
        opt_state=optimiser.init(eqx.filter(params, eqx.is_inexact_array)),
    )


def make_chunk_step(
    objective: Callable, optimiser: optax.GradientTransformation, epochs: int
) -> Callable[[TrainState, PRNGKeyArray], tuple[TrainState, EpochInfo, Array]]:
    """The jitted training call: ``CHUNK`` epochs as one scan.

    Args:
        objective: ``objective(params, key, epoch) -> (loss, (nll, kl, heldout, gamma))``;
            `ELBO` for the Langevin sampler, `langevin_uq.baselines.bbvi.BBVIObjective` for BBVI.
        optimiser: the gradient transformation applied to the trainable arrays of the params.
        epochs: total epochs of the run.

    Returns ``(state, info, diverged)``. An epoch whose loss or gradient is not finite leaves the
    state unchanged and sets ``diverged``; later epochs of the chunk then do nothing, so the
    returned state is the last good one. Epochs at or past ``epochs`` are inactive no-ops, so
    every call has the same shape and the step compiles once.
    """

    @eqx.filter_jit
    def chunk(state: TrainState, key: PRNGKeyArray):
        def epoch_step(carry, _):
            state, diverged = carry
            epoch = state.epoch
            epoch_key = jr.fold_in(key, epoch)
            params, static = eqx.partition(state.params, eqx.is_inexact_array)

            def loss_fn(p):
                return objective(eqx.combine(p, static), epoch_key, epoch)

            (loss, (nll, kl, heldout, gamma)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                params
            )
            grad_norm = optax.tree.norm(grads)
            updates, opt_state = optimiser.update(grads, state.opt_state, params)
            proposed = TrainState(
                epoch + 1, eqx.combine(eqx.apply_updates(params, updates), static), opt_state
            )
            active = (epoch < epochs) & ~diverged
            finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
            accept = active & finite
            new, old = eqx.filter(proposed, eqx.is_array), eqx.filter(state, eqx.is_array)
            kept = jax.tree.map(lambda a, b: jnp.where(accept, a, b), new, old)
            state = eqx.combine(kept, eqx.filter(state, eqx.is_array, inverse=True))
            info = EpochInfo(loss, nll, kl, heldout, gamma, grad_norm, accept)
            return (state, diverged | (active & ~finite)), info

        (state, diverged), info = jax.lax.scan(
            epoch_step, (state, jnp.asarray(False)), None, length=CHUNK
        )
        return state, info, diverged

    return chunk
