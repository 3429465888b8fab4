"""Training data laid out for the data model: one input per condition group.

Trajectories of a condition group share their times, inputs and initial state, so the data
model is solved once per group and per weight sample; the likelihoods compare that prediction
with every member of the group.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._finite import finite_rows
from ._types import Array, Float, Int
from .data import Trajectories
from .errors import DataError
from .weights import WeightPartition


class GroupInputs(eqx.Module):
    """The inputs of each condition group: times ``(G, T)``, inputs ``(G, T, nx)``, ``y0``."""

    t: Float[Array, "G T"]
    x: Float[Array, "G T nx"]
    y0: Float[Array, "G ny"]

    @property
    def n_groups(self) -> int:
        return self.t.shape[0]


def group_inputs(traj: Trajectories, dtype=jnp.float32) -> GroupInputs:
    """One representative input per group; refuses groups whose members' inputs differ."""
    n_groups = int(traj.group.max()) + 1
    x = traj.x if traj.x is not None else np.zeros((*traj.t.shape, 0))
    first = np.array([np.flatnonzero(traj.group == g)[0] for g in range(n_groups)])
    for name, values in (("t", traj.t), ("x", x), ("y0", traj.y0)):
        rep = values[first][traj.group]
        if not np.allclose(values, rep, rtol=1e-6, atol=1e-9):
            bad = int(
                traj.group[
                    np.flatnonzero(~np.isclose(values, rep).reshape(len(rep), -1).all(axis=1))[0]
                ]
            )
            raise DataError(
                f"trajectories of condition group {bad} differ in `{name}`; members of a group "
                "must share times, inputs and initial state"
            )
    return GroupInputs(
        t=jnp.asarray(traj.t[first], dtype),
        x=jnp.asarray(x[first], dtype),
        y0=jnp.asarray(traj.y0[first], dtype),
    )


def predict_groups(
    partition: WeightPartition, w: Float[Array, " nw"], inputs: GroupInputs
) -> Float[Array, "G T ny"]:
    """The data model with flat weights ``w`` solved for every group (in scaled units)."""
    return jax.vmap(partition.predict, in_axes=(None, 0, 0, 0))(w, inputs.t, inputs.x, inputs.y0)


def predict_ensemble(
    partition: WeightPartition, w: Float[Array, "M nw"], inputs: GroupInputs
) -> Float[Array, "M G T ny"]:
    """`predict_groups` for each of ``M`` weight vectors (vmapped over the samples)."""
    return jax.vmap(predict_groups, in_axes=(None, 0, None))(partition, w, inputs)


def group_means(
    y: Float[Array, "N T ny"], group: Int[Array, " N"], n_groups: int
) -> tuple[Float[Array, "G T ny"], Float[Array, " G"]]:
    """The mean output of each condition group's members, and their count (a group with no
    members has mean zero)."""
    counts = jnp.zeros(n_groups, y.dtype).at[group].add(1.0)
    sums = jnp.zeros((n_groups, *y.shape[1:]), y.dtype).at[group].add(y)
    return sums / jnp.maximum(counts, 1.0)[:, None, None], counts


class TrainingArrays(eqx.Module):
    """Device arrays of one split: outputs ``(N, T, ny)`` and group ids ``(N,)``."""

    y: Float[Array, "N T ny"]
    group: Int[Array, " N"]


def training_arrays(traj: Trajectories | None, dtype=jnp.float32) -> TrainingArrays | None:
    if traj is None or traj.n_trajectories == 0:
        return None
    return TrainingArrays(y=jnp.asarray(traj.y, dtype), group=jnp.asarray(traj.group, jnp.int32))


def data_log_tilt(
    partition: WeightPartition, likelihood, inputs: GroupInputs, arrays: TrainingArrays, w_d,
    beta,
):  # fmt: skip
    """``w_S -> (-data term / beta, predictions (G, T, ny))`` for one stochastic-weight vector:
    the likelihood factor of the posterior of METHOD section 5 ("Which posterior"), scored by
    ``likelihood.loss`` on ``arrays`` as the training loop scores one replica."""
    one = jnp.ones((), inputs.t.dtype)

    def value(w_s: Float[Array, " ns"]):
        w = partition.join(w_s, w_d)
        pred = predict_groups(partition, w, inputs)
        data = likelihood.loss(
            pred[None], arrays.y, arrays.group, one, partition.log_sigma(w[None])
        )
        return -data / beta, pred

    return value


OVERFLOW_DISTANCE = 1e3
"""Where a replica whose data model overflowed is put, in units of ``1 + max |y|``: far enough
from every trajectory that its data term is large, near enough that it stays finite."""


def predict_ensemble_finite(
    partition: WeightPartition, w: Float[Array, "M nw"], inputs: GroupInputs, y_max
) -> tuple[Float[Array, "M G T ny"], Int[Array, ""]]:
    """`predict_ensemble` where a weight vector whose data model overflows (a non-finite
    prediction) scores as a large finite loss instead of turning the batch into NaN.

    Its predictions become ``OVERFLOW_DISTANCE (1 + y_max)`` everywhere, with no gradient, so
    the other replicas' gradients stay finite (a stiff or blowing-up model at some prior draws
    is common in a nonlinear ODE). Returns the predictions and the number of such vectors.
    """
    pred, bad = finite_rows(_ensemble_rows, w, partition, inputs)
    far = OVERFLOW_DISTANCE * (1.0 + y_max)
    return jnp.where(bad[:, None, None, None], far, pred).astype(pred.dtype), jnp.sum(bad)


def _ensemble_rows(w, partition, inputs):
    return predict_ensemble(partition, w, inputs)
