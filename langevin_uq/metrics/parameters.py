"""Statistics of sampled weights, and the parameter table against an analytic law (Eq. 31)."""

import math
from collections.abc import Mapping, Sequence

import numpy as np
from jaxtyping import Float

from langevin_uq.errors import DataError

from ._arrays import HostArray, _finite


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
