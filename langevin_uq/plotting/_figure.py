"""A figure on the Agg canvas, its atomic PNG file, and the input and axis checks of every plot."""

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from langevin_uq._atomic import atomic_path
from langevin_uq._types import Array
from langevin_uq.errors import DataError

HostArray = np.ndarray | Array


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    return Path(path)


def _array(name: str, x: HostArray, ndim: int, last: int | None = None) -> np.ndarray:
    """A non-empty float array of rank `ndim` (and last dimension `last`), or a `DataError`."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != ndim or x.size == 0 or (last is not None and x.shape[-1] != last):
        want = f"{ndim}-d" if last is None else f"{ndim}-d (..., {last})"
        raise DataError(f"{name} must be a non-empty {want} array, got shape {x.shape}.")
    return x


def _padded_range(lo: float, hi: float, frac: float = 0.05) -> tuple[float, float]:
    """Widen [lo, hi] by `frac` of its span; a zero span gets a width from its magnitude."""
    span = hi - lo if hi > lo else max(abs(lo), 1.0) * 0.2
    return lo - frac * span, hi + frac * span


def _log_span(values: np.ndarray) -> float:
    """Ratio of the largest to the smallest positive finite value (1 if there are none)."""
    positive = values[np.isfinite(values) & (values > 0)]
    return float(positive.max() / positive.min()) if positive.size else 1.0
