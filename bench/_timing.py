"""The benchmarks' clock: the best of a few calls after a warm-up (compilation excluded)."""

import time

import jax


def best_time(fn, *args, repeat: int = 5) -> float:
    """Seconds of the fastest of ``repeat`` calls of ``fn(*args)``, after one warm-up call,
    each waited for with `jax.block_until_ready`."""
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best
