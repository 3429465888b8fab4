"""Evaluation metrics on the host (NumPy/SciPy): METHOD.md section 10.

These compare predicted and observed trajectories, and sampled weights against analytic laws, after
training; they are not losses and are never traced by JAX. Inputs may be NumPy or JAX arrays and
are converted with `numpy.asarray`.
"""

import math
from collections.abc import Mapping, Sequence

import numpy as np
from jaxtyping import Float
from scipy.spatial.distance import cdist, pdist

from langevin_uq._types import Array
from langevin_uq.errors import DataError

__all__ = [
    "coverage",
    "coverage_pooled",
    "crps_ensemble",
    "distance_correlation",
    "distance_correlation_matrix",
    "energy_score",
    "format_parameter_table",
    "mixture_summary",
    "mode_fractions",
    "nearest_mode",
    "parameter_table",
    "w1_over_time",
    "wasserstein1",
    "weight_statistics",
]

HostArray = np.ndarray | Array


def _finite(name: str, x: HostArray, ndim: int | None = None) -> np.ndarray:
    """Convert to a float64 NumPy array, refusing NaN/inf, empty input and a wrong rank."""
    x = np.asarray(x, dtype=np.float64)
    if ndim is not None and x.ndim != ndim:
        raise DataError(f"{name} must have {ndim} dimensions, got shape {x.shape}.")
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise DataError(f"{name} (shape {x.shape}) is empty or contains NaN or infinite values.")
    return x


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


def weight_statistics(samples: Float[HostArray, "M n"]) -> dict[str, np.ndarray]:
    """Mean, standard deviation (ddof=1) and correlation matrix of sampled weights.

    Parameters
    ----------
    samples : array of shape (M, n)
        M >= 2 draws of n weights.

    Returns
    -------
    dict
        ``mean`` (n,), ``sd`` (n,), ``corr`` (n, n).
    """
    samples = _finite("samples", samples, ndim=2)
    if samples.shape[0] < 2:
        raise DataError("weight_statistics needs at least 2 samples.")
    sd = samples.std(axis=0, ddof=1)
    cov = np.cov(samples, rowvar=False, ddof=1).reshape(samples.shape[1], samples.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(sd, sd)
    return {"mean": samples.mean(axis=0), "sd": sd, "corr": corr}


def parameter_table(
    samples: Mapping[str, Float[HostArray, "M 2"]],
    reference: Mapping[str, object] | None = None,
    names: tuple[str, str] = ("w1", "w2"),
) -> list[dict[str, str | float | None]]:
    """Two-parameter posterior statistics per method against an analytic law (OU, Eq. 31).

    Parameters
    ----------
    samples : dict of str to array of shape (M, 2)
        Weight draws of each method, e.g. ``{"Langevin sampler": ..., "BBVI": ...}``.
    reference : dict, optional
        ``mean`` (2,), ``sd`` (2,) and ``corr`` (float or None) of the analytic law.
    names : pair of str
        Parameter names used in the column keys.

    Returns
    -------
    list of dict
        One row per method with ``method``, ``mean_<name>``, ``sd_<name>``, ``corr``. With a
        reference, the first row is the reference itself (``method="analytic"``) and every method
        row adds ``mean_err_<name>`` (mean error in reference sds), ``sd_rel_err_<name>``
        (sd / reference sd - 1) and ``corr_err`` (corr - reference corr, None without one).
    """
    rows: list[dict[str, str | float | None]] = []
    ref_mean = ref_sd = ref_corr = None
    if reference is not None:
        ref_mean = np.asarray(reference["mean"], dtype=np.float64).reshape(2)
        ref_sd = np.asarray(reference["sd"], dtype=np.float64).reshape(2)
        ref_corr = None if reference.get("corr") is None else float(reference["corr"])
        row: dict[str, str | float | None] = {"method": "analytic"}
        row |= {f"mean_{k}": float(v) for k, v in zip(names, ref_mean, strict=True)}
        row |= {f"sd_{k}": float(v) for k, v in zip(names, ref_sd, strict=True)}
        rows.append(row | {"corr": ref_corr})
    for method, draws in samples.items():
        draws = _finite(f"samples[{method!r}]", draws, ndim=2)
        if draws.shape[1] != 2:
            raise DataError(f"samples[{method!r}] must have shape (M, 2), got {draws.shape}.")
        stats = weight_statistics(draws)
        row = {"method": method}
        row |= {f"mean_{k}": float(v) for k, v in zip(names, stats["mean"], strict=True)}
        row |= {f"sd_{k}": float(v) for k, v in zip(names, stats["sd"], strict=True)}
        row["corr"] = float(stats["corr"][0, 1])
        if ref_mean is not None and ref_sd is not None:
            for i, k in enumerate(names):
                row[f"mean_err_{k}"] = float((stats["mean"][i] - ref_mean[i]) / ref_sd[i])
            for i, k in enumerate(names):
                row[f"sd_rel_err_{k}"] = float(stats["sd"][i] / ref_sd[i] - 1.0)
            row["corr_err"] = None if ref_corr is None else row["corr"] - ref_corr
        rows.append(row)
    return rows


def format_parameter_table(rows: Sequence[Mapping[str, str | float | None]]) -> str:
    """Render `parameter_table` rows as a fixed-width plain-text table for a terminal.

    Columns are the union of the rows' keys in first-seen order; missing or None entries print
    as ``-`` and numbers with four significant decimals.
    """
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]

    def cell(value: object) -> str:
        if value is None:
            return "-"
        if isinstance(value, float | int | np.floating) and not isinstance(value, bool):
            return "nan" if math.isnan(value) else f"{value:.4f}"
        return str(value)

    table = [columns] + [[cell(row.get(col)) for col in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = [
        "  ".join(
            text.ljust(width) if i == 0 else text.rjust(width)
            for i, (text, width) in enumerate(zip(line, widths, strict=True))
        )
        for line in table
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
