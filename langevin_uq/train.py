"""MLE pre-fit and the training of the ELBO-trained methods (METHOD sections 4 and 8).

The MLE loop and the jitted chunk step run a fixed number of epochs per jitted call as one
`lax.scan` (the chunk), so the host sees the state only for the progress bar, the history and
checkpoints (`train_loop`). The key of epoch ``e`` is ``fold_in(key, e)``: a run resumed from a
checkpoint draws exactly the keys an uninterrupted run would have drawn.
"""

import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from . import rundir
from ._interrupt import deferred_sigint
from ._types import Array, Float, Int, PRNGKeyArray, PyTree
from .errors import TrainingInterrupted
from .likelihoods import energy_score_per_trajectory
from .problem import GroupInputs, TrainingArrays, predict_groups
from .weights import WeightPartition

CHUNK = 10
"""Epochs per jitted call; a checkpoint can only be written between chunks."""


# --------------------------------------------------------------------------- MLE pre-fit


MLE_PROGRESS = 1e-3
"""Relative fall of the MLE's training error that counts as progress for early stopping."""


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
    is no validation set). Training stops once ``patience`` epochs pass in which neither the
    validation error reached a new low nor the training error fell by a fraction
    `MLE_PROGRESS` below its last such mark: Adam's first epochs swing the weights about, and a
    small validation split can score one of those swings lower than anything the slow
    descent that follows reaches within ``patience`` epochs (measured: examples/hybrid, 2
    validation trajectories, stopped at epoch 240 with the training error 8x the converged one).
    """
    optimiser = optax.adam(lr)
    watch = validation if validation is not None else train

    @eqx.filter_jit
    def chunk(w, opt_state, best_w, best, mark, since):
        def body(carry, _):
            w, opt_state, best_w, best, mark, since = carry
            loss, grad = jax.value_and_grad(_mse, argnums=1)(partition, w, inputs, train)
            updates, opt_state = optimiser.update(grad, opt_state, w)
            w = optax.apply_updates(w, updates)
            score = _mse(partition, w, inputs, watch)
            better = jnp.isfinite(score) & (score < best)
            best_w = jnp.where(better, w, best_w)
            best = jnp.where(better, score, best)
            descending = jnp.isfinite(loss) & (loss < (1 - MLE_PROGRESS) * mark)
            mark = jnp.where(descending, loss, mark)
            since = jnp.where(better | descending, 0, since + 1)
            return (w, opt_state, best_w, best, mark, since), None

        carry = (w, opt_state, best_w, best, mark, since)
        carry, _ = jax.lax.scan(body, carry, None, length=CHUNK)
        return carry

    carry = (
        w_init,
        optimiser.init(w_init),
        w_init,
        jnp.asarray(jnp.inf, w_init.dtype),
        jnp.asarray(jnp.inf, w_init.dtype),
        jnp.asarray(0, jnp.int32),  # an array from the start, so the chunk compiles once
    )
    done = 0
    while done < epochs:
        carry = chunk(*carry)
        done += CHUNK
        if int(carry[5]) >= patience:
            break
    best_w = carry[2]
    return MLEResult(
        w=best_w,
        train_mse=float(_mse(partition, best_w, inputs, train)),
        validation_mse=float(_mse(partition, best_w, inputs, watch)),
        epochs=done,
    )


# --------------------------------------------------------------------------- ELBO training


class TrainState(eqx.Module):
    """Everything a checkpoint holds: the next epoch, the trainables and Adam's state.

    ``params`` is a `langevin_uq.methods.ls.Trainable` for the Langevin sampler and the guide's
    unconstrained parameters for BBVI.
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
            `langevin_uq.methods.ls.ELBO` for the Langevin sampler,
            `langevin_uq.methods.bbvi.BBVIObjective` for BBVI.
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


# --------------------------------------------------------------------------- host loop


def optimiser(tr) -> optax.GradientTransformation:
    """Adam on the ``[train]`` schedule: constant or cosine, after a linear warm-up."""
    if tr.lr_schedule == "constant" or tr.epochs == 0:
        schedule = optax.constant_schedule(tr.lr)
    else:
        decay = tr.epochs - tr.lr_warmup
        schedule = optax.cosine_decay_schedule(tr.lr, decay, alpha=tr.lr_final)
    if tr.lr_warmup:
        # Adam's first steps move every parameter by about lr whatever its gradient; a ramp
        # keeps them from throwing a drift that starts at a good law far from it.
        ramp = optax.linear_schedule(tr.lr / tr.lr_warmup, tr.lr, tr.lr_warmup)
        schedule = optax.join_schedules([ramp, schedule], [tr.lr_warmup])
    adam = optax.adam(schedule)
    if tr.grad_clip > 0:
        return optax.chain(optax.clip_by_global_norm(tr.grad_clip), adam)
    return adam


def train_loop(
    chunk, state: TrainState, key, tr, history: list[tuple], run_dir: Path | None, progress: bool
) -> tuple[TrainState, bool]:
    """Run chunks to ``tr.epochs``; returns the state and whether training diverged.

    Appends a `langevin_uq.rundir.HISTORY_COLUMNS` row per epoch to ``history``. Checkpoints
    every ``tr.checkpoint_every`` epochs, at the end and on divergence (the last good state).
    The first SIGINT finishes the chunk under way, saves, and raises `TrainingInterrupted`.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("fit"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[status]}"))  # fmt: skip
    with deferred_sigint() as interrupted, Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("fit", total=tr.epochs, completed=int(state.epoch), status="")
        last_saved = int(state.epoch)
        while int(state.epoch) < tr.epochs:
            start = int(state.epoch)
            t0 = time.perf_counter()
            new_state, info, diverged = chunk(state, key)
            info = jax.device_get(info)
            n_done = int(np.sum(info.active))
            per_epoch = (time.perf_counter() - t0) / max(n_done, 1)
            for i in range(n_done):
                history.append((start + i + 1, info.loss[i], info.nll[i], info.kl[i], per_epoch,
                                info.heldout[i], info.gamma[i], info.grad_norm[i]))  # fmt: skip
            state = new_state
            if bool(diverged):
                if run_dir is not None:
                    rundir.save_progress(run_dir, state, history)
                return state, True
            if n_done:
                i = n_done - 1
                status = f"loss {info.loss[i]:.4g}  nll {info.nll[i]:.4g}  kl {info.kl[i]:.4g}"
                bar.update(task, completed=int(state.epoch), status=status)
            epoch = int(state.epoch)
            due = epoch // tr.checkpoint_every > last_saved // tr.checkpoint_every
            if run_dir is not None and (due or epoch >= tr.epochs or interrupted()):
                rundir.save_progress(run_dir, state, history)
                last_saved = epoch
            if interrupted():
                where = f"the checkpoint in {run_dir}" if run_dir is not None else "nothing"
                raise TrainingInterrupted(
                    f"interrupted after epoch {epoch} of {tr.epochs}; {where} holds it"
                    + ("; fit --resume continues the run" if run_dir is not None else "")
                )
    if run_dir is not None and tr.epochs == 0:  # untrained: the starting drift is the result
        rundir.save_progress(run_dir, state, history)
    return state, False
