"""The run directory (INTERFACE.md "Run directory"): its layout, metadata, history, resume checks
and checkpoints.

A run directory holds the resolved ``config.toml``, ``model.json`` (sizes, scaling, split, MLE
summary, the drift's shape, the data model's record), ``mle.npz``, the atomic
``checkpoint.eqx``, ``history.csv`` and ``samples.npz`` (NUTS: ``nuts.npz`` and ``nuts.json``;
with diagnostics ``ksd.json``). Everything a later command needs is rebuilt from these files;
this module is the only one that knows their names. The files themselves are written by
`langevin_uq.checkpoint` (checksummed, atomic).
"""

import hashlib
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from . import __version__
from . import checkpoint as ckpt
from ._atomic import remove_stale_temporaries, write_text_atomic
from .data import Trajectories
from .datamodel import source_digest, structure_digest
from .errors import RunDirError

CHECKPOINT = "checkpoint.eqx"
METADATA = "model.json"
MLE = "mle.npz"
SAMPLES = "samples.npz"
CONFIG = "config.toml"
HISTORY = "history.csv"
NUTS = "nuts.npz"
DIAGNOSTICS = "nuts.json"
KSD = "ksd.json"
RUN_FILES = (CONFIG, METADATA, MLE, HISTORY, CHECKPOINT, SAMPLES, NUTS, DIAGNOSTICS, KSD)
HISTORY_COLUMNS = (
    "epoch",
    "loss",
    "nll",
    "kl",
    "seconds",
    "heldout_energy_score",
    "gamma",
    "grad_norm",
)
FORMAT = 2
"""Run-directory layout version; 2 added checksums to checkpoints and array files."""


# --------------------------------------------------------------------------- metadata


def data_digest(data: Trajectories) -> str:
    """SHA-256 of the data's arrays: what ``model.json`` records as ``data_sha256``."""
    h = hashlib.sha256()
    for a in (data.t, data.y, data.y0, data.group, data.x):
        if a is not None:
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def read_metadata(run_dir: Path) -> dict:
    """``model.json`` of a run directory, refused unless this version wrote its format."""
    meta = ckpt.read_json(run_dir / METADATA)
    if meta.get("format") != FORMAT:
        raise RunDirError(
            f"{run_dir} was written by another version of langevin-uq (run format "
            f"{meta.get('format')}, version {meta.get('version', 'unknown')}); this version "
            f"{__version__} reads format {FORMAT}: fit again"
        )
    return meta


def update_metadata(run_dir: Path, **changes) -> None:
    """Rewrite ``model.json`` with some entries changed."""
    ckpt.write_json(run_dir / METADATA, {**read_metadata(run_dir), **changes})


def create(run_dir: Path, config: str, problem, record: dict, drift: dict | None) -> None:
    """Start a run directory: the config, the MLE and ``model.json``.

    Args:
        config: the resolved config's TOML text (`write_config`).
        problem: the run's `langevin_uq.prepare.Problem`.
        record: the data model's `model_record`.
        drift: the Langevin drift's shape (``None`` for the baselines).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(run_dir, config)
    ckpt.save_arrays(run_dir / MLE, w=np.asarray(problem.w_mle))
    train, validation, data = problem.train_split, problem.validation_split, problem.data
    ckpt.write_json(run_dir / METADATA, {
        "format": FORMAT, "version": __version__, "dtau_halvings": 0,
        "n_outputs": data.n_outputs, "n_inputs": data.n_inputs,
        "n_groups": problem.grid[0], "n_times": problem.grid[1],
        "n_weights": problem.partition.n_weights, "n_stochastic": problem.partition.n_stochastic,
        "scaler": problem.scaler.to_dict(), "data_sha256": data_digest(data),
        "mle": problem.mle_info, "n_train": train.n_trajectories,
        "n_validation": 0 if validation is None else validation.n_trajectories,
        "validation_group_ids": [] if validation is None else validation.group.tolist(),
        "likelihood": _describe(problem.likelihood, problem.scaler), "drift": drift,
        "model": record,
    })  # fmt: skip


def _describe(likelihood, scaler) -> dict:
    out = {"kind": type(likelihood).__name__}
    if hasattr(likelihood, "sigma") and np.ndim(likelihood.sigma) == 1:
        out["sigma"] = (np.asarray(likelihood.sigma) * np.asarray(scaler.scale)).tolist()
    return out


def write_config(run_dir: Path, config: str) -> None:
    """``config.toml``: ``config`` is the resolved config's TOML text, every default filled in;
    the entry points read it back from `CONFIG`."""
    write_text_atomic(run_dir / CONFIG, config)


def read_mle(run_dir: Path, dtype) -> tuple[jnp.ndarray, dict]:
    """The run's MLE of all weights in ``dtype`` and its summary."""
    w = jnp.asarray(ckpt.load_arrays(run_dir / MLE)["w"], dtype)
    return w, read_metadata(run_dir)["mle"]


# --------------------------------------------------------------------------- training


def save_progress(run_dir: Path, state, history: list[tuple]) -> None:
    """Write the history (`HISTORY_COLUMNS` rows) and the checkpoint of ``state``."""
    lines = [",".join(HISTORY_COLUMNS)]
    lines += [",".join([str(int(row[0]))] + [f"{float(v):.9g}" for v in row[1:]])
              for row in history]  # fmt: skip
    write_text_atomic(run_dir / HISTORY, "\n".join(lines) + "\n")
    ckpt.save_state(run_dir / CHECKPOINT, state)


def load_state(run_dir: Path, like):
    """The checkpoint's training state, read into the structure of ``like``."""
    return ckpt.load_state(run_dir / CHECKPOINT, like)


def read_history(path: Path, epochs: int | None = None) -> list[tuple]:
    """The rows of ``history.csv`` (`HISTORY_COLUMNS`) up to epoch ``epochs`` (all: ``None``).

    ``path``: the history file, or a run directory."""
    path = Path(path)
    path = path / HISTORY if path.is_dir() else path
    epochs = float("inf") if epochs is None else epochs
    if not path.exists():
        return []
    rows = [line.split(",") for line in path.read_text().splitlines()[1:] if line]
    return [tuple([int(r[0])] + [float(v) for v in r[1:]]) for r in rows if int(r[0]) <= epochs]


def save_nuts(run_dir: Path, result) -> None:
    """NUTS draws with their diagnostics (``nuts.npz``) and summary (``nuts.json``)."""
    ckpt.save_arrays(run_dir / NUTS, w=result.samples, diverging=result.diverging,
                     r_hat=result.r_hat, ess=result.ess)  # fmt: skip
    ckpt.write_json(run_dir / DIAGNOSTICS, result.summary())


def read_nuts(run_dir: Path) -> tuple[np.ndarray, dict]:
    """NUTS draws ``(chains, draws, ns)`` and their summary."""
    return ckpt.load_arrays(run_dir / NUTS)["w"], ckpt.read_json(run_dir / DIAGNOSTICS)


def save_samples(run_dir: Path, w, partition) -> None:
    """The run's posterior samples of the whole weight vector (``samples.npz``)."""
    ckpt.save_samples(run_dir / SAMPLES, np.asarray(w), partition.names,
                      partition.stochastic_mask)  # fmt: skip


def read_samples(run_dir: Path, n_weights: int) -> np.ndarray:
    """The samples of ``samples.npz``, ``(M, n_weights)``."""
    w = ckpt.load_arrays(Path(run_dir) / SAMPLES).get("w")
    if w is None or w.ndim != 2 or w.shape[1] != n_weights:
        raise RunDirError(f"{Path(run_dir) / SAMPLES} does not hold samples of this model")
    return w


# --------------------------------------------------------------------------- resume checks


def model_record(spec: str, model, own: bool) -> dict:
    """What ``model.json`` records of the data model, so that a later command can refuse a
    changed one: its module (``spec``, the config's ``model.module``; empty for a model given
    in Python), class and SHA-256s of its structure and source."""
    if not own:
        return {"kind": "built-in"}
    spec = spec or None
    return {"kind": "module" if spec else "python", "module": spec,
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "structure_sha256": structure_digest(model),
            "source_sha256": source_digest(spec, model)}  # fmt: skip


def needs_model(run_dir: Path, meta: dict, model) -> None:
    """Refuse to load a run fitted with a model given in Python when no ``model`` is given."""
    if model is None and (meta.get("model") or {}).get("kind") == "python":
        raise RunDirError(
            f"the run in {run_dir} was fitted with a model given in Python "
            f"({meta['model']['class']}); pass one of the same structure as model="
        )


def same_model(run_dir: Path, saved: dict | None, record: dict) -> None:
    """Refuse a data model that differs from the one the run in ``run_dir`` was fitted with."""
    saved = saved or {"kind": "built-in"}
    if saved.get("kind") == "built-in" and record.get("kind") == "built-in":
        return
    if record.get("kind") == "built-in":
        raise RunDirError(
            f"the run in {run_dir} was fitted with your own model ({saved.get('class')}); "
            + ("pass it as model=" if saved.get("kind") == "python" else "its config names it")
        )
    if saved.get("kind") == "built-in":
        raise RunDirError(f"the run in {run_dir} was fitted with the built-in model, not yours")
    checks = [("structure_sha256", "its weights' names and shapes")]
    if saved.get("kind") == "module":  # a model given in Python lives in the user's script,
        checks.append(("source_sha256", "its source file"))  # which may change around it
    for key, what in checks:
        if saved.get(key) and record.get(key) and saved[key] != record[key]:
            raise RunDirError(
                f"the model differs from the one the run in {run_dir} was fitted with "
                f"({what} changed); fit again into a new directory"
            )


def check(run_dir: Path, digest: str, resume: bool, record: dict) -> int | None:
    """Refuse a run directory that does not fit the data (``digest``, `data_digest`) or the
    data model (``record``, `model_record`).

    Returns ``None`` when a run starts there (``resume`` false: the directory is absent or
    empty); else the run's halvings of ``sampler.dtau`` (0 before its ``model.json``). The
    caller then compares its config with the saved one (`CONFIG`, when there is one) and asks
    `resumable` whether there is anything to continue.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"run directory {run_dir} is a file, not a directory")
    if not resume:
        if run_dir.exists() and any(run_dir.iterdir()):
            raise RunDirError(
                f"run directory {run_dir} is not empty; choose a new --out or pass --resume"
            )
        return None
    if not run_dir.exists():
        raise RunDirError(f"run directory {run_dir} does not exist; there is nothing to resume")
    remove_stale_temporaries(run_dir, RUN_FILES)
    present = _present(run_dir)
    if not present and any(run_dir.iterdir()):
        raise RunDirError(f"{run_dir} holds files a run does not write; it is not a run directory")
    meta = read_metadata(run_dir) if METADATA in present else {}
    if meta and meta.get("data_sha256") != digest:
        raise RunDirError(f"the data differ from the data {run_dir} was fitted to")
    if meta:
        same_model(run_dir, meta.get("model"), record)
    return int(meta.get("dtau_halvings", 0))


def resumable(run_dir: Path, trained: bool) -> bool:
    """Whether the run in ``run_dir`` (checked by `check`) has anything to continue.

    False when it holds only the files a run writes before its first checkpoint (a run
    killed early, with the same data and config): they are removed and the run starts from
    the beginning. A complete NUTS run (``trained`` false) is refused.
    """
    present = _present(run_dir)
    if (CHECKPOINT if trained else NUTS) not in present:
        for name in present:
            (run_dir / name).unlink()
        return False
    if not trained:
        raise RunDirError(f"the NUTS run in {run_dir} is complete; there is nothing to resume")
    return True


def _present(run_dir: Path) -> set[str]:
    """The names of `RUN_FILES` in ``run_dir``."""
    return {p.name for p in run_dir.iterdir()} & set(RUN_FILES)


def write_ksd(directory: Path, quality: dict) -> None:
    """The sample-quality diagnostics (``ksd.json``) in a run directory or its ``report/``."""
    ckpt.write_json(directory / KSD, quality)


def read_ksd(directory: Path) -> dict | None:
    """``ksd.json`` of ``directory``, or ``None`` when there is none."""
    return ckpt.read_json(directory / KSD) if (directory / KSD).is_file() else None
