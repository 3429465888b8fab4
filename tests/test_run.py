"""The library's entry points: `fit`, `load_run`, `sample_weights` and `predict` (langevin_uq.run).

Every fit here uses the tiny config of conftest.py; runs that several tests read are module
fixtures, so the file fits a handful of times in all.
"""

import csv
import logging
import shutil

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import langevin_uq.methods.ls as ls_module
import langevin_uq.run as run_module
import langevin_uq.train as train_module
from langevin_uq import rundir
from langevin_uq.config import Config
from langevin_uq.data import from_arrays
from langevin_uq.errors import ConfigError, RunDirError, TrainingDivergedError
from langevin_uq.run import fit, load_run, predict, sample_weights
from langevin_uq.rundir import HISTORY_COLUMNS
from langevin_uq.systems.ou import OUSystem, simulate_ou


def leaves(tree) -> list[np.ndarray]:
    return [np.asarray(a) for a in jax.tree.leaves(eqx.filter(tree, eqx.is_array))]


def assert_bitwise_equal(a, b) -> None:
    la, lb = leaves(a), leaves(b)
    assert len(la) == len(lb) > 0
    for x, y in zip(la, lb, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y), np.max(np.abs(x - y))


def history(run_dir) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and tuple(rows[0]) == HISTORY_COLUMNS
    return rows


def without_seconds(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


# --------------------------------------------------------------------------- fixtures


class _CountingELBO:
    """Stands in for the ELBO inside the chunk step and counts how often it is traced."""

    def __init__(self, inner, counts):
        self._inner, self._counts = inner, counts

    def __call__(self, *args):
        self._counts["traces"] += 1
        return self._inner(*args)

    def __getattr__(self, name):
        return getattr(self._inner, name)


class _CompileLog(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def straight(tmp_path_factory, ou_data, make_config):
    """An uninterrupted 30-epoch run, with its training step instrumented: traces of the ELBO
    and XLA compilations of the chunk, per call of the chunk step. A constant learning rate,
    so that a run resumed with more epochs can match it (a cosine schedule spans
    train.epochs)."""
    counts = {"traces": 0, "calls": 0, "traces_after_call": [], "compiles_per_call": []}
    log = _CompileLog()
    make = run_module.make_chunk_step

    def counting_make_chunk_step(elbo, optimiser, epochs):
        chunk = make(_CountingELBO(elbo, counts), optimiser, epochs)

        def counted(state, key):
            before = len(log.messages)
            out = chunk(state, key)
            jax.block_until_ready(out)
            counts["calls"] += 1
            counts["traces_after_call"].append(counts["traces"])
            new = log.messages[before:]
            counts["compiles_per_call"].append(
                sum(m.startswith("Compiling jit(chunk)") for m in new)
            )
            return out

        return counted

    jax_logger = logging.getLogger("jax")
    jax_logger.addHandler(log)
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    config = make_config(train={"epochs": 30, "lr_schedule": "constant"})
    try:
        with pytest.MonkeyPatch.context() as mp, jax.log_compiles():
            mp.setattr(run_module, "make_chunk_step", counting_make_chunk_step)
            run = fit(ou_data, config, run_dir=run_dir)
    finally:
        jax_logger.removeHandler(log)
    return run, run_dir, counts


class _Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, ou_data, make_config):
    """The run of `straight` in three goes: 10 epochs (a finished run); resumed with
    train.epochs = 30 but killed right after its checkpoint at epoch 20; resumed again."""
    run_dir = tmp_path_factory.mktemp("resumed") / "run"
    config = make_config(train={"epochs": 30, "lr_schedule": "constant"})
    stages = []

    def stage():
        stages.append({
            "epoch": load_run(run_dir).epoch,
            "rows": [int(r["epoch"]) for r in history(run_dir)],
            "files": sorted(p.name for p in run_dir.iterdir()),
        })  # fmt: skip

    first = fit(ou_data, config.replace(train={"epochs": 10}), run_dir=run_dir)
    assert first.epoch == 10
    stage()
    save = rundir.save_progress

    def save_then_die(directory, state, rows):
        save(directory, state, rows)
        if int(state.epoch) == 20:
            raise _Interrupted

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rundir, "save_progress", save_then_die)
        with pytest.raises(_Interrupted):
            fit(ou_data, config, run_dir=run_dir, resume=True)
    stage()
    run = fit(ou_data, config, run_dir=run_dir, resume=True)
    return run, run_dir, stages


# --------------------------------------------------------------------------- resume


def test_resume_is_exact(straight, resumed):
    """Extended from 10 to 30 epochs and interrupted on the way, a run ends bit for bit where
    an uninterrupted 30-epoch run does."""
    run_b, dir_b, _ = straight
    run_a, dir_a, stages = resumed
    assert stages[0]["epoch"] == 10 and stages[0]["rows"] == list(range(1, 11))
    assert "samples.npz" in stages[0]["files"]
    assert stages[1]["epoch"] == 20 and stages[1]["rows"] == list(range(1, 21))
    assert run_a.epoch == run_b.epoch == 30
    assert_bitwise_equal(run_a.posterior, run_b.posterior)
    assert_bitwise_equal(load_run(dir_a).posterior, load_run(dir_b).posterior)
    # The whole training state (Adam's moments and the epoch too) is the same, bit for bit.
    assert (dir_a / "checkpoint.eqx").read_bytes() == (dir_b / "checkpoint.eqx").read_bytes()
    assert without_seconds(history(dir_a)) == without_seconds(history(dir_b))
    assert [int(r["epoch"]) for r in history(dir_a)] == list(range(1, 31))
    with np.load(dir_a / "samples.npz") as a, np.load(dir_b / "samples.npz") as b:
        np.testing.assert_array_equal(a["w"], b["w"])


def test_resumed_run_directory_records_its_config(straight, resumed):
    run_a, dir_a, _ = resumed
    assert Config.load(dir_a / "config.toml") == run_a.config == straight[0].config


def test_run_directory_refusals(straight, tmp_path, ou_data):
    run, run_dir, _ = straight
    config = run.config
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    with pytest.raises(RunDirError, match="not empty"):
        fit(ou_data, config, run_dir=run_dir)
    with pytest.raises(RunDirError, match=r"prior\.scale"):
        fit(ou_data, config.replace(prior={"scale": 2.0}), run_dir=run_dir, resume=True)
    other = simulate_ou(OUSystem(n=32, n_times=8), jr.key(5))
    with pytest.raises(RunDirError, match="data"):
        fit(other, config, run_dir=run_dir, resume=True)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
    with pytest.raises(RunDirError):
        load_run(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError):
        load_run(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        fit(ou_data, config, run_dir=tmp_path / "file", resume=True)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="not a run directory"):
        fit(ou_data, config, run_dir=tmp_path / "foreign", resume=True)
    with pytest.raises(RunDirError, match="does not exist"):
        fit(ou_data, config, run_dir=tmp_path / "absent", resume=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "file", "foreign"]


def test_resume_with_nothing_to_continue_starts_from_the_beginning(straight, tmp_path, ou_data):
    """A run killed before its first checkpoint is fitted from the beginning."""
    run, run_dir, _ = straight
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("config.toml", "model.json", "mle.npz"):
        (partial / name).write_bytes((run_dir / name).read_bytes())
    (partial / ".checkpoint.abc123.eqx").write_bytes(b"half a file")
    resumed = fit(ou_data, run.config, run_dir=partial, resume=True)
    assert_bitwise_equal(resumed.posterior, run.posterior)
    assert not list(partial.glob(".*"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.toml").write_text(run.config.replace(prior={"scale": 3.0}).to_toml())
    with pytest.raises(RunDirError, match=r"prior\.scale"):
        fit(ou_data, run.config, run_dir=other, resume=True)


def test_load_run_rebuilds_the_fitted_run(straight):
    run, run_dir, _ = straight
    loaded = load_run(run_dir)
    assert loaded.config == run.config
    assert loaded.epoch == run.epoch == 30
    assert_bitwise_equal(loaded.posterior, run.posterior)
    np.testing.assert_array_equal(loaded.w_mle, run.w_mle)
    np.testing.assert_array_equal(loaded.scaler.shift, run.scaler.shift)
    np.testing.assert_array_equal(loaded.scaler.scale, run.scaler.scale)
    assert loaded.partition.names == run.partition.names


# --------------------------------------------------------------------------- divergence


@pytest.fixture(scope="module")
def diverged(tmp_path_factory, ou_data, make_config):
    """A 20-epoch run whose loss turns NaN in epoch 14 (the diffusion multiplier is poisoned
    from epoch index 13 on), after its scheduled checkpoint at epoch 10."""
    anneal = ls_module.anneal_gamma

    def poisoned(epoch, gamma0, anneal_epochs):
        return jnp.where(epoch >= 13, jnp.nan, anneal(epoch, gamma0, anneal_epochs))

    config = make_config(train={"epochs": 20})
    run_dir = tmp_path_factory.mktemp("diverged") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ls_module, "anneal_gamma", poisoned)
        with pytest.raises(TrainingDivergedError) as info:
            fit(ou_data, config, run_dir=run_dir)
    return config, run_dir, str(info.value)


def test_divergence_keeps_the_last_good_checkpoint(diverged, ou_data, tmp_path):
    config, run_dir, message = diverged
    assert "at epoch 14" in message and "keeps epoch 13" in message
    assert "\n" not in message
    run = load_run(run_dir)
    assert run.epoch == 13
    assert all(np.all(np.isfinite(a)) for a in leaves(run.posterior))
    rows = history(run_dir)
    assert [int(r["epoch"]) for r in rows] == list(range(1, 14))
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    # The checkpoint is enough to go on, following the message's advice.
    assert "train.lr" in message and "resume" in message
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    resumed = fit(ou_data, config.replace(train={"lr": 1e-3}), run_dir=copy, resume=True)
    assert resumed.epoch == 20
    assert [int(r["epoch"]) for r in history(copy)] == list(range(1, 21))
    assert all(np.all(np.isfinite(a)) for a in leaves(resumed.posterior))
    assert Config.load(copy / "config.toml").train.lr == 1e-3
    with np.load(copy / "samples.npz") as f:
        assert np.all(np.isfinite(f["w"]))


# --------------------------------------------------------------------------- compilation


def test_the_training_step_compiles_once(straight):
    """30 epochs are 3 calls of the 10-epoch chunk; only the first traces and compiles."""
    _, _, counts = straight
    assert counts["calls"] == 3
    assert counts["traces_after_call"] == [1, 1, 1]
    assert counts["compiles_per_call"] == [1, 0, 0]


# --------------------------------------------------------------------------- sampling


@pytest.fixture(scope="module")
def last_layer(ou_data, make_config):
    """In memory, a run sampling only the last layer of R (``bll-fixed``, one hidden layer),
    on standardized outputs; no validation set, so the MLE fits every trajectory."""
    config = make_config(
        data={"scaling": "standardize", "validation_fraction": 0.0},
        model={"R_hidden": [3]},
        partition={"variant": "bll-fixed"},
        train={"epochs": 10, "mle_epochs": 1500},
    )
    return fit(ou_data, config)


@pytest.fixture(scope="module")
def last_layer_samples(last_layer):
    return np.asarray(sample_weights(last_layer, 100, jr.key(3)))


def test_samples_repeat_the_deterministic_weights(last_layer, last_layer_samples):
    run, w = last_layer, last_layer_samples
    mask = np.asarray(run.partition.stochastic_mask)
    names = run.partition.names
    assert w.shape == (100, run.partition.n_weights) == (100, len(names)) == (100, 10)
    assert [n for n, s in zip(names, mask, strict=True) if s] == [
        "R.layers.1.weight[0,0]",
        "R.layers.1.weight[0,1]",
        "R.layers.1.weight[0,2]",
        "R.layers.1.bias[0]",
    ]
    np.testing.assert_array_equal(w[:, ~mask], np.broadcast_to(run.w_mle[~mask], (100, 6)))
    assert np.all(w[:, mask].std(axis=0) > 0)
    assert np.all(np.isfinite(w))


def test_same_seed_same_samples(last_layer, last_layer_samples):
    run, a = last_layer, last_layer_samples
    b = np.asarray(sample_weights(run, 100, jr.key(3)))
    c = np.asarray(sample_weights(run, 100, jr.key(4)))
    np.testing.assert_array_equal(a, b)
    mask = np.asarray(run.partition.stochastic_mask)
    assert np.all(a[:, mask] != c[:, mask])
    np.testing.assert_array_equal(a[:, ~mask], c[:, ~mask])


def test_sample_batches_do_not_change_shapes(straight):
    run = straight[0]
    w = sample_weights(run, 10, jr.key(0), batch=5)
    assert w.shape == (10, run.partition.n_weights)
    assert np.unique(np.asarray(w), axis=0).shape[0] == 10
    with pytest.raises(ConfigError):
        sample_weights(run, 0, jr.key(0))


# --------------------------------------------------------------------------- predict


def test_predict_shapes_for_new_inputs(last_layer, last_layer_samples):
    run = last_layer
    new = simulate_ou(OUSystem(n=3, n_times=5, t_end=2.0, x0=0.25), jr.key(9))
    y = predict(run, new, jnp.asarray(last_layer_samples[:6]))
    assert isinstance(y, np.ndarray)
    assert y.shape == (6, 3, 5, 1)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y[:, :, 0, 0], 0.25, atol=1e-6)


def test_predict_undoes_the_scaling(last_layer, last_layer_samples, ou_data):
    """With scaling "standardize" the model works in scaled units but predicts in the data's:
    the MLE alone follows the data's mean trajectory and starts from the known y0."""
    run = last_layer
    shift, scale = float(run.scaler.shift[0]), float(run.scaler.scale[0])
    assert shift > 0.5 and scale < 0.5  # far from the identity: not undoing it would show
    mean = np.broadcast_to(ou_data.y.mean(axis=0), ou_data.y.shape)
    y_mle = predict(run, ou_data, run.w_mle[None])
    assert y_mle.shape == (1, 32, 8, 1)
    np.testing.assert_allclose(y_mle[0, :, 0], ou_data.y0, atol=1e-5)
    np.testing.assert_allclose(y_mle[0], mean, atol=0.06)
    y = predict(run, ou_data, jnp.asarray(last_layer_samples))
    assert y.shape == (100, 32, 8, 1)
    np.testing.assert_allclose(y.mean(axis=0), mean, atol=0.25)


def test_predict_refuses_other_outputs(last_layer, last_layer_samples):
    two = from_arrays(t=np.linspace(0, 1, 4), y=np.zeros((2, 4, 2)))
    w = jnp.asarray(last_layer_samples[:2])
    with pytest.raises(ConfigError, match="outputs"):
        predict(last_layer, two, w)


def test_copy_of_a_run_directory_is_a_run(straight, tmp_path):
    _, run_dir, _ = straight
    shutil.copytree(run_dir, tmp_path / "copy")
    assert_bitwise_equal(load_run(tmp_path / "copy").posterior, load_run(run_dir).posterior)


# --------------------------------------------------------------------------- guided starts


@pytest.mark.parametrize("init", ["laplace", "gauss-newton"])
def test_guided_start_is_in_the_checkpoint_and_resumes_exactly(
    init, ou_data, make_config, tmp_path
):
    """The guide is built once, after the MLE, and lives in the checkpoint: a loaded run
    samples as the fitted one, and a resumed run (which does not rebuild it) ends where an
    uninterrupted one does."""
    config = make_config(sampler={"drift_init": init}, likelihood={"kind": "gaussian"},
                         train={"epochs": 20, "lr_schedule": "constant"})  # fmt: skip
    run = fit(ou_data, config, run_dir=tmp_path / "straight")
    drift = run.posterior.drift
    if init == "laplace":
        assert float(jnp.max(drift.tilt.basis**2)) > 0 and drift.guide is None
        # The centre is the MLE moved by one Gauss-Newton step along informed directions.
        mle = run.posterior.sampler.prior.whiten(run.partition.split(run.w_mle)[0])
        step = np.asarray(drift.tilt.centre - mle, np.float64)
        q = np.asarray(drift.residual.basis, np.float64)
        np.testing.assert_allclose(q @ (q.T @ step), step, atol=1e-5)
    else:
        guide = drift.guide
        assert float(jnp.min(guide.precision)) > 0
        np.testing.assert_array_equal(guide.w_d, run.partition.split(run.w_mle)[1])
    assert_bitwise_equal(load_run(tmp_path / "straight").posterior, run.posterior)
    fit(ou_data, config.replace(train={"epochs": 10}), run_dir=tmp_path / "resumed")
    resumed = fit(ou_data, config, run_dir=tmp_path / "resumed", resume=True)
    assert_bitwise_equal(resumed.posterior, run.posterior)


def test_zero_epochs_samples_the_starting_drift(ou_data, make_config, tmp_path):
    """``train.epochs = 0``: no ELBO step, the run samples its guide untrained and is a run
    directory like any other (loaded, sampled the same); BBVI has no such start and refuses."""
    config = make_config(sampler={"drift_init": "gauss-newton"}, likelihood={"kind": "gaussian"},
                         train={"epochs": 0})  # fmt: skip
    run = fit(ou_data, config, run_dir=tmp_path / "run")
    assert run.epoch == 0
    drift = run.posterior.drift
    assert float(jnp.max(jnp.abs(drift.residual.mlp.layers[-1].weight))) == 0.0
    assert (tmp_path / "run" / "history.csv").read_text().count("\n") == 1
    key = jr.key(5)
    np.testing.assert_array_equal(sample_weights(load_run(tmp_path / "run"), 16, key),
                                  sample_weights(run, 16, key))  # fmt: skip
    with pytest.raises(ConfigError, match="epochs"):
        config.replace(method={"kind": "bbvi-full"})


def test_lr_warmup_ramps_the_first_adam_steps_up_to_lr():
    from langevin_uq.config import TrainOptions

    lr, warmup = 1e-2, 10
    optimiser = train_module.optimiser(TrainOptions(epochs=100, lr=lr, lr_warmup=warmup,
                                                   grad_clip=0.0))  # fmt: skip
    params = jnp.zeros(3)
    state = optimiser.init(params)
    steps = []
    for _ in range(warmup + 1):
        # Adam's step with a constant gradient is the scheduled rate itself.
        updates, state = optimiser.update(jnp.ones(3), state, params)
        steps.append(-float(updates[0]))
    np.testing.assert_allclose(steps[0], lr / warmup, rtol=1e-3)
    assert np.all(np.diff(steps) > 0)
    np.testing.assert_allclose(steps[warmup], lr, rtol=1e-3)  # the cosine starts at lr
