"""Named random streams: every key the library derives from an integer seed.

``stream(seed, name)`` is ``jr.key(seed)`` with a fixed 31-bit tag of ``name`` folded in. The
tag is what matters: with JAX's default threefry keys, ``fold_in(key(s), i)`` equals
``split(key(s))[i]`` for small ``i``, so keys derived with small integers coincide with the keys
a user's own code derives from the same seed. That happened: ``fit`` drew its validation split
from ``fold_in(key(0), 0)``, the key ``simulate_ou(..., key(0))`` draws theta and mu from, and
the permutation followed the draws: the 10 % held out were the lowest-``w2`` trajectories and
the training set's sd(w2) was 12 % below the law's.
"""

import zlib

import jax.random as jr

from ._types import PRNGKeyArray


def stream(seed: int, name: str) -> PRNGKeyArray:
    """The key of the stream ``name`` of integer ``seed`` (a pure function of both)."""
    tag = zlib.crc32(f"langevin-uq/{name}".encode()) & 0x7FFFFFFF
    return jr.fold_in(jr.key(seed), tag)


FIT_STREAMS = ("split", "model", "drift", "train", "samples")
"""The streams of `langevin_uq.run.fit`: validation split, data-model init, drift init,
training (NUTS chains) and the run's posterior samples."""


def fit_keys(seed: int) -> dict[str, PRNGKeyArray]:
    """The keys of `FIT_STREAMS` for integer ``seed``: ``stream(seed, "fit/<name>")``."""
    return {name: stream(seed, f"fit/{name}") for name in FIT_STREAMS}
