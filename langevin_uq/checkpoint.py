"""Run-directory files: checkpoints, JSON metadata and posterior samples; no pickle anywhere.

Checkpoints are `equinox.tree_serialise_leaves` of the training state (the skeleton to read them
into is rebuilt from the resolved config), metadata is JSON, samples are a plain ``.npz`` read
with ``allow_pickle=False``. Every file is written atomically.
"""

import json
from pathlib import Path
from typing import Any

import equinox as eqx
import numpy as np

from ._atomic import atomic_path, write_text_atomic
from ._types import Bool, Float
from .errors import RunDirError

CHECKPOINT = "checkpoint.eqx"
METADATA = "model.json"
MLE = "mle.npz"
SAMPLES = "samples.npz"
CONFIG = "config.toml"
HISTORY = "history.csv"
NUTS = "nuts.npz"
DIAGNOSTICS = "nuts.json"


def save_state(path: Path, state) -> None:
    with atomic_path(path) as tmp:
        eqx.tree_serialise_leaves(tmp, state)


def load_state(path: Path, like):
    if not path.exists():
        raise RunDirError(f"{path.parent} holds no checkpoint ({path.name} is missing)")
    try:
        return eqx.tree_deserialise_leaves(path, like)
    except Exception as err:  # a truncated or foreign file: name it, never crash
        raise RunDirError(f"checkpoint {path} cannot be read: {err}") from None


def write_json(path: Path, obj: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunDirError(
            f"{path.parent} is not a run directory ({path.name} is missing)"
        ) from None
    except (OSError, json.JSONDecodeError) as err:
        raise RunDirError(f"{path} cannot be read: {err}") from None


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise RunDirError(f"{path} does not exist") from None
    except (OSError, ValueError) as err:
        raise RunDirError(f"{path} cannot be read: {err}") from None


def save_samples(
    path: Path,
    w: Float[np.ndarray, "M nw"],
    names: list[str] | tuple[str, ...],
    stochastic: Bool[np.ndarray, " nw"],
) -> None:
    """Write posterior samples in the INTERFACE.md layout: ``w``, ``names``, ``stochastic``."""
    save_arrays(
        Path(path),
        w=np.asarray(w),
        names=np.asarray(names, dtype=str),
        stochastic=np.asarray(stochastic, dtype=bool),
    )
