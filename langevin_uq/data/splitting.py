"""Condition groups of trajectories, and the random split into training and validation sets."""

import math
import numbers

import jax.random as jr
import numpy as np

from langevin_uq._types import Int, PRNGKeyArray
from langevin_uq.errors import ConfigError

from .trajectories import Trajectories


def groups(traj: Trajectories) -> list[Int[np.ndarray, " n_g"]]:
    """Index arrays of the trajectories in each condition group.

    Returns
    -------
    list of (n_g,) int arrays
        One per distinct id of ``traj.group``, in increasing id order (for inferred ids, the
        order of first appearance).
    """
    return [np.flatnonzero(traj.group == g) for g in np.unique(traj.group)]


def split(
    traj: Trajectories, validation_fraction: float, key: PRNGKeyArray
) -> tuple[Trajectories, Trajectories | None]:
    """Split whole trajectories at random into a training and a validation set.

    Parameters
    ----------
    traj : Trajectories
        The full set, N trajectories.
    validation_fraction : float
        Fraction held out, in [0, 1); rounded to at least one validation and one training
        trajectory when positive. 0, or a single trajectory, gives no validation set.
    key : PRNGKeyArray
        Key of the permutation (`jax.random.permutation`); the split is a function of it alone.

    Returns
    -------
    (train, validation)
        Each keeps the original trajectory order; `validation` is None when empty.
    """
    f = validation_fraction
    if isinstance(f, bool) or not isinstance(f, numbers.Real) or not 0.0 <= f < 1.0:
        raise ConfigError(f"validation_fraction must be a number in [0, 1) but is {f!r}.")
    n = traj.n_trajectories
    if f == 0.0 or n < 2:
        return traj, None
    n_val = min(max(math.floor(f * n + 0.5), 1), n - 1)
    perm = np.asarray(jr.permutation(key, n))
    return traj.subset(np.sort(perm[n_val:])), traj.subset(np.sort(perm[:n_val]))
