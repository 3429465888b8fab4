"""Parameter checks and the observation grid shared by the demonstration systems."""

import math

import numpy as np

from langevin_uq._types import Float
from langevin_uq.errors import ConfigError


def require(ok: bool, message: str) -> None:
    """Raise `ConfigError` with ``message`` unless ``ok``."""
    if not ok:
        raise ConfigError(message)


def is_count(value: object) -> bool:
    """A Python or NumPy integer (not a bool)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def check_grid(n: object, n_times: object, t_end: object) -> None:
    """``n >= 1`` trajectories on ``n_times >= 2`` times up to a finite ``t_end > 0``."""
    for name, value, least in [("n", n, 1), ("n_times", n_times, 2)]:
        require(
            is_count(value) and value >= least,
            f"{name} must be an integer >= {least} but is {value!r}.",
        )
    require(
        isinstance(t_end, int | float | np.integer | np.floating)
        and math.isfinite(t_end)
        and t_end > 0,
        f"t_end must be finite and > 0 but is {t_end!r}.",
    )


def observation_times(t_end: float, n_times: int) -> Float[np.ndarray, " T"]:
    """Observation times ``linspace(0, t_end, n_times)`` as float32."""
    return np.linspace(0.0, t_end, n_times, dtype=np.float32)
