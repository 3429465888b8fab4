"""Interrupted and diverging runs: Ctrl-C, SIGKILL at random moments, a forced divergence.

The signal tests run the installed ``langevin-uq`` command in subprocesses, as a user's shell
would. A resumed run must end with the same samples, bit for bit, as an uninterrupted one.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from langevin_uq import checkpoint as ckpt
from langevin_uq import rundir
from langevin_uq.config import Config
from langevin_uq.errors import TrainingDivergedError
from langevin_uq.run import fit, load_run

SCRIPT = str(Path(sys.executable).with_name("langevin-uq"))

CONFIG = """\
[data]
scaling = "none"
[model]
R_hidden = []
[sampler]
replicas = 32
steps = 20
dtau = 0.05
drift_hidden = [8]
posterior_samples = 20
[train]
epochs = {epochs}
mle_epochs = 20
checkpoint_every = 100
lr_schedule = "constant"
"""


def _config(tmp_path: Path, epochs: int) -> Path:
    path = tmp_path / f"c{epochs}.toml"
    path.write_text(CONFIG.format(epochs=epochs))
    return path


def _fit_command(data_file, config: Path, out: Path) -> list[str]:
    args = [SCRIPT, "fit", str(data_file), "--config", str(config), "--out", str(out)]
    return args + ["--no-progress"] + (["--resume"] if out.exists() else [])


def _samples(run_dir: Path) -> np.ndarray:
    return ckpt.load_arrays(run_dir / rundir.SAMPLES)["w"]


# --------------------------------------------------------------------------- SIGINT


def test_ctrl_c_saves_exits_130_and_resumes_exactly(tmp_path, data_file):
    out = tmp_path / "run"
    config = _config(tmp_path, 10**6)
    proc = subprocess.Popen(_fit_command(data_file, config, out), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / rundir.CHECKPOINT).exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("langevin-uq: stopped: interrupted after")
    assert "--resume" in lines[0] and "Traceback" not in err
    stopped = load_run(out).epoch
    assert 0 < stopped < 10**6 and stopped % 10 == 0
    history = (out / rundir.HISTORY).read_text().splitlines()
    assert len(history) == stopped + 1

    # Resume to a few epochs past the interruption (train.epochs may change on resume) and
    # compare with an uninterrupted run of that length: same samples, bit for bit.
    final = _config(tmp_path, stopped + 30)
    done = subprocess.run(_fit_command(data_file, final, out), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    reference = tmp_path / "reference"
    subprocess.run(_fit_command(data_file, final, reference), check=True, capture_output=True)
    np.testing.assert_array_equal(_samples(out), _samples(reference))
    assert load_run(out).epoch == stopped + 30


# --------------------------------------------------------------------------- SIGKILL


def kill_and_resume(tmp_path: Path, data_file, kills: int, epochs: int, seed: int) -> dict:
    """SIGKILL ``fit`` at ``kills`` random moments, resuming after each, and check every run
    ends with the reference run's samples. The moments are uniform over an uninterrupted run's
    duration (start-up, MLE, compilation, training, writing); a run that finishes before its
    moment is compared and a new one started, until ``kills`` processes have been killed."""
    config = _config(tmp_path, epochs)
    reference = tmp_path / "reference"
    t0 = time.monotonic()
    subprocess.run(_fit_command(data_file, config, reference), check=True, capture_output=True)
    duration = time.monotonic() - t0
    rng = np.random.default_rng(seed)
    saved_at_kill: list[int | None] = []
    runs = 0
    while len(saved_at_kill) < kills:
        out = tmp_path / f"killed{runs}"
        while len(saved_at_kill) < kills:
            proc = subprocess.Popen(_fit_command(data_file, config, out),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
            try:
                proc.wait(timeout=rng.uniform(0, duration))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                saved_at_kill.append(_saved_epoch(out))
            else:
                assert proc.returncode == 0, proc.stderr.read()
                break
            finally:
                proc.stderr.close()
        if not (out / rundir.SAMPLES).exists():
            done = subprocess.run(_fit_command(data_file, config, out), capture_output=True)
            assert done.returncode == 0, done.stderr
        np.testing.assert_array_equal(_samples(out), _samples(reference))
        assert load_run(out).epoch == epochs
        assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
        runs += 1
    return {"duration_s": duration, "runs": runs, "checkpoint_epoch_at_each_kill": saved_at_kill}


def _saved_epoch(run_dir: Path) -> int | None:
    """The epoch in the checkpoint (``None`` before the first one); it must always load."""
    if not (run_dir / rundir.CHECKPOINT).exists():
        return None
    return load_run(run_dir).epoch


def test_sigkill_at_random_moments_then_resume_gives_the_same_samples(tmp_path, data_file):
    kill_and_resume(tmp_path, data_file, kills=2, epochs=4000, seed=0)


@pytest.mark.slow
def test_twenty_sigkills_then_resume_give_the_same_samples(tmp_path, data_file):
    report = kill_and_resume(tmp_path, data_file, kills=20, epochs=20000, seed=1)
    print(json.dumps(report))


# --------------------------------------------------------------------------- divergence

# Equal steps of 2 pseudo-time units. The sampler itself no longer diverges there (the prior's
# transition is exact at any step and the Gaussian start's gain is bounded by 2 / v at the grid's
# points), so `_unstable_above` stands in for a drift that is unstable at steps above 0.5.
HUGE_DTAU = {"sampler": {"dtau": 2.0, "schedule": "uniform"}}


@pytest.fixture
def _unstable_above(monkeypatch):
    from langevin_uq.sampler import LangevinSampler

    plain = LangevinSampler.learned_correction

    def unstable(self, drift, u, remaining):
        step = self.remaining[0] - self.remaining[1]
        return jnp.where(step > 0.5, jnp.nan, plain(self, drift, u, remaining))

    monkeypatch.setattr(LangevinSampler, "learned_correction", unstable)


def test_a_huge_dtau_does_not_diverge(ou_data, make_config, tmp_path):
    run = fit(ou_data, make_config(**HUGE_DTAU), run_dir=tmp_path / "run")
    assert run.epoch == run.config.train.epochs and np.all(np.isfinite(_samples(tmp_path / "run")))


@pytest.mark.usefixtures("_unstable_above")
def test_a_diverging_sampler_stops_cleanly_with_the_checkpoint_intact(
    ou_data, make_config, tmp_path
):
    run_dir = tmp_path / "run"
    config = make_config(**HUGE_DTAU)
    with pytest.raises(TrainingDivergedError) as info:
        fit(ou_data, config, run_dir=run_dir)
    message = str(info.value)
    assert "replicas ran away" in message and "sampler.dtau = 2" in message
    assert "divergence_retries" in message and "\n" not in message
    run = load_run(run_dir)  # the last good state (here the initial one) loads
    assert run.epoch == 0
    assert not (run_dir / rundir.SAMPLES).exists()
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".")) == []


@pytest.mark.usefixtures("_unstable_above")
def test_divergence_retries_halve_dtau_and_finish(ou_data, make_config, tmp_path):
    run_dir = tmp_path / "run"
    config = make_config(**HUGE_DTAU, train={"divergence_retries": 10})
    run = fit(ou_data, config, run_dir=run_dir)
    halvings = json.loads((run_dir / rundir.METADATA).read_text())["dtau_halvings"]
    assert halvings == 2
    saved = Config.load(run_dir / rundir.CONFIG)
    assert saved.sampler.dtau == 2.0 / 2**halvings
    assert saved.sampler.steps == config.sampler.steps * 2**halvings
    assert run.config == saved and run.epoch == config.train.epochs
    assert np.all(np.isfinite(_samples(run_dir)))
    # Resuming with the config the user started from is accepted (the halvings are applied).
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    again = fit(ou_data, config, run_dir=copy, resume=True)
    assert again.config == saved
    np.testing.assert_array_equal(_samples(copy), _samples(run_dir))


def test_a_bbvi_divergence_names_the_learning_rate(ou_data, make_config, tmp_path):
    config = make_config(method={"kind": "bbvi-full"}, train={"lr": 1e30, "epochs": 20})
    with pytest.raises(TrainingDivergedError, match=r"lower train\.lr"):
        fit(ou_data, config, run_dir=tmp_path / "run")
    assert load_run(tmp_path / "run").epoch < 20


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_second_ctrl_c_interrupts_at_once():
    """The first SIGINT is deferred; a second one raises KeyboardInterrupt immediately."""
    from langevin_uq._interrupt import deferred_sigint

    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh process
    try:
        _second_ctrl_c(deferred_sigint)
    finally:
        signal.signal(signal.SIGINT, before)


def _second_ctrl_c(deferred_sigint):
    with deferred_sigint() as interrupted:
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        for _ in range(200):
            if interrupted():
                break
            time.sleep(0.01)
        assert interrupted()
        with pytest.raises(KeyboardInterrupt):
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            time.sleep(1)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
