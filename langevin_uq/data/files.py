"""Trajectory files: read (`load_trajectories`) and write (`save_trajectories`) ``.nc`` and
``.npz`` files, the variables named as in INTERFACE.md."""

import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import xarray as xr

from langevin_uq._atomic import atomic_path
from langevin_uq.errors import DataError

from .trajectories import Trajectories, from_arrays

_VARIABLES = ("t", "y", "x", "y0", "group")
_SUFFIXES = (".nc", ".npz")
# netCDF dimension names of each variable; `t` is stored 1-D when all trajectories share it.
_DIMS = {
    "y": ("trajectory", "time", "output"),
    "x": ("trajectory", "time", "input"),
    "y0": ("trajectory", "output"),
    "group": ("trajectory",),
}


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
