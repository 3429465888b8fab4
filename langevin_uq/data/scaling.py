"""`Scaler`: the per-output affine scaling of the ``[data] scaling`` key."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from langevin_uq._types import Array, Float
from langevin_uq.errors import ConfigError, DataError

from .trajectories import Trajectories


class Scaler(eqx.Module):
    """Per-output affine scaling ``y_scaled = (y - shift) / scale`` (the ``[data] scaling`` key).

    Attributes
    ----------
    shift : (ny,) float array
    scale : (ny,) float array, positive
    """

    shift: Float[np.ndarray, " ny"]
    scale: Float[np.ndarray, " ny"]

    def __check_init__(self) -> None:
        if np.ndim(self.shift) != 1 or np.shape(self.shift) != np.shape(self.scale):
            raise DataError("Scaler `shift` and `scale` must be 1-D arrays of the same length.")
        if isinstance(self.scale, np.ndarray) and not np.all(
            np.isfinite(self.scale) & (self.scale > 0)
        ):
            raise DataError("Scaler `scale` must be positive and finite.")

    @classmethod
    def fit(cls, traj: Trajectories, kind: str) -> "Scaler":
        """Fit to `traj`: ``"standardize"`` (mean and std of each output over all N and T; a
        zero std becomes 1) or ``"none"`` (identity, keeping the data's own units).
        """
        dtype = traj.y.dtype
        if kind == "none":
            return cls(np.zeros(traj.n_outputs, dtype), np.ones(traj.n_outputs, dtype))
        if kind != "standardize":
            raise ConfigError(f"scaling must be 'standardize' or 'none' but is {kind!r}.")
        flat = traj.y.reshape(-1, traj.n_outputs).astype(np.float64)
        std = flat.std(axis=0)
        return cls(flat.mean(axis=0).astype(dtype), np.where(std > 0, std, 1.0).astype(dtype))

    def _parts(self, y):
        xp = jnp if any(isinstance(a, jax.Array) for a in (y, self.shift, self.scale)) else np
        y = xp.asarray(y)
        dtype = y.dtype if xp.issubdtype(y.dtype, xp.floating) else self.shift.dtype
        return xp.asarray(y, dtype), xp.asarray(self.shift, dtype), xp.asarray(self.scale, dtype)

    def transform_y(
        self, y: Float[ArrayLike, "*batch ny"]
    ) -> Float[Array | np.ndarray, "*batch ny"]:
        """Scale outputs: ``(y - shift) / scale`` along the last axis (NumPy in, NumPy out)."""
        y, shift, scale = self._parts(y)
        return (y - shift) / scale

    def inverse_y(self, y: Float[ArrayLike, "*batch ny"]) -> Float[Array | np.ndarray, "*batch ny"]:
        """Undo `transform_y`: ``y * scale + shift`` along the last axis."""
        y, shift, scale = self._parts(y)
        return y * scale + shift

    def transform(self, traj: Trajectories) -> Trajectories:
        """Scale `y` and `y0` of `traj`; `t`, `x` and `group` are unchanged."""
        if traj.n_outputs != self.shift.shape[0]:
            raise DataError(
                f"`y` has {traj.n_outputs} outputs but the scaler was fit to {self.shift.shape[0]}."
            )
        y, y0 = self.transform_y(traj.y), self.transform_y(traj.y0)
        return Trajectories(traj.t, y, traj.x, y0, traj.group)

    def to_dict(self) -> dict:
        """Plain-Python form for JSON: ``{"shift": [...], "scale": [...], "dtype": "float32"}``."""
        shift, scale = np.asarray(self.shift), np.asarray(self.scale)
        return {"shift": shift.tolist(), "scale": scale.tolist(), "dtype": str(shift.dtype)}

    @classmethod
    def from_dict(cls, d: dict) -> "Scaler":
        """Inverse of `to_dict`."""
        dtype = np.dtype(d.get("dtype", "float64"))
        return cls(np.asarray(d["shift"], dtype), np.asarray(d["scale"], dtype))
