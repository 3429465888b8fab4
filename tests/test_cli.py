"""The ``langevin-uq`` command line (INTERFACE.md "Commands", "Run directory", "Predictions").

Commands run in process through `langevin_uq.cli.main` (the console entry point) with
``sys.argv`` set, so that exit statuses and stderr are those a user sees; one test runs the
installed script in a subprocess to check the same for a real process.
"""

import csv
import os
import shutil
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import h5py
import jax.random as jr
import numpy as np
import pytest
import xarray as xr

from langevin_uq.config import Config
from langevin_uq.data import load_trajectories, save_trajectories
from langevin_uq.errors import ConfigError
from langevin_uq.rundir import HISTORY_COLUMNS
from langevin_uq.systems.ou import OUSystem, simulate_ou

N, T = 4, 6


def assert_refused(result, *mentions: str) -> str:
    """Exit status 2 and exactly one plain line on stderr that names ``mentions``."""
    code, out, err = result
    lines = err.strip("\n").splitlines()
    assert code == 2, (code, out, err)
    assert len(lines) == 1, err
    line = lines[0]
    assert "Traceback" not in err
    assert line.startswith("langevin-uq: error: ") and line.endswith("."), line
    for mention in mentions:
        assert mention in line, (mention, line)
    return line


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------- malformed data


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.normal(size=(N, T, 1))
    return {
        "t": np.linspace(0.0, 1.0, T),
        "y": y,
        "x": rng.normal(size=(N, T, 2)),
        "y0": y[:, 0].copy(),
        "group": np.arange(N),
    }


def _with(**changes):
    arrays = _arrays()
    for name, value in changes.items():
        if value is None:
            del arrays[name]
        else:
            arrays[name] = value(arrays[name]) if callable(value) else value
    return arrays


def _set(index, value):
    def change(a):
        a = np.array(a, dtype=float)
        a[index] = value
        return a

    return change


BAD_ARRAYS = {
    "missing y": (_with(y=None), "`y`"),
    "missing t": (_with(t=None), "`t`"),
    "NaN in y": (_with(y=_set((1, 2, 0), np.nan)), "`y`"),
    "inf in t": (_with(t=_set(3, np.inf)), "`t`"),
    "NaN in x": (_with(x=_set((0, 0, 1), np.nan)), "`x`"),
    "-inf in y0": (_with(y0=_set((2, 0), -np.inf)), "`y0`"),
    "y is 2-D": (_with(y=lambda y: y[..., 0], y0=None), "`y`"),
    "y is 4-D": (_with(y=lambda y: y[..., None], y0=None), "`y`"),
    "t decreases": (_with(t=lambda t: t[::-1].copy()), "`t`"),
    "t repeats a time": (_with(t=_set(2, 0.2)), "`t`"),
    "t of one trajectory decreases": (
        _with(t=lambda t: np.stack([t, t, t[::-1], t])),
        "`t`",
    ),
    "N of x differs": (_with(x=lambda x: x[:-1]), "`x`"),
    "N of y0 differs": (_with(y0=lambda y0: y0[:-1]), "`y0`"),
    "N of group differs": (_with(group=lambda g: g[:-1]), "`group`"),
    "N of 2-D t differs": (_with(t=lambda t: np.tile(t, (N + 1, 1))), "`t`"),
    "T of t differs": (_with(t=np.linspace(0.0, 1.0, T + 1)), "`t`"),
    "T of x differs": (_with(x=lambda x: x[:, :-1]), "`x`"),
    "n_y of y0 differs": (_with(y0=np.zeros((N, 2))), "`y0`"),
    "empty set": (_with(y=np.zeros((0, T, 1)), x=None, y0=None, group=None), "`y`"),
    "y of strings": (_with(y=np.full((N, T, 1), "a")), "`y`"),
}


@pytest.mark.parametrize("case", list(BAD_ARRAYS))
def test_fit_refuses_malformed_npz(tmp_path, config_file, cli, case):
    arrays, name = BAD_ARRAYS[case]
    data = tmp_path / "bad.npz"
    np.savez(data, **arrays)
    run = tmp_path / "run"
    assert_refused(cli("fit", data, "--config", config_file, "--out", run), name)
    assert not run.exists()


def _nc(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    # y0 on its own dimension, so that a file can disagree on N (netCDF itself would refuse).
    dims = {"t": ("time",), "y": ("trajectory", "time", "output"), "y0": ("initial", "output")}
    xr.Dataset({k: (dims[k], v) for k, v in arrays.items() if k in dims}).to_netcdf(
        path, engine="h5netcdf"
    )
    return path


BAD_NC = {
    "missing y": ({"t": np.linspace(0, 1, T)}, "`y`"),
    "NaN in y": (_with(y=_set((0, 1, 0), np.nan)), "`y`"),
    "t not increasing": (_with(t=_set(1, 0.0)), "`t`"),
    "N of y0 differs": (_with(y0=np.zeros((N + 1, 1))), "`y0`"),
}


@pytest.mark.parametrize("case", list(BAD_NC))
def test_fit_refuses_malformed_netcdf(tmp_path, config_file, cli, case):
    arrays, name = BAD_NC[case]
    data = _nc(tmp_path / "bad.nc", arrays)
    run = tmp_path / "run"
    assert_refused(cli("fit", data, "--config", config_file, "--out", run), name)
    assert not run.exists()


def _random_bytes(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(1).bytes(512))
    return path


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _truncated_npz(path: Path) -> Path:
    np.savez(path, **_arrays())
    path.write_bytes(path.read_bytes()[:300])
    return path


BAD_FILES = {
    "nonexistent .nc": lambda d: d / "absent.nc",
    "nonexistent .npz": lambda d: d / "absent.npz",
    "unknown extension": lambda d: _random_bytes(d / "data.csv"),
    "no extension": lambda d: _random_bytes(d / "data"),
    "random bytes .npz": lambda d: _random_bytes(d / "data.npz"),
    "random bytes .nc": lambda d: _random_bytes(d / "data.nc"),
    "empty .nc": lambda d: _empty(d / "data.nc"),
    "truncated .npz": lambda d: _truncated_npz(d / "data.npz"),
    "a directory": lambda d: (d / "data.nc").mkdir() or d / "data.nc",
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_fit_refuses_unreadable_files(tmp_path, config_file, cli, case):
    data = BAD_FILES[case](tmp_path)
    run = tmp_path / "run"
    assert_refused(cli("fit", data, "--config", config_file, "--out", run), data.name)
    assert not run.exists()


def test_fit_refuses_plain_hdf5_without_warnings(tmp_path, config_file, cli):
    data = tmp_path / "plain.nc"
    with h5py.File(data, "w") as f:  # HDF5 without netCDF dimension scales, and no `t`
        f["y"] = np.zeros((N, T, 1))
    run = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = cli("fit", data, "--config", config_file, "--out", run)
    assert_refused(result, "`t`")
    assert not run.exists()
    # A user's terminal would show any warning on stderr, beside the one-line error.
    assert [str(w.message) for w in caught] == []


def test_installed_command_refuses_with_one_line(tmp_path, config_file):
    """The real console script, in its own process: status 2, one line, no traceback."""
    script = Path(sys.executable).with_name("langevin-uq")
    if not script.exists():
        pytest.skip("the langevin-uq script is not installed beside this python")
    data = tmp_path / "bad.npz"
    np.savez(data, **_with(y=_set((0, 0, 0), np.nan)))
    run = tmp_path / "run"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [script, "fit", data, "--config", config_file, "--out", run, "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert_refused((proc.returncode, proc.stdout, proc.stderr), "`y`", "NaN")
    assert not run.exists()


# --------------------------------------------------------------------------- bad config

BAD_CONFIGS = {
    "unknown section": ("[bogus]\nx = 1\n", "bogus"),
    "unknown key": ("[train]\nepochz = 3\n", "epochz"),
    "wrong type (str for int)": ('[sampler]\nreplicas = "many"\n', "sampler.replicas"),
    "wrong type (float for int)": ("[train]\nepochs = 1.5\n", "train.epochs"),
    "wrong type (bool for int)": ("[train]\nepochs = true\n", "train.epochs"),
    "wrong type (int for list)": ("[model]\nR_hidden = 16\n", "model.R_hidden"),
    "wrong type (str for float)": ('[train]\nlr = "fast"\n', "train.lr"),
    "section is not a table": ("train = 3\n", "train"),
    "invalid choice": ('[likelihood]\nkind = "foo"\n', "likelihood.kind"),
    "invalid scaling": ('[data]\nscaling = "minmax"\n', "data.scaling"),
    "zero learning rate": ("[train]\nlr = 0.0\n", "train.lr"),
    "negative dtau": ("[sampler]\ndtau = -0.1\n", "sampler.dtau"),
    "negative epochs": ("[train]\nepochs = -1\n", "train.epochs"),
    "one replica": ("[sampler]\nreplicas = 1\n", "sampler.replicas"),
    "validation fraction 1": ("[data]\nvalidation_fraction = 1.0\n", "data.validation_fraction"),
    "NaN prior scale": ("[prior]\nscale = nan\n", "prior.scale"),
    "NaN beta": ("[train]\nbeta = nan\n", "train.beta"),
    "infinite learning rate": ("[train]\nlr = inf\n", "train.lr"),
    "unknown method": ('[method]\nkind = "mcmc"\n', "method.kind"),
    "NUTS with the energy score": (
        '[method]\nkind = "nuts"\n[likelihood]\nkind = "energy-score"\n',
        "energy score",
    ),
    "zero chains": ("[method]\nchains = 0\n", "method.chains"),
    "target_accept 1": ("[method]\ntarget_accept = 1.0\n", "method.target_accept"),
    "invalid TOML": ("[train\nepochs = \n", "TOML"),
    "duplicate key": ("[train]\nepochs = 3\nepochs = 4\n", "TOML"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_fit_refuses_bad_config(tmp_path, data_file, cli, case):
    text, mention = BAD_CONFIGS[case]
    config = tmp_path / "bad.toml"
    config.write_text(text)
    run = tmp_path / "run"
    assert_refused(cli("fit", data_file, "--config", config, "--out", run), mention)
    assert not run.exists()


def test_fit_refuses_missing_config(tmp_path, data_file, cli):
    config = tmp_path / "absent.toml"
    run = tmp_path / "run"
    assert_refused(cli("fit", data_file, "--config", config, "--out", run), "absent.toml")
    assert not run.exists()


NON_FINITE = [
    ("train", "beta", "nan"),
    ("train", "lr", "inf"),
    ("train", "mle_lr", "inf"),
    ("sampler", "gamma0", "nan"),
    ("sampler", "init_noise", "nan"),
    ("sampler", "dtau", "inf"),
    ("prior", "scale", "inf"),
    ("likelihood", "sigma", "inf"),
]


@pytest.mark.parametrize(("section", "key", "value"), NON_FINITE)
def test_config_refuses_non_finite_values(tmp_path, section, key, value):
    config = tmp_path / "bad.toml"
    config.write_text(f"[{section}]\n{key} = {value}\n")
    with pytest.raises(ConfigError, match=rf"{section}\.{key}"):
        Config.load(config)


# --------------------------------------------------------------------------- simulate


@pytest.mark.parametrize("suffix", [".nc", ".npz"])
def test_simulate_writes_a_loadable_file(tmp_path, cli, suffix):
    out = tmp_path / f"ou{suffix}"
    code, stdout, err = cli("simulate", "ou", "--out", out, "--n", 16, "--n-times", 6)
    assert code == 0, err
    traj = load_trajectories(out)
    assert traj.y.shape == (16, 6, 1)
    assert traj.t.shape == (16, 6)
    assert np.all(np.isfinite(traj.y))
    assert str(out) in stdout


def test_simulate_same_seed_same_data(tmp_path, cli):
    paths = [tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "c.npz"]
    for path, seed in zip(paths, (3, 3, 4), strict=True):
        args = ("simulate", "ou", "--out", path, "--n", 8, "--n-times", 4, "--seed", seed)
        assert cli(*args)[0] == 0
    a, b, c = (load_trajectories(p).y for p in paths)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_simulate_schlogl(tmp_path, cli):
    out = tmp_path / "s.nc"
    args = ("--n", 6, "--n-times", 5, "--t-end", 1.0, "--x0", 40, "--a", 1e4, "--b", 2e4)
    code, _, err = cli("simulate", "schlogl", "--out", out, *args, "--k1", 3e-6)
    assert code == 0, err
    data = load_trajectories(out)
    assert data.y.shape == (6, 5, 1)
    np.testing.assert_array_equal(data.y[:, 0, 0], 40)
    np.testing.assert_array_equal(data.y, np.round(data.y))


@pytest.mark.parametrize(
    ("args", "mention"),
    [
        (("hyperelastic",), "hyperelastic"),
        (("schlogl", "--theta-mean", 2), "--theta-mean"),
        (("ou", "--k1", 1e-7), "--k1"),
        (("schlogl", "--x0", 2.5), "x0"),
        (("schlogl", "--k2", -1), "k2"),
        (("lorenz",), "lorenz"),
        (("ou", "--n", 0), "n"),
        (("ou", "--noise-sd", -1), "noise"),
        (("ou", "--n-times", 1), "n_times"),
    ],
)
def test_simulate_refuses(tmp_path, cli, args, mention):
    out = tmp_path / "x.nc"
    assert_refused(cli("simulate", *args, "--out", out), mention)
    assert not out.exists()


# --------------------------------------------------------------------------- happy path


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, data_file, config_file, cli):
    """A run directory written by ``langevin-uq fit`` on the tiny config."""
    run = tmp_path_factory.mktemp("cli") / "run"
    code, out, err = cli("fit", data_file, "--config", config_file, "--out", run, "--no-progress")
    assert code == 0, err
    assert "20 epochs" in out
    return run


def test_fit_writes_the_run_directory(fitted, config_file):
    for name in ("config.toml", "history.csv", "checkpoint.eqx", "samples.npz"):
        assert (fitted / name).is_file(), name
    assert not [p.name for p in fitted.iterdir() if p.name.startswith(".")]  # no temp files


def test_run_config_has_every_default_filled(fitted, config_file):
    saved = tomllib.loads((fitted / "config.toml").read_text())
    defaults = Config().to_dict()
    assert set(saved) == set(defaults)
    for section, table in defaults.items():
        assert set(saved[section]) == set(table), section
    resolved = Config.load(fitted / "config.toml")
    assert resolved == Config.load(config_file)
    assert resolved.train.epochs == 20 and resolved.model.R_hidden == []


def test_history_has_one_row_per_epoch(fitted):
    with open(fitted / "history.csv", newline="") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    assert ",".join(header) == "epoch,loss,nll,kl,seconds,heldout_energy_score,gamma,grad_norm"
    assert tuple(header) == HISTORY_COLUMNS
    assert [int(r[0]) for r in rows] == list(range(1, 21))
    values = np.array([[float(v) for v in r] for r in rows])
    assert np.all(np.isfinite(values))  # validation_fraction 0.1 > 0: held-out metric defined
    assert np.all(values[:, 4] >= 0)  # seconds


def test_run_samples_file(fitted):
    with np.load(fitted / "samples.npz", allow_pickle=False) as f:
        w, names, stochastic = f["w"], f["names"], f["stochastic"]
    # R_hidden = [] on one output: dx/dt = W x + b, two weights, both sampled ("full").
    assert w.shape == (20, 2)
    assert np.all(np.isfinite(w))
    assert names.dtype.kind == "U"
    assert names.tolist() == ["R.layers.0.weight[0,0]", "R.layers.0.bias[0]"]
    assert stochastic.dtype == bool and stochastic.tolist() == [True, True]
    assert np.all(w.std(axis=0) > 0)


def test_sample_command(fitted, tmp_path, cli):
    out = tmp_path / "s.npz"
    code, printed, err = cli("sample", fitted, "--n", 7, "--out", out)
    assert code == 0, err
    assert "no data-model evaluations" in printed and "draws/s" in printed
    with np.load(out, allow_pickle=False) as f:
        w, names, stochastic = f["w"], f["names"], f["stochastic"]
    with np.load(fitted / "samples.npz", allow_pickle=False) as f:
        np.testing.assert_array_equal(names, f["names"])
        np.testing.assert_array_equal(stochastic, f["stochastic"])
    assert w.shape == (7, 2)
    assert np.all(np.isfinite(w))
    other = tmp_path / "other.npz"
    assert cli("sample", fitted, "--n", 7, "--out", other, "--seed", 1)[0] == 0
    with np.load(other) as f:
        assert not np.any(f["w"] == w)


@pytest.mark.parametrize(
    ("args", "mention"), [(("--n", 0), "0"), (("--n", -3), "-3"), (("--out", "s.nc"), "s.nc")]
)
def test_sample_refuses(fitted, tmp_path, cli, args, mention):
    opts = {"--n": "5", "--out": str(tmp_path / "s.npz")}
    opts.update(dict(zip(args[::2], map(str, args[1::2]), strict=True)))
    before = snapshot(fitted)
    assert_refused(cli("sample", fitted, *[x for kv in opts.items() for x in kv]), mention)
    assert not (tmp_path / "s.npz").exists()
    assert snapshot(fitted) == before


def _check_prediction(path: Path, m: int, data) -> xr.Dataset:
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        ds = ds.load()
    n, t = data.y.shape[:2]
    ys = ds["y_samples"].values
    assert ys.shape == (m, n, t, 1)
    assert np.all(np.isfinite(ys))
    assert ds["mean"].shape == ds["std"].shape == (n, t, 1)
    np.testing.assert_allclose(ds["mean"].values, ys.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ds["std"].values, ys.std(axis=0, ddof=1), rtol=1e-4, atol=1e-6)
    q = ds["quantiles"]
    assert q.dims[0] == "q" and q.shape == (5, n, t, 1)
    np.testing.assert_allclose(ds["q"].values, [0.05, 0.25, 0.5, 0.75, 0.95])
    assert np.all(np.diff(q.values, axis=0) >= 0)
    np.testing.assert_allclose(q.values, np.quantile(ys, ds["q"].values, axis=0), rtol=1e-5)
    assert np.all(q.values[0] >= ys.min(axis=0)) and np.all(q.values[-1] <= ys.max(axis=0))
    np.testing.assert_allclose(ds["t"].values, data.t[0])
    return ds


def test_predict_command(fitted, data_file, tmp_path, cli):
    out = tmp_path / "p.nc"
    code, _, err = cli("predict", fitted, "--data", data_file, "--out", out)
    assert code == 0, err
    data = load_trajectories(data_file)
    ds = _check_prediction(out, 20, data)
    # The ensemble starts at the known initial state, in the data's units (scaling "none").
    start = np.broadcast_to(data.y0, (20, 32, 1))
    np.testing.assert_allclose(ds["y_samples"].values[:, :, 0], start)


def test_predict_fresh_samples_for_new_inputs(fitted, tmp_path, cli):
    new = simulate_ou(OUSystem(n=3, n_times=5, t_end=2.0, x0=0.5), jr.key(7))
    data = tmp_path / "new.npz"
    save_trajectories(new, data)
    out = tmp_path / "p.nc"
    code, _, err = cli("predict", fitted, "--data", data, "--out", out, "--n", 9)
    assert code == 0, err
    ds = _check_prediction(out, 9, new)
    np.testing.assert_allclose(ds["y_samples"].values[:, :, 0, 0], 0.5, rtol=1e-6)


def test_predict_refuses(fitted, data_file, tmp_path, cli):
    out = tmp_path / "p.nc"
    assert_refused(cli("predict", fitted, "--data", data_file, "--out", tmp_path / "p.npz"))
    two = tmp_path / "two.npz"
    np.savez(two, t=np.linspace(0, 1, 5), y=np.zeros((3, 5, 2)))
    assert_refused(cli("predict", fitted, "--data", two, "--out", out), "2")
    bad = tmp_path / "bad.npz"
    np.savez(bad, t=np.linspace(0, 1, 5), y=np.full((3, 5, 1), np.nan))
    assert_refused(cli("predict", fitted, "--data", bad, "--out", out), "`y`")
    assert not out.exists()


def test_report_command(fitted, data_file, cli):
    code, stdout, err = cli("report", fitted, "--data", data_file)
    assert code == 0, err
    report = fitted / "report"
    summary = (report / "summary.md").read_text()
    assert "held-out metric" in summary and "energy score" in summary
    assert "R.layers.0.weight[0,0]" in summary
    assert summary.strip() in stdout
    for name in ("history.png", "bands.png", "w1_over_time.png"):
        assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_report_without_held_out_data(fitted, tmp_path, cli):
    run = tmp_path / "run"
    shutil.copytree(fitted, run, ignore=shutil.ignore_patterns("report"))
    code, _, err = cli("report", run)
    assert code == 0, err
    assert (run / "report" / "summary.md").is_file()
    assert (run / "report" / "history.png").is_file()
    assert not (run / "report" / "bands.png").exists()


@pytest.mark.parametrize("kind", ["bbvi-full", "bbvi-meanfield", "nuts"])
def test_every_command_works_for_every_method(tmp_path, data_file, config_file, cli, kind):
    config = tmp_path / "method.toml"
    config.write_text(config_file.read_text() + f'\n[method]\nkind = "{kind}"\nparticles = 8\n'
                      "warmup = 20\nsamples = 10\nchains = 2\n")  # fmt: skip
    run = tmp_path / "run"
    code, out, err = cli("fit", data_file, "--config", config, "--out", run, "--no-progress")
    assert code == 0, err
    assert ("NUTS: 2 chains x 10 draws" if kind == "nuts" else f"20 epochs ({kind})") in out
    assert (run / ("nuts.npz" if kind == "nuts" else "checkpoint.eqx")).is_file()
    samples = tmp_path / "s.npz"
    code, _, err = cli("sample", run, "--n", 7, "--out", samples)
    assert code == 0, err
    with np.load(samples) as f:
        assert f["w"].shape[0] == 7 and np.all(np.isfinite(f["w"]))
    code, _, err = cli("predict", run, "--data", data_file, "--out", tmp_path / "p.nc", "--n", 5)
    assert code == 0, err
    _check_prediction(tmp_path / "p.nc", 5, load_trajectories(data_file))
    code, stdout, err = cli("report", run, "--data", data_file)
    assert code == 0, err
    assert f"method: {kind}" in stdout and "held-out metric" in stdout
    if kind == "nuts":
        assert "R-hat max" in stdout
        assert_refused(cli("fit", data_file, "--config", config, "--out", run, "--resume"),
                       "NUTS")  # fmt: skip


# --------------------------------------------------------------------------- run directories


def test_fit_refuses_a_non_empty_run_directory(fitted, data_file, config_file, cli):
    before = snapshot(fitted)
    line = assert_refused(
        cli("fit", data_file, "--config", config_file, "--out", fitted, "--no-progress"),
        str(fitted),
    )
    assert "--resume" in line
    assert snapshot(fitted) == before


def test_fit_refuses_a_file_as_run_directory(tmp_path, data_file, config_file, cli):
    out = tmp_path / "file"
    out.write_text("keep me")
    assert_refused(cli("fit", data_file, "--config", config_file, "--out", out))
    assert out.read_text() == "keep me"


@pytest.mark.parametrize(
    ("changes", "mention"),
    [
        ({"likelihood": {"kind": "energy-score"}}, "likelihood.kind"),
        ({"train": {"beta": 0.5}}, "train.beta"),
        ({"train": {"lr_schedule": "constant"}}, "train.lr_schedule"),
        ({"train": {"seed": 1, "epochs": 40}}, "train.seed"),
        ({"sampler": {"replicas": 16}}, "sampler.replicas"),
    ],
)
def test_resume_refuses_another_config(fitted, data_file, tmp_path, cli, changes, mention):
    config = tmp_path / "other.toml"
    config.write_text(Config.load(fitted / "config.toml").replace(**changes).to_toml())
    before = snapshot(fitted)
    args = ("fit", data_file, "--config", config, "--out", fitted, "--resume", "--no-progress")
    assert_refused(cli(*args), mention)
    assert snapshot(fitted) == before


def test_resume_seed_override_is_refused(fitted, data_file, cli):
    before = snapshot(fitted)
    args = ("fit", data_file, "--out", fitted, "--resume", "--seed", 5, "--no-progress")
    assert_refused(cli(*args), "train.seed")
    assert snapshot(fitted) == before


def test_resume_refuses_other_data(fitted, tmp_path, cli):
    other = tmp_path / "other.nc"
    save_trajectories(simulate_ou(OUSystem(n=32, n_times=8), jr.key(1)), other)
    before = snapshot(fitted)
    assert_refused(cli("fit", other, "--out", fitted, "--resume", "--no-progress"), "data")
    assert snapshot(fitted) == before


def test_resume_of_a_finished_run_changes_nothing(fitted, data_file, tmp_path, cli):
    run = tmp_path / "run"
    shutil.copytree(fitted, run, ignore=shutil.ignore_patterns("report"))
    before = snapshot(run)
    code, out, err = cli("fit", data_file, "--out", run, "--resume", "--no-progress")
    assert code == 0, err
    assert "20 epochs" in out
    after = snapshot(run)
    for name in ("checkpoint.eqx", "history.csv", "config.toml", "mle.npz", "samples.npz"):
        assert after[name] == before[name], name


@pytest.mark.parametrize("command", ["sample", "predict", "report", "resume"])
def test_commands_refuse_a_missing_run_directory(tmp_path, data_file, cli, command):
    run = tmp_path / "absent"
    args = {
        "sample": ("sample", run, "--n", 3, "--out", tmp_path / "s.npz"),
        "predict": ("predict", run, "--data", data_file, "--out", tmp_path / "p.nc"),
        "report": ("report", run),
        "resume": ("fit", data_file, "--out", run, "--resume"),
    }[command]
    assert_refused(cli(*args), "absent")
    assert not run.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["sample", "predict"])
def test_commands_refuse_a_directory_that_is_not_a_run(tmp_path, data_file, cli, command):
    run = tmp_path / "empty"
    run.mkdir()
    args = {
        "sample": ("sample", run, "--n", 3, "--out", tmp_path / "s.npz"),
        "predict": ("predict", run, "--data", data_file, "--out", tmp_path / "p.nc"),
    }[command]
    assert_refused(cli(*args), "empty")
    assert list(run.iterdir()) == []


# --------------------------------------------------------------------------- help

OPTIONS = {
    "simulate": ("--out", "--n", "--seed", "--n-times", "--t-end", "--noise-sd"),
    "fit": ("--config", "--out", "--seed", "--resume", "--progress"),
    "sample": ("--n", "--out", "--seed"),
    "predict": ("--data", "--out", "--n", "--seed"),
    "report": ("--data",),
    "demo": ("--out", "--quick", "--seed", "--resume"),
}


def test_top_level_help(cli):
    code, out, err = cli("--help")
    assert code == 0, err
    assert "langevin-uq" in out.lower() or "Usage" in out
    for command in OPTIONS:
        assert command in out, command


@pytest.mark.parametrize("command", list(OPTIONS))
def test_command_help(cli, command):
    code, out, err = cli(command, "--help")
    assert code == 0, err
    for option in OPTIONS[command]:
        assert option in out, option


# --------------------------------------------------------------------------- demo


def test_demo_refuses_unavailable_system(tmp_path, cli):
    out = tmp_path / "demo"
    assert_refused(cli("demo", "hyperelastic", "--out", out, "--quick"), "hyperelastic")
    assert not out.exists()


def test_demo_ou_quick(tmp_path, cli, monkeypatch):
    from langevin_uq.demos import ou

    plain = ou.ou_config

    def shorter(*args, **kwargs):  # the command's pipeline, not the fit's quality
        config = plain(*args, **kwargs)
        return config.replace(train={"epochs": 20, "mle_epochs": 200, "diagnostics": False},
                              sampler={"posterior_samples": 256})  # fmt: skip

    monkeypatch.setattr(ou, "ou_config", shorter)  # where run_ou_demo looks it up
    out = tmp_path / "demo"
    code, _, err = cli("demo", "ou", "--quick", "--out", out, "--no-progress")
    assert code == 0, err
    for name in ("density_over_time.png", "weight_law.png", "w1_over_time.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    table = (out / "parameter_table.txt").read_text()
    assert "analytic" in table
    fits = [("ls", k) for k in ("energy-score", "marginal-mixture", "gaussian")]
    fits += [("bbvi-full", "energy-score"), ("bbvi-full", "marginal-mixture")]
    for method, kind in fits:
        assert (f"LS {kind}" if method == "ls" else f"BBVI-FULL {kind}") in table
        run = out / (kind if method == "ls" else f"{method}-{kind}")
        for name in ("config.toml", "history.csv", "checkpoint.eqx", "samples.npz"):
            assert (run / name).is_file(), (kind, name)
        config = Config.load(run / "config.toml")
        assert (config.method.kind, config.likelihood.kind) == (method, kind)
        assert (run / "report" / "summary.md").is_file()
    assert load_trajectories(out / "data.nc").n_trajectories > 0


@pytest.mark.parametrize(
    "argv",
    [["fit", "data.nc"], ["bogus"], ["sample"], ["fit", "data.nc", "--out", "r", "--seed", "x"]],
)
def test_usage_errors_exit_2_without_traceback(cli, argv):
    code, _, err = cli(*argv)
    assert code == 2
    assert "Traceback" not in err and err.strip()


def test_the_library_s_warnings_are_one_plain_line(capsys):
    from langevin_uq.cli import _show_warning
    from langevin_uq.errors import SupportWarning

    message = "3 of 1000 posterior draws made the data model overflow and were drawn again"
    _show_warning(SupportWarning(message), SupportWarning, "posterior.py", 1)
    assert capsys.readouterr().err == f"langevin-uq: warning: {message}.\n"
