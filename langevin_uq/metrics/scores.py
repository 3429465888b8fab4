"""Proper scoring rules of ensemble forecasts: the CRPS and the energy score."""

import numpy as np
from jaxtyping import Float
from scipy.spatial.distance import cdist, pdist

from langevin_uq.errors import DataError

from ._arrays import HostArray, _finite


def crps_ensemble(
    y_pred: Float[HostArray, " M *batch"], y_obs: Float[HostArray, "*batch"], *, fair: bool = False
) -> Float[np.ndarray, "*batch"]:
    """Continuous ranked probability score of an ensemble forecast, per observed value.

    CRPS = E|X - y| - 1/2 E|X - X'| with X, X' drawn from the ensemble. With the ensemble sorted,
    sum_{m, m'} |x_m - x_m'| = 2 sum_i (2 i - M - 1) x_(i), so the cost is O(M log M).

    Parameters
    ----------
    y_pred : array of shape (M, ...)
        Ensemble members along axis 0.
    y_obs : array of shape (...)
        Observations, one per ensemble.
    fair : bool
        False (default): the CRPS of the empirical CDF (pairs averaged over M^2, m = m'
        included). True: the unbiased "fair" estimator of the forecast law's CRPS (M (M - 1)).

    Returns
    -------
    ndarray of shape (...)
        The score of each observation; lower is better.
    """
    x = np.sort(_finite("y_pred", y_pred), axis=0)
    y = _finite("y_obs", y_obs)
    if x.shape[1:] != y.shape:
        raise DataError(f"y_pred {x.shape} must be (M, *{y.shape}) to match y_obs.")
    m = x.shape[0]
    if fair and m < 2:
        raise DataError("fair CRPS needs at least 2 ensemble members.")
    skill = np.mean(np.abs(x - y), axis=0)
    weights = (2.0 * np.arange(1, m + 1) - m - 1).reshape((m,) + (1,) * y.ndim)
    pair_sum = 2.0 * np.sum(weights * x, axis=0)
    return skill - 0.5 * pair_sum / (m * (m - 1) if fair else m * m)


def energy_score(pred: Float[HostArray, "M D"], obs: Float[HostArray, "N D"]) -> float:
    """Energy score of a multivariate ensemble against a set of observations.

    ES = mean_{m, i} ||pred_m - obs_i|| - 1/2 mean_{m != m'} ||pred_m - pred_m'|| (Euclidean).

    Parameters
    ----------
    pred : array of shape (M, D)
        Predictive draws (flatten a trajectory's (T, ny) into D), M >= 2.
    obs : array of shape (N, D)
        Observations of the same condition.

    Returns
    -------
    float
        The score; lower is better.
    """
    pred = _finite("pred", pred, ndim=2)
    obs = _finite("obs", obs, ndim=2)
    if pred.shape[1] != obs.shape[1]:
        raise DataError(f"pred {pred.shape} and obs {obs.shape} must share D.")
    if pred.shape[0] < 2:
        raise DataError("energy_score needs at least 2 predictive draws.")
    return float(cdist(pred, obs).mean() - 0.5 * pdist(pred).mean())
