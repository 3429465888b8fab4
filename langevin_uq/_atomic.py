"""Atomic file writing: a file is either absent, the old version, or the complete new one."""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`.

    The temporary file keeps `path`'s suffix so that writers choosing a format by extension
    (netCDF, ``.npz``) behave as they would on the final name. On any exception the temporary
    file is removed and `path` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path), suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    # mkstemp creates the file private (0600); give the result the mode a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def remove_stale_temporaries(directory: str | os.PathLike, names: tuple[str, ...]) -> None:
    """Delete `atomic_path` temporaries of ``names`` left in ``directory`` by a killed writer."""
    for name in map(Path, names):
        for tmp in Path(directory).glob(f"{_prefix(name)}*{name.suffix}"):
            tmp.unlink(missing_ok=True)


def _prefix(path: Path) -> str:
    """Start of the names of `atomic_path`'s temporaries for ``path``: hidden, then the stem."""
    return f".{path.stem}."
