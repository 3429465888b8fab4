"""The run directory's file formats: checkpoints, JSON metadata and arrays; no pickle anywhere.

Checkpoints are `equinox.tree_serialise_leaves` of the training state (the skeleton to read them
into is rebuilt from the resolved config), metadata is JSON, samples are a plain ``.npz`` read
with ``allow_pickle=False``. Every file is written atomically (a reader sees the old file or the
whole new one, whenever the writer is killed). Which file is which is `langevin_uq.rundir`'s.

Checkpoints and array files carry a SHA-256 of their content, verified on every load: a file
that was truncated, corrupted or edited is refused with `RunDirError`, never half-read. A
checkpoint is ``MAGIC``, the hex digest of the payload and a newline, then the payload; an
``.npz`` holds the digest of its other arrays (names, dtypes, shapes and bytes) as ``sha256``.
"""

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import equinox as eqx
import numpy as np

from ._atomic import atomic_path, write_text_atomic
from ._types import Bool, Float
from .errors import RunDirError

MAGIC = b"langevin-uq checkpoint 1\n"
DIGEST = "sha256"


def save_state(path: Path, state) -> None:
    """Write a training state (any pytree of arrays) with its checksum, atomically."""
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, state)
    payload = buffer.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_bytes(MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)


def load_state(path: Path, like):
    """Read a state written by `save_state` into the structure of ``like``, checksum verified."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise RunDirError(f"{path.parent} holds no checkpoint ({path.name} is missing)") from None
    except OSError as err:
        raise RunDirError(f"checkpoint {path} cannot be read: {err.strerror or err}") from None
    header = len(MAGIC) + 65
    if not raw.startswith(MAGIC) or len(raw) < header or raw[header - 1 : header] != b"\n":
        raise RunDirError(f"checkpoint {path} is not a langevin-uq checkpoint of this version")
    digest, payload = raw[len(MAGIC) : header - 1].decode("ascii", "replace"), raw[header:]
    if hashlib.sha256(payload).hexdigest() != digest:
        raise RunDirError(f"checkpoint {path} is corrupted or was modified (checksum mismatch)")
    try:
        return eqx.tree_deserialise_leaves(io.BytesIO(payload), like)
    except Exception as err:  # a valid file of another model: name it, never crash
        raise RunDirError(f"checkpoint {path} does not fit this run's model: {err}") from None


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


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of ``arrays`` (in name order)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    """Write ``arrays`` as an ``.npz`` with their checksum (entry ``sha256``), atomically."""
    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays, **{DIGEST: np.asarray(arrays_digest(arrays))})


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Read an ``.npz`` written by `save_arrays`; its checksum must match (no pickle)."""
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise RunDirError(f"{path} does not exist") from None
    except Exception as err:  # zip, header or pickle-refusal errors: name the file, never crash
        raise RunDirError(f"{path} cannot be read as an .npz file: {err}") from None
    digest = arrays.pop(DIGEST, None)
    if digest is None or digest.ndim != 0 or not digest.dtype.kind == "U":
        raise RunDirError(f"{path} carries no checksum; it was not written by langevin-uq")
    if str(digest) != arrays_digest(arrays):
        raise RunDirError(f"{path} is corrupted or was modified (checksum mismatch)")
    return arrays


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
