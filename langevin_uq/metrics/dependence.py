"""Distance correlation between sampled weights (Fig. 7, 14)."""

import numpy as np
from jaxtyping import Float

from langevin_uq.errors import DataError

from ._arrays import HostArray, _finite


def distance_correlation(a: Float[HostArray, "M p"], b: Float[HostArray, "M q"]) -> float:
    """Distance correlation (Szekely et al.) between paired samples; 0 iff independent.

    Parameters
    ----------
    a, b : arrays of shape (M, p) and (M, q), or (M,)
        Paired draws, e.g. two groups of sampled weights (Fig. 7, 14).

    Returns
    -------
    float
        The (biased, V-statistic) distance correlation in [0, 1].
    """
    a = _finite("a", a)
    b = _finite("b", b)
    if a.ndim not in (1, 2) or b.ndim not in (1, 2) or a.shape[0] != b.shape[0]:
        raise DataError(f"a {a.shape} and b {b.shape} must be (M,) or (M, p) with the same M.")
    import dcor  # lazily: dcor numba-compiles for ~5 s on import

    return float(dcor.distance_correlation(a, b))


def distance_correlation_matrix(w: Float[HostArray, "M n"]) -> Float[np.ndarray, "n n"]:
    """Pairwise distance correlation between the columns of `w` (Fig. 7, 14).

    Parameters
    ----------
    w : array of shape (M, n)
        M samples of n scalar weights.

    Returns
    -------
    ndarray of shape (n, n)
        Symmetric, ones on the diagonal (zero for a constant column).
    """
    w = _finite("w", w, ndim=2)
    import dcor  # lazily, as in distance_correlation

    n = w.shape[1]
    out = np.eye(n)
    for i in range(n):
        out[i, i] = 1.0 if np.ptp(w[:, i]) > 0 else 0.0
        for j in range(i + 1, n):
            # The O(M log M) algorithm for scalar pairs; the naive one is O(M^2) per pair.
            out[i, j] = out[j, i] = dcor.distance_correlation(w[:, i], w[:, j], method="mergesort")
    return out
