"""The exact Wasserstein-1 distance between 1-D samples (Eq. 27), and W1 over time (Fig. 4)."""

import numpy as np
from jaxtyping import Float

from langevin_uq.errors import DataError

from ._arrays import HostArray, _finite


def _w1_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """W1 between the rows of `a` (R, n) and `b` (R, m), all rows at once.

    Tag each value with m (from `a`) or -n (from `b`) and sort the merged values: the running
    sum of the tags is n m (F_a - F_b) on each interval between consecutive merged values, so
    Eq. 27 is the sum of its magnitude times the interval widths, over n m. Integer tags keep the
    sum exact; ties give zero-width intervals, so their order does not matter.
    """
    n, m = a.shape[-1], b.shape[-1]
    values = np.concatenate([a, b], axis=-1)
    tags = np.concatenate([np.full(n, m, dtype=np.int64), np.full(m, -n, dtype=np.int64)])
    order = np.argsort(values, axis=-1, kind="stable")
    sorted_values = np.take_along_axis(values, order, axis=-1)
    cdf_gap = np.cumsum(tags[order], axis=-1)[..., :-1]
    return np.sum(np.abs(cdf_gap) * np.diff(sorted_values, axis=-1), axis=-1) / (n * m)


def wasserstein1(a: Float[HostArray, " n"], b: Float[HostArray, " m"]) -> float:
    """Exact Wasserstein-1 distance between two 1-D empirical samples (Eq. 27).

    Parameters
    ----------
    a, b : arrays of shape (n,) and (m,)
        Samples; their empirical CDFs F_a, F_b define W1 = integral of |F_a(x) - F_b(x)| dx.

    Returns
    -------
    float
        W1 in the units of the samples; equals `scipy.stats.wasserstein_distance(a, b)`.
    """
    a = _finite("a", a, ndim=1)
    b = _finite("b", b, ndim=1)
    return float(_w1_rows(a[None], b[None])[0])


def w1_over_time(
    y_data: Float[HostArray, "N T ny"], y_pred: Float[HostArray, "M T ny"]
) -> Float[np.ndarray, "T ny"]:
    """W1 between data and predicted trajectories at each time and output: W1(t_j) of Fig. 4.

    Parameters
    ----------
    y_data : array of shape (N, T, ny)
        Observed trajectories.
    y_pred : array of shape (M, T, ny)
        Predicted trajectories (one per posterior sample, or per sample and condition).

    Returns
    -------
    ndarray of shape (T, ny)
        Eq. 27 between the N data values and the M predicted values at each (t_j, output).
    """
    y_data = _finite("y_data", y_data, ndim=3)
    y_pred = _finite("y_pred", y_pred, ndim=3)
    if y_data.shape[1:] != y_pred.shape[1:]:
        raise DataError(
            f"y_data (N, T, ny) = {y_data.shape} and y_pred (M, T, ny) = {y_pred.shape} must "
            "share T and ny."
        )
    out = np.empty(y_data.shape[1:])
    # One output at a time bounds the merged array to T * (N + M) values.
    for k in range(y_data.shape[2]):
        out[:, k] = _w1_rows(y_data[:, :, k].T, y_pred[:, :, k].T)
    return out
