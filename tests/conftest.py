"""Shared fixtures of the run and command-line tests: tiny OU data, tiny configs, the CLI."""

import contextlib
import io
import os
import sys
from pathlib import Path

import jax
import jax.random as jr
import pytest
from hypothesis import settings

from langevin_uq.config import Config
from langevin_uq.data import save_trajectories
from langevin_uq.systems.ou import OUSystem, simulate_ou

# Property-based tests draw the same examples on every run (seeded, like every other test);
# `--hypothesis-profile=explore` draws fresh ones.
settings.register_profile("seeded", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile("seeded")

# One on-disk cache of compiled XLA programs for the whole run, shared by the xdist workers and
# the `langevin-uq` subprocesses they start (which inherit the variable): many tests compile the
# same small fits. A program is looked up by its HLO and compile options, so a hit runs what a
# fresh compilation would have built.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax-compilation"),
)
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])


# `make test` hands whole files to two xdist workers in collection order
# (``--no-loadscope-reorder``); these files take 1.5-5 minutes each, so they go first and the
# short ones fill in behind them (longest first: a long file started last left one worker
# alone for the suite's last minute).
LONGEST_FIRST = ("test_defaults.py", "test_htransform.py", "test_interruptions.py",
                 "test_run.py", "test_cli.py", "test_sampler.py", "test_demos.py",
                 "test_properties.py")  # fmt: skip


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each file keeps its own order


@pytest.fixture(autouse=True, scope="module")
def _fresh_jax_per_file():
    """Each test file starts with float32 and none of the earlier files' compiled programs.

    A float64 fit switches x64 on for the whole process; and an xdist worker that keeps every
    compiled program of the files it ran segfaulted inside XLA's compiler (three fresh-clone runs
    in a row, always at the same test, never when that file ran alone).
    """
    yield
    jax.config.update("jax_enable_x64", False)
    jax.clear_caches()


# Small enough that a whole fit (MLE, 20 epochs, samples) takes a few seconds on 2 CPU cores;
# without the diagnostics (`ksd.json`), which the tests of diagnostics switch on.
TINY = {
    "data": {"scaling": "none"},
    "model": {"R_hidden": []},
    "sampler": {
        "replicas": 8,
        "steps": 10,
        "dtau": 0.05,
        "drift_hidden": [8],
        "posterior_samples": 20,
    },
    "train": {"epochs": 20, "mle_epochs": 20, "checkpoint_every": 10, "diagnostics": False},
}

TINY_TOML = """\
[data]
scaling = "none"

[model]
R_hidden = []

[sampler]
replicas = 8
steps = 10
dtau = 0.05
drift_hidden = [8]
posterior_samples = 20

[train]
epochs = 20
mle_epochs = 20
checkpoint_every = 10
diagnostics = false
"""


def tiny_config(**changes: dict) -> Config:
    """`TINY` with some keys changed, e.g. ``tiny_config(train={"epochs": 10})``."""
    raw = {name: dict(table) for name, table in TINY.items()}
    for name, table in changes.items():
        raw.setdefault(name, {}).update(table)
    return Config.from_dict(raw)


@pytest.fixture(scope="session")
def make_config():
    """Factory of tiny configs (see `tiny_config`)."""
    return tiny_config


@pytest.fixture(scope="session")
def ou_data():
    """32 OU trajectories on 8 times, one output, no inputs."""
    return simulate_ou(OUSystem(n=32, n_times=8), jr.key(0))


@pytest.fixture(scope="session")
def data_file(tmp_path_factory, ou_data):
    path = tmp_path_factory.mktemp("data") / "ou.nc"
    save_trajectories(ou_data, path)
    return path


@pytest.fixture(scope="session")
def config_file(tmp_path_factory):
    """The tiny config as a (partial) TOML file, as a user would write it."""
    path = tmp_path_factory.mktemp("config") / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


def invoke(*args) -> tuple[int, str, str]:
    """Run ``langevin-uq ARGS`` in this process: ``(exit status, stdout, stderr)``."""
    from langevin_uq.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["langevin-uq", *map(str, args)]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exit_:
        code = 0 if exit_.code is None else exit_.code
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def cli():
    """`invoke`: the command line, in process."""
    return invoke
