"""What a method is fitted on, prepared from the data and the config (the first step of `fit`).

The data model (yours, a ``model.module``, or the built-in neural ODE) and its weight partition;
the validation split, the output scaling and one input per condition group; the MLE pre-fit;
the OU prior of the stochastic weights and the likelihood built from the training split and
the MLE's predictions. `Setup` is the part a run directory rebuilds without the data
(`langevin_uq.run.load_run`); `Problem` adds the data.
"""

import time
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._types import Array, Float
from .config import (
    DataOptions,
    LikelihoodOptions,
    ModelOptions,
    PartitionOptions,
    PriorOptions,
    TrainOptions,
)
from .data import Scaler, Trajectories, split
from .datamodel import check_data_model, construct, load_model_class
from .errors import ConfigError, TrainingDivergedError
from .likelihoods import AbstractLikelihood, build_likelihood
from .model import build_model
from .prior import OUPrior, ou_prior
from .problem import (
    GroupInputs,
    TrainingArrays,
    group_inputs,
    predict_groups,
    training_arrays,
)
from .seeding import fit_keys
from .train import fit_mle
from .weights import WeightPartition, make_partition, preset


@dataclass(frozen=True)
class Setup:
    """What a run's method is built on: a function of the config's sections, the data model
    and the run's sizes, rebuilt by `langevin_uq.run.load_run` from a run directory.

    Attributes:
        partition: flat-weight layout and ``w_S``/``w_D`` split.
        w_mle: the MLE of all weights, ``(nw,)``.
        prior: the OU prior of ``w_S``.
        scaler: the output scaling of the training split.
        grid: the data's ``(groups, times, inputs)``.
        dtype: the run's float dtype.
    """

    partition: WeightPartition
    w_mle: Float[Array, " nw"]
    prior: OUPrior
    scaler: Scaler
    grid: tuple[int, int, int]
    dtype: type

    @property
    def w_d(self) -> Float[Array, " nd"]:
        """The MLE's deterministic weights."""
        return self.partition.split(self.w_mle)[1]


@dataclass(frozen=True)
class Problem(Setup):
    """A `Setup` with the data it was prepared from.

    Attributes:
        data: all trajectories, group ids relabelled ``0..G-1`` (unscaled).
        train_split, validation_split: the split of ``data`` (validation may be ``None``).
        inputs: one input per condition group (every group, validation ones too), scaled.
        train, validation: device arrays of the scaled splits.
        likelihood: the data term, from the training split and the MLE's predictions.
        y_mle: the MLE's prediction per group, ``(G, T, ny)``.
        mle_info: the MLE pre-fit's summary (``model.json``'s ``mle``).
    """

    data: Trajectories
    train_split: Trajectories
    validation_split: Trajectories | None
    inputs: GroupInputs
    train: TrainingArrays
    validation: TrainingArrays | None
    likelihood: AbstractLikelihood
    y_mle: np.ndarray
    mle_info: dict


def dtype_of(train: TrainOptions):
    """The run's float dtype (``train.x64`` switches JAX to 64 bits)."""
    if train.x64:
        jax.config.update("jax_enable_x64", True)
        return jnp.float64
    return jnp.float32


def relabel_groups(data: Trajectories) -> Trajectories:
    """``data`` with its condition group ids relabelled ``0..G-1`` (in sorted order)."""
    _, ids = np.unique(data.group, return_inverse=True)
    return Trajectories(data.t, data.y, data.x, data.y0, ids.astype(np.int64))


def data_model(
    m: ModelOptions, seed: int, n_outputs: int, n_inputs: int, dtype, model=None
):  # fmt: skip
    """The data model of a run: ``model`` (a user's module from the Python API), the module
    of ``[model] module``, or the built-in neural ODE of ``[model]`` (weights drawn from the
    run's ``seed``); its arrays in ``dtype``.

    Returns ``(model, own)``; ``own`` is true for a user's model (it works in the data's units).
    """
    own = model is not None or bool(m.module)
    if model is None and m.module:
        factory = load_model_class(m.module)
        model = construct(factory, m.args, fit_keys(seed)["model"])
    if model is None:
        model = build_model(
            n_outputs=n_outputs, n_inputs=n_inputs, hidden_state=m.hidden_state,
            R_hidden=m.R_hidden, R_activation=m.R_activation, observation=m.observation,
            Z_hidden=m.Z_hidden, Z_activation=m.Z_activation,
            key=fit_keys(seed)["model"],
        )  # fmt: skip
    model = jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, model)
    if own:
        where = f"the model {m.module}" if m.module else f"the model {type(model).__name__}"
        check_data_model(model, n_outputs, n_inputs, dtype, where=where)
    return model, own


def partition_of(
    model, own: bool, scaler: Scaler, *, partition: PartitionOptions,
    model_options: ModelOptions, likelihood: LikelihoodOptions, sample_noise: bool = True,
) -> WeightPartition:  # fmt: skip
    """The weight layout of ``model`` from ``[partition]``, ``[model]`` (its ``fixed`` leaves
    and ``substeps``) and the noise (``likelihood.sigma = "learn"`` adds ``log_sigma``, held
    at the MLE unless ``sample_noise``: `langevin_uq.methods.AbstractMethod.samples_noise`)."""
    stochastic, rest = partition.stochastic, partition.rest
    if partition.variant != "full":
        stochastic, rest = preset(model, partition.variant, partition.submodels)
    n_noise = scaler.shift.shape[0] if likelihood.sigma == "learn" else 0
    return make_partition(model, stochastic=stochastic, rest=rest, fixed=model_options.fixed,
                          substeps=model_options.substeps, n_noise=n_noise,
                          sample_noise=sample_noise, units=scaler if own else None)  # fmt: skip


def setup(
    model, own: bool, scaler: Scaler, w_mle, grid, dtype, *, partition: PartitionOptions,
    model_options: ModelOptions, likelihood: LikelihoodOptions, prior: PriorOptions,
    sample_noise: bool = True,
) -> Setup:  # fmt: skip
    """The `Setup` of a run from its data model, scaling, MLE and sizes, and the config
    sections that lay out the weights (`partition_of`) and their prior."""
    layout = partition_of(model, own, scaler, partition=partition, model_options=model_options,
                          likelihood=likelihood, sample_noise=sample_noise)  # fmt: skip
    return Setup(layout, w_mle, ou_prior(layout, w_mle, prior), scaler, grid, dtype)


def scaled_split(
    data: Trajectories, options: DataOptions, seed: int, dtype, scaler: Scaler | None = None
):  # fmt: skip
    """The training and validation splits of ``data`` (drawn with the run's ``seed``), the
    output scaling (fitted on the training split unless ``scaler`` is given) and one input per
    condition group (every group, validation ones too), scaled.

    Returns ``(train, validation, scaler, inputs)``; ``validation`` may be ``None``.
    """
    train, validation = split(data, options.validation_fraction, fit_keys(seed)["split"])
    if scaler is None:
        scaler = Scaler.fit(train, options.scaling)
    return train, validation, scaler, group_inputs(scaler.transform(data), dtype)


def prepare(
    data: Trajectories, model, own: bool, dtype, mle: tuple | None = None, *,
    data_options: DataOptions, model_options: ModelOptions, partition: PartitionOptions,
    prior: PriorOptions, likelihood: LikelihoodOptions, train: TrainOptions,
    sample_noise: bool = True,
) -> Problem:  # fmt: skip
    """Split, scale and lay out ``data`` (group ids ``0..G-1``), fit the MLE, build the likelihood.

    Args:
        data: the trajectories, group ids relabelled (`relabel_groups`).
        model, own: the data model and whether it is a user's (`data_model`).
        mle: a resumed run's ``(w_mle, summary)``; ``None`` fits the MLE.
        data_options, model_options, partition, prior, likelihood, train: the run's
            ``[data]``, ``[model]``, ``[partition]``, ``[prior]``, ``[likelihood]`` and
            ``[train]`` sections.
        sample_noise: whether the method samples a learned noise (`partition_of`).
    """
    train_split, validation, scaler, inputs = scaled_split(data, data_options, train.seed, dtype)
    train_s = scaler.transform(train_split)
    train_arrays = training_arrays(train_s, dtype)
    val_arrays = training_arrays(scaler.transform(validation), dtype) if validation else None
    layout = partition_of(model, own, scaler, partition=partition, model_options=model_options,
                          likelihood=likelihood, sample_noise=sample_noise)  # fmt: skip
    if mle is None:
        mle = _fit_mle(train, layout, model, inputs, train_arrays, val_arrays, scaler)
    w_mle, mle_info = mle
    y_mle = np.asarray(predict_groups(layout, w_mle, inputs))
    lk = run_likelihood(likelihood, train.seed, train_s, inputs.n_groups, y_mle, scaler, dtype)
    return Problem(
        partition=layout, w_mle=w_mle, prior=ou_prior(layout, w_mle, prior),
        scaler=scaler, grid=(*inputs.t.shape, data.n_inputs), dtype=dtype, data=data,
        train_split=train_split, validation_split=validation, inputs=inputs, train=train_arrays,
        validation=val_arrays, likelihood=lk, y_mle=y_mle, mle_info=mle_info,
    )  # fmt: skip


def _fit_mle(tr: TrainOptions, partition, model, inputs, train, validation, scaler):
    """The MLE pre-fit from the model's initial weights, and its summary."""
    t0 = time.perf_counter()
    result = fit_mle(partition, partition.flatten(model), inputs, train, validation,
                     epochs=tr.mle_epochs, lr=tr.mle_lr, patience=tr.mle_patience)  # fmt: skip
    w_mle = _with_noise_mle(partition, result.w, inputs, train, scaler)
    if not bool(jnp.all(jnp.isfinite(w_mle))):
        raise TrainingDivergedError("the MLE pre-fit diverged; lower train.mle_lr")
    return w_mle, {"train_mse": result.train_mse, "validation_mse": result.validation_mse,
                   "epochs": result.epochs, "seconds": time.perf_counter() - t0}  # fmt: skip


def run_likelihood(lk: LikelihoodOptions, seed: int, train_s: Trajectories, n_groups: int,
                   y_mle, scaler, dtype) -> AbstractLikelihood:  # fmt: skip
    """The run's likelihood (``[likelihood]``, the run's ``seed``) from its scaled training
    split and the MLE's group predictions."""
    return build_likelihood(
        lk.kind, y=np.asarray(train_s.y, np.dtype(dtype)), group=train_s.group,
        n_groups=n_groups, y_mle=np.asarray(y_mle), sigma=_sigma_scaled(lk.sigma, scaler),
        modes=lk.modes, time_reduction=lk.time_reduction, time_weighting=lk.time_weighting,
        marginal=lk.marginal, seed=seed, output_scale=np.asarray(scaler.scale),
    )  # fmt: skip


def _sigma_scaled(sigma, scaler: Scaler):
    if isinstance(sigma, str):
        return sigma
    scale = np.asarray(scaler.scale)
    if scale.size > 1 and not np.allclose(scale, scale[0]):
        raise ConfigError(
            "likelihood.sigma as a number needs equal output scales; set data.scaling = 'none'"
        )
    return float(sigma) / float(scale[0])


_NOISE_FLOOR = 1e-6
"""Smallest MLE noise sd, relative to the data's scale: a model that fits exactly would
otherwise start ``log_sigma`` at minus infinity."""


def _with_noise_mle(partition: WeightPartition, w, inputs, train, scaler: Scaler):
    """``w`` with its ``log_sigma`` entries (a learned noise) at their MLE: the log RMS
    residual of each output at the model's MLE, in the data's units."""
    if not partition.n_noise:
        return w
    pred = predict_groups(partition, w, inputs)
    rms = jnp.sqrt(jnp.mean((train.y - pred[train.group]) ** 2, axis=(0, 1)))
    sigma = jnp.maximum(rms, _NOISE_FLOOR) * jnp.asarray(scaler.scale, w.dtype)
    return w.at[partition.n_weights - partition.n_noise :].set(jnp.log(sigma))
