"""The host arrays the metrics take, and their one input check."""

import numpy as np

from langevin_uq._types import Array
from langevin_uq.errors import DataError

HostArray = np.ndarray | Array


def _finite(name: str, x: HostArray, ndim: int | None = None) -> np.ndarray:
    """Convert to a float64 NumPy array, refusing NaN/inf, empty input and a wrong rank."""
    x = np.asarray(x, dtype=np.float64)
    if ndim is not None and x.ndim != ndim:
        raise DataError(f"{name} must have {ndim} dimensions, got shape {x.shape}.")
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise DataError(f"{name} (shape {x.shape}) is empty or contains NaN or infinite values.")
    return x
