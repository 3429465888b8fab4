"""Trajectory data: load, validate, save, group, split and scale (METHOD.md section 1).

Everything here runs on the host with plain NumPy arrays. Every malformed input is refused at this
edge with a `DataError` whose message is one sentence naming the variable, the problem and the file,
so that the model code downstream can assume well-formed data. `from_arrays` holds the one set of
checks; `load_trajectories` only reads the variables and hands them to it.
"""

import math
import numbers
import os
import warnings
import zipfile
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import xarray as xr
from numpy.typing import ArrayLike

from langevin_uq._atomic import atomic_path
from langevin_uq._types import Array, Float, Int, PRNGKeyArray
from langevin_uq.errors import ConfigError, DataError

__all__ = [
    "Scaler",
    "Trajectories",
    "from_arrays",
    "groups",
    "load_trajectories",
    "save_trajectories",
    "split",
]

_VARIABLES = ("t", "y", "x", "y0", "group")
_SUFFIXES = (".nc", ".npz")
# netCDF dimension names of each variable; `t` is stored 1-D when all trajectories share it.
_DIMS = {
    "y": ("trajectory", "time", "output"),
    "x": ("trajectory", "time", "input"),
    "y0": ("trajectory", "output"),
    "group": ("trajectory",),
}


class Trajectories(eqx.Module):
    """A set of N observed trajectories, each on its own T observation times.

    Build one with `from_arrays` or `load_trajectories`, which validate and normalise the input;
    the constructor itself only checks that the shapes agree.

    Attributes
    ----------
    t : (N, T) float array
        Observation times, strictly increasing along each row (expanded when shared).
    y : (N, T, ny) float array
        Observed outputs.
    x : (N, T, nx) float array or None
        Time-dependent inputs; None for an autonomous system.
    y0 : (N, ny) float array
        Known initial state; ``y[:, 0]`` when the file gives none.
    group : (N,) int array
        Condition-group id of each trajectory (trajectories sharing inputs, METHOD.md section 1).
    """

    t: Float[np.ndarray, "N T"]
    y: Float[np.ndarray, "N T ny"]
    x: Float[np.ndarray, "N T nx"] | None
    y0: Float[np.ndarray, "N ny"]
    group: Int[np.ndarray, " N"]

    def __check_init__(self) -> None:
        if np.ndim(self.y) != 3:
            raise DataError(f"`y` must be 3-D (N, T, n_y) but has shape {np.shape(self.y)}.")
        n, n_t, n_y = np.shape(self.y)
        if n == 0:
            raise DataError("`y` holds no trajectories (N = 0).")
        expected = {"t": (n, n_t), "y0": (n, n_y), "group": (n,)}
        for name, shape in expected.items():
            if np.shape(getattr(self, name)) != shape:
                got = np.shape(getattr(self, name))
                raise DataError(f"`{name}` must have shape {shape} to match `y` but has {got}.")
        if self.x is not None and (np.ndim(self.x) != 3 or np.shape(self.x)[:2] != (n, n_t)):
            raise DataError(f"`x` must have shape ({n}, {n_t}, n_x) but has {np.shape(self.x)}.")

    @property
    def n_trajectories(self) -> int:
        """Number of trajectories N."""
        return self.y.shape[0]

    @property
    def n_times(self) -> int:
        """Number of observation times T per trajectory."""
        return self.y.shape[1]

    @property
    def n_outputs(self) -> int:
        """Number of observed outputs ny."""
        return self.y.shape[2]

    @property
    def n_inputs(self) -> int:
        """Number of inputs nx; 0 for an autonomous system."""
        return 0 if self.x is None else self.x.shape[2]

    def subset(self, idx: ArrayLike) -> "Trajectories":
        """Return the trajectories selected by `idx` (integer indices or an (N,) boolean mask).

        Group ids are kept as they are, so a subset's groups are those of the full set.
        """
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        if idx.size == 0:
            raise DataError("The subset selects no trajectories; keep at least one.")
        x = None if self.x is None else self.x[idx]
        return Trajectories(self.t[idx], self.y[idx], x, self.y0[idx], self.group[idx])


def _as_array(name: str, value: ArrayLike, where: str, *, integer: bool = False) -> np.ndarray:
    """Convert to a real-valued array: floats kept, integers to float64 (or int64 for a group)."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        raise DataError(f"`{name}`{where} could not be converted to a numeric array.") from None
    kind = arr.dtype.kind
    if kind not in "iuf":
        raise DataError(
            f"`{name}`{where} has non-numeric dtype {arr.dtype}; expected real numbers."
        )
    if not np.all(np.isfinite(arr)):
        raise DataError(f"`{name}`{where} contains NaN or inf.")
    if integer:
        if kind == "f" and not np.all(arr == np.round(arr)):
            raise DataError(f"`{name}`{where} must hold integer ids but has fractional values.")
        return arr.astype(np.int64)
    return arr if kind == "f" else arr.astype(np.float64)


def _checked(
    name: str,
    value: ArrayLike,
    where: str,
    shapes: tuple[tuple[int | None, ...], ...],
    dims: str,
    *,
    integer: bool = False,
) -> np.ndarray:
    """`_as_array`, then require one of `shapes` (None matches any size; `dims` names them)."""
    arr = _as_array(name, value, where, integer=integer)
    ranks = sorted({len(shape) for shape in shapes})
    if arr.ndim not in ranks:
        rank = " or ".join(f"{r}-D" for r in ranks)
        raise DataError(f"`{name}`{where} must be {rank} with shape {dims} but has {arr.shape}.")
    same_rank = [shape for shape in shapes if len(shape) == arr.ndim]
    if not any(all(e in (None, d) for e, d in zip(sh, arr.shape, strict=True)) for sh in same_rank):
        needs = " or ".join(
            str(shape).replace("None", "n_x").replace(",)", ")") for shape in shapes
        )
        raise DataError(f"`{name}`{where} has shape {arr.shape} but `y` needs {needs}.")
    return arr


def _infer_groups(t: np.ndarray, x: np.ndarray | None, y0: np.ndarray) -> np.ndarray:
    """Ids 0..G-1, in order of first appearance, of the distinct (t, x, y0) combinations."""
    first_seen: dict[bytes, int] = {}
    ids = np.empty(t.shape[0], dtype=np.int64)
    for i in range(t.shape[0]):
        parts = (t[i], y0[i]) if x is None else (t[i], y0[i], x[i])
        # `+ 0.0` maps -0.0 onto 0.0 so that equal numbers have equal bytes.
        key = b"".join(np.ascontiguousarray(p + 0.0).tobytes() for p in parts)
        ids[i] = first_seen.setdefault(key, len(first_seen))
    return ids


def from_arrays(
    t: ArrayLike,
    y: ArrayLike,
    x: ArrayLike | None = None,
    y0: ArrayLike | None = None,
    group: ArrayLike | None = None,
    *,
    source: str | None = None,
) -> Trajectories:
    """Validate trajectory arrays and build a `Trajectories` (the contract of INTERFACE.md).

    Parameters
    ----------
    t : (T,) or (N, T) array
        Observation times, strictly increasing; a (T,) array is shared by all trajectories.
    y : (N, T, ny) array
        Observed outputs; needs N >= 1, T >= 2 and ny >= 1.
    x : (N, T, nx) array, optional
        Time-dependent inputs.
    y0 : (N, ny) array, optional
        Known initial state; defaults to ``y[:, 0]``.
    group : (N,) int array, optional
        Condition-group ids; inferred when absent (identical t, x and y0 form one group).
    source : str, optional
        Name of the file the arrays came from, quoted in error messages.

    Raises
    ------
    DataError
        On non-numeric dtypes, NaN or inf, wrong ranks, mismatched N or T, non-increasing `t`
        or an empty set; the message names the variable.
    """
    where = f" in {source}" if source else ""
    y = _checked("y", y, where, ((None, None, None),), "(N, T, n_y)")
    n, n_t, n_y = y.shape
    if n == 0 or n_t < 2 or n_y == 0:
        raise DataError(
            f"`y`{where} has shape {y.shape} but needs at least 1 trajectory, 2 times and 1 output."
        )
    t = _checked("t", t, where, ((n_t,), (n, n_t)), "(T,) or (N, T)")
    if not np.all(np.diff(t, axis=-1) > 0):
        raise DataError(f"`t`{where} is not strictly increasing.")
    t = np.array(np.broadcast_to(t, (n, n_t)))
    if x is not None:
        x = _checked("x", x, where, ((n, n_t, None),), "(N, T, n_x)")
        if x.shape[2] == 0:
            raise DataError(f"`x`{where} has no inputs (n_x = 0); leave `x` out instead.")
    if y0 is None:
        y0 = y[:, 0].copy()
    else:
        y0 = _checked("y0", y0, where, ((n, n_y),), "(N, n_y)")
    if group is None:
        group = _infer_groups(t, x, y0)
    else:
        group = _checked("group", group, where, ((n,),), "(N,)", integer=True)
    return Trajectories(t=t, y=y, x=x, y0=y0, group=group)


def _reason(err: Exception) -> str:
    """The first line of an exception's message, to quote inside one sentence."""
    lines = str(err).strip().splitlines()
    return (lines[0] if lines else type(err).__name__).rstrip(".")


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not zipfile.is_zipfile(path):
        raise DataError(f"Trajectory file {path} is not an .npz (zip) archive.")
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            for name in _VARIABLES:
                if name in archive.files:
                    arrays[name] = _read_member(archive, name, path)
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"Trajectory file {path} could not be read ({_reason(err)}).") from None
    return arrays


def _read_member(archive, name: str, path: Path) -> np.ndarray:
    try:
        return archive[name]
    except ValueError as err:
        if "allow_pickle" in str(err):  # object arrays need pickle, which is refused
            raise DataError(
                f"`{name}` in {path} has non-numeric dtype object; expected real numbers."
            ) from None
        raise DataError(f"`{name}` in {path} is damaged and cannot be read ({err}).") from None


def _read_nc(path: Path) -> dict[str, np.ndarray]:
    try:
        # A plain HDF5 file (no netCDF dimensions) makes h5netcdf warn before it fails; the
        # DataError below is the one message the user should see.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with xr.open_dataset(
                path, engine="h5netcdf", decode_times=False, decode_timedelta=False
            ) as ds:
                return {name: ds[name].values for name in _VARIABLES if name in ds.variables}
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise DataError(
            f"Trajectory file {path} could not be read as netCDF ({_reason(err)})."
        ) from None


def load_trajectories(path: str | os.PathLike) -> Trajectories:
    """Read and validate a trajectory file (``.nc`` or ``.npz``, names as in INTERFACE.md).

    Parameters
    ----------
    path : str or PathLike
        The file; variables other than t, y, x, y0 and group are ignored.

    Raises
    ------
    DataError
        If the file is missing, unreadable, has an unknown extension, or holds malformed data.
    """
    path = Path(path)
    if path.suffix not in _SUFFIXES:
        raise DataError(f"Trajectory file {path} has extension '{path.suffix}'; use .nc or .npz.")
    if not path.is_file():
        raise DataError(f"Trajectory file {path} does not exist or is not a file.")
    arrays = _read_npz(path) if path.suffix == ".npz" else _read_nc(path)
    for name in ("y", "t"):
        if name not in arrays:
            raise DataError(f"Trajectory file {path} has no variable `{name}`.")
    return from_arrays(**arrays, source=str(path))


def save_trajectories(traj: Trajectories, path: str | os.PathLike) -> None:
    """Write trajectories atomically, in the format `load_trajectories` reads back exactly.

    Parameters
    ----------
    traj : Trajectories
        The data; `t` is stored as (T,) when every trajectory shares it, else as (N, T).
    path : str or PathLike
        A ``.nc`` file (netCDF4, dims trajectory, time, output, input) or a ``.npz`` file.
    """
    path = Path(path)
    if path.suffix not in _SUFFIXES:
        raise DataError(f"Trajectory file {path} has extension '{path.suffix}'; use .nc or .npz.")
    shared = bool(np.all(traj.t == traj.t[:1]))
    arrays = {"t": traj.t[0] if shared else traj.t, "y": traj.y, "y0": traj.y0, "group": traj.group}
    if traj.x is not None:
        arrays["x"] = traj.x
    with atomic_path(path) as tmp:
        if path.suffix == ".npz":
            np.savez(tmp, **arrays)
            return
        dims = dict(_DIMS, t=("time",) if shared else ("trajectory", "time"))
        ds = xr.Dataset({name: (dims[name], value) for name, value in arrays.items()})
        ds.to_netcdf(tmp, engine="h5netcdf", encoding={name: {"_FillValue": None} for name in ds})


def groups(traj: Trajectories) -> list[Int[np.ndarray, " n_g"]]:
    """Index arrays of the trajectories in each condition group.

    Returns
    -------
    list of (n_g,) int arrays
        One per distinct id of ``traj.group``, in increasing id order (for inferred ids, the
        order of first appearance).
    """
    return [np.flatnonzero(traj.group == g) for g in np.unique(traj.group)]


def split(
    traj: Trajectories, validation_fraction: float, key: PRNGKeyArray
) -> tuple[Trajectories, Trajectories | None]:
    """Split whole trajectories at random into a training and a validation set.

    Parameters
    ----------
    traj : Trajectories
        The full set, N trajectories.
    validation_fraction : float
        Fraction held out, in [0, 1); rounded to at least one validation and one training
        trajectory when positive. 0, or a single trajectory, gives no validation set.
    key : PRNGKeyArray
        Key of the permutation (`jax.random.permutation`); the split is a function of it alone.

    Returns
    -------
    (train, validation)
        Each keeps the original trajectory order; `validation` is None when empty.
    """
    f = validation_fraction
    if isinstance(f, bool) or not isinstance(f, numbers.Real) or not 0.0 <= f < 1.0:
        raise ConfigError(f"validation_fraction must be a number in [0, 1) but is {f!r}.")
    n = traj.n_trajectories
    if f == 0.0 or n < 2:
        return traj, None
    n_val = min(max(math.floor(f * n + 0.5), 1), n - 1)
    perm = np.asarray(jr.permutation(key, n))
    return traj.subset(np.sort(perm[n_val:])), traj.subset(np.sort(perm[:n_val]))


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
