"""Calibration of predictive bands against observations: coverage and the PIT."""

from collections.abc import Sequence

import numpy as np
from jaxtyping import Float

from langevin_uq.errors import DataError

from ._arrays import HostArray, _finite


def _band_fractions(
    y_pred: np.ndarray, y_obs: np.ndarray, levels: Sequence[float]
) -> dict[float, float]:
    """Fraction of `y_obs` inside central ensemble bands; `y_pred` axis 0 is the ensemble."""
    levels = [float(level) for level in levels]
    for level in levels:
        if not 0.0 < level < 1.0:
            raise DataError(f"coverage level {level} must lie strictly between 0 and 1.")
    qs = np.concatenate([[(1 - lv) / 2 for lv in levels], [(1 + lv) / 2 for lv in levels]])
    bounds = np.quantile(y_pred, qs, axis=0)
    lo, hi = bounds[: len(levels)], bounds[len(levels) :]
    return {
        level: float(np.mean((y_obs >= lo[i]) & (y_obs <= hi[i]))) for i, level in enumerate(levels)
    }


def coverage(
    y_pred: Float[HostArray, "M N T ny"],
    y_obs: Float[HostArray, "N T ny"],
    levels: Sequence[float] = (0.5, 0.9),
) -> dict[float, float]:
    """Empirical coverage of central predictive bands, one ensemble per observed trajectory.

    Parameters
    ----------
    y_pred : array of shape (M, N, T, ny)
        M predictive draws for each of the N held-out trajectories.
    y_obs : array of shape (N, T, ny)
        The held-out observations.
    levels : sequence of float
        Nominal levels; the band of level L spans the (1 - L)/2 and (1 + L)/2 ensemble quantiles.

    Returns
    -------
    dict
        ``{level: fraction of y_obs values inside their band}``; a calibrated model gives about L.
    """
    y_pred = _finite("y_pred", y_pred, ndim=4)
    y_obs = _finite("y_obs", y_obs, ndim=3)
    if y_pred.shape[1:] != y_obs.shape:
        raise DataError(f"y_pred {y_pred.shape} must be (M, *{y_obs.shape}) to match y_obs.")
    return _band_fractions(y_pred, y_obs, levels)


def _group_ensemble(y_pred: HostArray, y_obs: HostArray) -> tuple[np.ndarray, np.ndarray]:
    """A group's ensemble ``(M, T, ny)`` and observations ``(N, T, ny)``, checked."""
    y_pred = _finite("y_pred", y_pred, ndim=3)
    y_obs = _finite("y_obs", y_obs, ndim=3)
    if y_pred.shape[1:] != y_obs.shape[1:]:
        raise DataError(f"y_pred {y_pred.shape} and y_obs {y_obs.shape} must share T and ny.")
    return y_pred, y_obs


def coverage_pooled(
    y_pred: Float[HostArray, "M T ny"],
    y_obs: Float[HostArray, "N T ny"],
    levels: Sequence[float] = (0.5, 0.9),
) -> dict[float, float]:
    """Coverage when one predictive ensemble stands for a whole group of observations.

    The aleatory case: the N trajectories of a condition group are independent draws of the same
    random process, so the M predictive draws at each (t, output) form one band against which all
    N observed values are counted.

    Parameters
    ----------
    y_pred : array of shape (M, T, ny)
        Predictive draws for the group's condition.
    y_obs : array of shape (N, T, ny)
        The group's observed trajectories.
    levels : sequence of float
        Nominal central band levels in (0, 1).

    Returns
    -------
    dict
        ``{level: fraction of the N * T * ny observed values inside the band}``.
    """
    y_pred, y_obs = _group_ensemble(y_pred, y_obs)
    return _band_fractions(y_pred, y_obs, levels)


def pit_pooled(
    y_pred: Float[HostArray, "M T ny"], y_obs: Float[HostArray, "N T ny"]
) -> Float[np.ndarray, "N T ny"]:
    """Probability integral transform of each observed value under its group's ensemble.

    The fraction of the M predictive draws at the same (t, output) below the observed value,
    ties counted half. For a calibrated predictive of an aleatory process the values are
    uniform on [0, 1]; a U shape means bands too narrow, a hump bands too wide, a slope a bias.
    Values of one trajectory at different times are dependent, so a histogram of all of them
    fluctuates more than its count suggests.

    Parameters
    ----------
    y_pred : array of shape (M, T, ny)
        Predictive draws for the group's condition.
    y_obs : array of shape (N, T, ny)
        The group's observed trajectories.

    Returns
    -------
    ndarray of shape (N, T, ny)
        PIT values in [0, 1].
    """
    y_pred, y_obs = _group_ensemble(y_pred, y_obs)
    ordered = np.sort(y_pred, axis=0)
    m = ordered.shape[0]
    below = np.empty(y_obs.shape)
    for idx in np.ndindex(*y_obs.shape[1:]):  # T * ny sorted searches, vectorised over N
        column = ordered[(slice(None), *idx)]
        values = y_obs[(slice(None), *idx)]
        lo = np.searchsorted(column, values, side="left")
        hi = np.searchsorted(column, values, side="right")
        below[(slice(None), *idx)] = 0.5 * (lo + hi)
    return below / m
