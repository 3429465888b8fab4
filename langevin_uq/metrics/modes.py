"""Modes of a 1-D sample: Gaussian-mixture summaries (Fig. 5) and mode fractions."""

import numpy as np
from jaxtyping import Float

from langevin_uq.errors import DataError

from ._arrays import HostArray, _finite


def mixture_summary(
    x: Float[HostArray, " n"], modes: int = 2, *, seed: int = 0
) -> dict[str, np.ndarray]:
    """A K-component Gaussian-mixture summary of a 1-D sample (the paper's Fig. 5 panels).

    Parameters
    ----------
    x : array of shape (n,)
        E.g. the data or the predictions at one time; n >= `modes`.
    modes : int
        Number of mixture components K.
    seed : int
        Seed of the EM initialisation (the best of 3 EM runs from k-means starts).

    Returns
    -------
    dict
        ``weight``, ``mean`` and ``sd`` of the components, each of shape (K,), sorted by mean.
    """
    from sklearn.mixture import GaussianMixture

    x = _finite("x", x, ndim=1)
    if modes < 1 or x.size < modes:
        raise DataError(f"mixture_summary needs 1 <= modes <= n, got {modes} and n = {x.size}.")
    # Fewer distinct values than modes (e.g. a fixed initial state): fit as many components as
    # there are values and give the rest zero weight at the last one.
    k = min(modes, np.unique(x).size)
    gm = GaussianMixture(k, n_init=3, random_state=seed, reg_covar=1e-6 * (x.var() + 1e-12))
    gm.fit(x[:, None])
    order = np.argsort(gm.means_[:, 0])
    pad = modes - k
    weight, mean = gm.weights_[order], gm.means_[order, 0]
    sd = np.sqrt(gm.covariances_.reshape(-1)[order])
    return {
        "weight": np.concatenate([weight, np.zeros(pad)]),
        "mean": np.concatenate([mean, np.full(pad, mean[-1])]),
        "sd": np.concatenate([sd, np.full(pad, sd[-1])]),
    }


def nearest_mode(x: Float[HostArray, " n"], centers: Float[HostArray, " K"]) -> np.ndarray:
    """Index of the mode `centers` (e.g. the data's means) nearest to each value of a 1-D sample.

    Nearest-centre assignment splits the line at the midpoints between centres, so a broad mode's
    tail never claims points beyond a narrow neighbour, as a mixture's posterior would.
    """
    x = _finite("x", x, ndim=1)
    centers = _finite("centers", centers, ndim=1)
    return np.argmin(np.abs(x[:, None] - centers[None]), axis=1)


def mode_fractions(x: Float[HostArray, " n"], centers: Float[HostArray, " K"]) -> np.ndarray:
    """Fraction of a 1-D sample in each mode, by `nearest_mode`."""
    return np.bincount(nearest_mode(x, centers), minlength=np.size(centers)) / np.size(x)
