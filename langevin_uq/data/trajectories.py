"""The `Trajectories` type and `from_arrays`, the one set of checks every trajectory input
passes (METHOD.md section 1)."""

import equinox as eqx
import numpy as np
from numpy.typing import ArrayLike

from langevin_uq._types import Float, Int
from langevin_uq.errors import DataError


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
