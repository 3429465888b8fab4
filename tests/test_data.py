"""Trajectory data: file round trips, refusal of malformed input, groups, split and scaling."""

import json

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import xarray as xr

from langevin_uq.data import (
    Scaler,
    Trajectories,
    from_arrays,
    groups,
    load_trajectories,
    save_trajectories,
    split,
)
from langevin_uq.errors import ConfigError, DataError

N, T, NY, NX = 6, 5, 2, 3


def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "t": np.linspace(0.0, 1.0, T),
        "y": rng.normal(size=(N, T, NY)).astype(np.float32),
        "x": rng.normal(size=(N, T, NX)),
        "y0": rng.normal(size=(N, NY)),
        "group": np.array([0, 0, 1, 1, 2, 2]),
    }


def _assert_same(a: Trajectories, b: Trajectories) -> None:
    for name in ("t", "y", "x", "y0", "group"):
        va, vb = getattr(a, name), getattr(b, name)
        if va is None:
            assert vb is None
            continue
        assert va.dtype == vb.dtype, name
        np.testing.assert_array_equal(va, vb, err_msg=name)


def _refused(match: str, **kwargs) -> str:
    with pytest.raises(DataError, match=match) as info:
        from_arrays(**kwargs)
    message = str(info.value)
    assert "\n" not in message and message.endswith(".")
    return message


@pytest.mark.parametrize("suffix", [".npz", ".nc"])
@pytest.mark.parametrize("shared_t", [True, False])
@pytest.mark.parametrize("with_x", [True, False])
def test_round_trip_is_exact(tmp_path, suffix, shared_t, with_x):
    arrays = _arrays()
    if not shared_t:
        arrays["t"] = np.cumsum(np.random.default_rng(1).uniform(0.1, 1.0, (N, T)), axis=1)
    if not with_x:
        del arrays["x"]
    traj = from_arrays(**arrays)
    path = tmp_path / f"data{suffix}"
    save_trajectories(traj, path)
    back = load_trajectories(path)
    _assert_same(traj, back)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind
    if suffix == ".nc":
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            assert ds["t"].dims == (("time",) if shared_t else ("trajectory", "time"))
            assert ds["y"].dims == ("trajectory", "time", "output")


def test_defaults_and_properties():
    arrays = _arrays()
    traj = from_arrays(arrays["t"], arrays["y"])
    assert traj.t.shape == (N, T)
    np.testing.assert_array_equal(traj.y0, arrays["y"][:, 0])
    assert (traj.n_trajectories, traj.n_times, traj.n_outputs, traj.n_inputs) == (N, T, NY, 0)
    traj = from_arrays(**arrays)
    assert traj.n_inputs == NX
    sub = traj.subset([4, 1])
    np.testing.assert_array_equal(sub.group, [2, 0])
    np.testing.assert_array_equal(sub.x, arrays["x"][[4, 1]])
    assert traj.subset(traj.group == 1).n_trajectories == 2
    with pytest.raises(DataError, match="no trajectories"):
        traj.subset([])
    integer = from_arrays(np.arange(T), np.ones((N, T, NY), dtype=np.int32))
    assert integer.y.dtype == np.float64 and integer.t.dtype == np.float64


def _bad(name, value):
    def change(arrays):
        arrays[name] = value
        return arrays

    return change


def _drop(name):
    def change(arrays):
        del arrays[name]
        return arrays

    return change


def _with_nan(name, fill=np.nan):
    def change(arrays):
        value = arrays[name].astype(np.float64)
        value.flat[3] = fill
        arrays[name] = value
        return arrays

    return change


MALFORMED = {
    "missing y": (_drop("y"), "`y`"),
    "missing t": (_drop("t"), "`t`"),
    "nan in y": (_with_nan("y"), "`y`.*NaN"),
    "inf in t": (_with_nan("t", np.inf), "`t`.*NaN or inf"),
    "nan in x": (_with_nan("x"), "`x`.*NaN"),
    "inf in y0": (_with_nan("y0", -np.inf), "`y0`.*NaN or inf"),
    "nan in group": (_with_nan("group"), "`group`.*NaN"),
    "y rank": (_bad("y", np.zeros((N, T))), "`y`.*3-D"),
    "t rank": (_bad("t", np.zeros((N, T, 1))), "`t`.*1-D or 2-D"),
    "x rank": (_bad("x", np.zeros((N, T))), "`x`.*3-D"),
    "y0 rank": (_bad("y0", np.zeros(N)), "`y0`.*2-D"),
    "group rank": (_bad("group", np.zeros((N, 1), dtype=int)), "`group`.*1-D"),
    "t not increasing": (_bad("t", np.array([0.0, 1.0, 1.0, 2.0, 3.0])), "`t`.*increasing"),
    "t decreasing row": (_bad("t", -np.tile(np.arange(T), (N, 1))), "`t`.*increasing"),
    "t length": (_bad("t", np.arange(T + 1.0)), "`t`.*shape"),
    "t rows": (_bad("t", np.tile(np.arange(T), (N + 1, 1))), "`t`.*shape"),
    "x trajectories": (_bad("x", np.zeros((N - 1, T, NX))), "`x`.*shape"),
    "x times": (_bad("x", np.zeros((N, T - 1, NX))), "`x`.*shape"),
    "x no inputs": (_bad("x", np.zeros((N, T, 0))), "`x`.*no inputs"),
    "y0 trajectories": (_bad("y0", np.zeros((N + 1, NY))), "`y0`.*shape"),
    "y0 outputs": (_bad("y0", np.zeros((N, NY + 1))), "`y0`.*shape"),
    "group length": (_bad("group", np.zeros(N - 1, dtype=int)), "`group`.*shape"),
    "group fractional": (_bad("group", np.full(N, 0.5)), "`group`.*integer"),
    "no trajectories": (_bad("y", np.zeros((0, T, NY))), "`y`.*at least 1 trajectory"),
    "one time": (_bad("y", np.zeros((N, 1, NY))), "`y`.*2 times"),
    "no outputs": (_bad("y", np.zeros((N, T, 0))), "`y`.*1 output"),
    "string y": (_bad("y", np.full((N, T, NY), "a")), "`y`.*non-numeric"),
    "complex x": (_bad("x", np.ones((N, T, NX), dtype=complex)), "`x`.*non-numeric"),
    "bool group": (_bad("group", np.ones(N, dtype=bool)), "`group`.*non-numeric"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_file_is_refused(tmp_path, case):
    change, match = MALFORMED[case]
    path = tmp_path / "bad.npz"
    np.savez(path, **change(_arrays()))
    with pytest.raises(DataError, match=match) as info:
        load_trajectories(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message and message.endswith(".")


@pytest.mark.parametrize("case", ["nan in y", "y rank", "t not increasing", "missing y"])
def test_malformed_netcdf_is_refused(tmp_path, case):
    change, match = MALFORMED[case]
    arrays = change(_arrays())
    dims = {"t": ("time",), "y": ("trajectory", "time", "output")}
    dims |= {"x": ("trajectory", "time", "input"), "y0": ("trajectory", "output")}
    dims |= {"group": ("trajectory",)}
    data = {k: (dims[k][: np.ndim(v)], v) for k, v in arrays.items()}
    path = tmp_path / "bad.nc"
    xr.Dataset(data).to_netcdf(path, engine="h5netcdf")
    with pytest.raises(DataError, match=match):
        load_trajectories(path)


@pytest.mark.parametrize("case", [c for c in MALFORMED if not c.startswith("missing")])
def test_malformed_arrays_are_refused(case):
    change, match = MALFORMED[case]
    assert "`" in _refused(match, **change(_arrays()))


def test_unusable_files_are_refused(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_trajectories(tmp_path / "absent.nc")
    (tmp_path / "junk.nc").write_bytes(b"not a data file at all")
    with pytest.raises(DataError, match="could not be read as netCDF"):
        load_trajectories(tmp_path / "junk.nc")
    (tmp_path / "data.csv").write_text("t,y\n")
    with pytest.raises(DataError, match="extension"):
        load_trajectories(tmp_path / "data.csv")
    np.save(tmp_path / "single.npy", np.zeros(3))
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    with pytest.raises(DataError, match=r"not an \.npz"):
        load_trajectories(tmp_path / "single.npz")
    np.savez(tmp_path / "objects.npz", y=np.array([None, 1], dtype=object), t=np.arange(2.0))
    with pytest.raises(DataError, match=r"`y`.*non-numeric"):
        load_trajectories(tmp_path / "objects.npz")
    np.savez(tmp_path / "broken.npz", **_arrays())
    raw = bytearray((tmp_path / "broken.npz").read_bytes())
    raw[300:340] = bytes(40)  # inside the data of `t`: the CRC check fails
    (tmp_path / "broken.npz").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="could not be read"):
        load_trajectories(tmp_path / "broken.npz")
    with pytest.raises(DataError, match="`y` could not be converted"):
        from_arrays(np.arange(2.0), [[[1.0], [2.0]], [[1.0]]])
    traj = from_arrays(**_arrays())
    with pytest.raises(DataError, match="extension"):
        save_trajectories(traj, tmp_path / "out.txt")


def test_groups_are_inferred_from_times_inputs_and_initial_state():
    arrays = _arrays()
    x = np.repeat(arrays["x"][:2], 3, axis=0)  # trajectories 0-2 share one x, 3-5 another
    y0 = np.zeros((N, NY))
    y0[5] = -0.0  # equal to 0.0, so still the same condition
    traj = from_arrays(arrays["t"], arrays["y"], x=x, y0=y0)
    np.testing.assert_array_equal(traj.group, [0, 0, 0, 1, 1, 1])
    y0[4] = 1.0
    traj = from_arrays(arrays["t"], arrays["y"], x=x, y0=y0)
    np.testing.assert_array_equal(traj.group, [0, 0, 0, 1, 2, 1])
    assert [g.tolist() for g in groups(traj)] == [[0, 1, 2], [3, 5], [4]]
    # Without y0, the differing y[:, 0] separates every trajectory.
    assert len(groups(from_arrays(arrays["t"], arrays["y"]))) == N


def test_split_is_reproducible_and_complete():
    traj = from_arrays(np.arange(T), np.arange(20 * T * 1.0).reshape(20, T, 1))
    train, val = split(traj, 0.25, jr.key(3))
    again_train, again_val = split(traj, 0.25, jr.key(3))
    _assert_same(train, again_train)
    _assert_same(val, again_val)
    assert (train.n_trajectories, val.n_trajectories) == (15, 5)
    ids = np.concatenate([train.y[:, 0, 0], val.y[:, 0, 0]]) / T
    assert sorted(ids.tolist()) == list(range(20))
    assert np.all(np.diff(train.y[:, 0, 0]) > 0)  # original order kept
    other_train, _ = split(traj, 0.25, jr.key(4))
    assert not np.array_equal(other_train.y, train.y)
    assert split(traj, 0.0, jr.key(3)) == (traj, None)
    assert split(traj, 0.99, jr.key(3))[0].n_trajectories == 1
    assert split(traj, 0.01, jr.key(3))[1].n_trajectories == 1
    assert split(traj.subset([0]), 0.5, jr.key(3))[1] is None
    for bad in (1.0, -0.1, float("nan"), True, "0.1"):
        with pytest.raises(ConfigError, match="validation_fraction"):
            split(traj, bad, jr.key(3))


def test_scaler_round_trip():
    arrays = _arrays()
    arrays["y"][:, :, 1] = 3.0  # constant output: std 0 becomes scale 1
    traj = from_arrays(**arrays)
    scaler = Scaler.fit(traj, "standardize")
    assert scaler.shift.dtype == np.float32 and scaler.scale[1] == 1.0
    scaled = scaler.transform(traj)
    np.testing.assert_allclose(scaled.y[..., 0].mean(), 0.0, atol=1e-6)
    np.testing.assert_allclose(scaled.y[..., 0].std(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(scaled.y0, (traj.y0 - scaler.shift) / scaler.scale, rtol=1e-6)
    assert scaled.t is traj.t and scaled.x is traj.x and scaled.group is traj.group
    np.testing.assert_allclose(scaler.inverse_y(scaled.y), traj.y, rtol=1e-6, atol=1e-6)
    batch = jnp.ones((4, 3, NY))
    out = scaler.inverse_y(scaler.transform_y(batch))
    assert isinstance(out, type(batch)) and out.shape == batch.shape
    np.testing.assert_allclose(out, batch, rtol=1e-6)
    restored = Scaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    _assert_equal_scalers(restored, scaler)
    identity = Scaler.fit(traj, "none")
    np.testing.assert_array_equal(identity.transform_y(traj.y), traj.y)
    with pytest.raises(ConfigError, match="scaling"):
        Scaler.fit(traj, "minmax")
    with pytest.raises(DataError, match="scale"):
        Scaler(np.zeros(2), np.array([1.0, 0.0]))


def _assert_equal_scalers(a: Scaler, b: Scaler) -> None:
    for name in ("shift", "scale"):
        assert getattr(a, name).dtype == getattr(b, name).dtype
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
