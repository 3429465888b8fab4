"""Benchmark: the sampler's scan against a Python loop over pseudo-time steps, same process.

Prints per-call times and their ratio for a simulation of R replicas over S Euler-Maruyama
steps (with the path KL), for the OU model (2 weights) and the Schloegl-sized model
(321 weights), and the time of one training epoch (ELBO value and gradient) on OU data.
Times exclude compilation (a warm-up call first) and use `block_until_ready`.
"""

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from _timing import best_time

from langevin_uq.htransform import GaussianStart
from langevin_uq.prior import OUPrior
from langevin_uq.sampler import Drift, LangevinSampler, auto_final_dtau, pseudo_time_grid


def _start(n_weights: int, rank: int = 16) -> GaussianStart:
    """A Gaussian start with ``rank`` informed directions of precisions 10..1e4."""
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(n_weights, min(rank, n_weights))))
    lam = np.geomspace(1e4, 10.0, q.shape[1])
    f32 = jnp.float32
    return GaussianStart(jnp.zeros(n_weights, f32), jnp.asarray(q, f32), jnp.asarray(lam, f32),
                         jnp.full(n_weights, 0.1, f32), float(lam.max()))  # fmt: skip


def bench_simulation(n_weights: int, replicas: int = 256, steps: int = 100) -> float:
    """Scan against a Python loop over steps; returns the scan's seconds per simulation."""
    start = _start(n_weights)
    taus = pseudo_time_grid(steps, 0.04, "geometric", auto_final_dtau(start.max_precision, 0.04))
    sampler = LangevinSampler(OUPrior(jnp.zeros(n_weights), 1.0), taus, jnp.zeros(n_weights), 0.01)
    drift = Drift(start, [32, 32], key=jr.key(0))
    scan = eqx.filter_jit(lambda d, k: sampler.simulate(d, k, replicas)[:2])

    @eqx.filter_jit
    def one_step(d, u, kl, remaining, h, k):
        g = sampler.drift_correction(d, u, remaining)
        c = -0.5 * jnp.expm1(-2 * h)
        u = jnp.exp(-h) * u + c * g + jnp.sqrt(2 * c) * jr.normal(k, u.shape)
        return u, kl + c * jnp.sum(g**2, -1) / 4

    remaining = np.asarray(sampler.remaining)

    def loop(d, key):
        u = 0.01 * jr.normal(key, (replicas, n_weights))
        kl = jnp.zeros(replicas)
        for k in range(steps):
            h = remaining[k] - remaining[k + 1]
            u, kl = one_step(d, u, kl, remaining[k], h, jr.fold_in(key, k))
        return u, kl

    t_scan, t_loop = best_time(scan, drift, jr.key(1)), best_time(loop, drift, jr.key(1))
    print(f"simulate {n_weights:4d} weights, R={replicas}, S={steps}: scan {t_scan * 1e3:7.2f} ms, "
          f"python loop {t_loop * 1e3:7.2f} ms, loop/scan = {t_loop / t_scan:5.1f}x")  # fmt: skip
    return t_scan


def bench_scaling() -> None:
    """Simulation time against the number of stochastic weights (rank 16), and the fitted
    exponent over 321-2000 weights (issue 16: linear cost, exponent at most 1.2)."""
    sizes = (28, 321, 838, 2000)
    times = [bench_simulation(n, replicas=128) for n in sizes]
    slope = np.polyfit(np.log(sizes[1:]), np.log(times[1:]), 1)[0]
    print(
        f"time ratio 2000 / 321 weights = {times[-1] / times[1]:.2f} (weights x6.2); "
        f"fitted exponent over 321-2000 weights: {slope:.2f}"
    )


def bench_epoch_scaling(epochs: int = 24) -> None:
    """Whole training epochs (the ELBO's value and gradient through the NODE, and the Adam step)
    against the number of weights: default config on 64 OU trajectories x 20 times, 128
    replicas x 100 steps, 1-h-h-1 NODEs. The per-epoch time is the median over the epochs after
    the first checkpoint chunk (whose time includes compilation), read from ``history.csv``."""
    import tempfile
    from pathlib import Path

    from langevin_uq.config import Config
    from langevin_uq.run import fit
    from langevin_uq.rundir import read_history
    from langevin_uq.systems.ou import OUSystem, simulate_ou

    data = simulate_ou(OUSystem(n=64, n_times=20), jr.key(0))
    sizes, times = [], []
    for hidden in (4, 16, 27, 43):
        config = Config().replace(
            model={"R_hidden": [hidden, hidden]},
            sampler={"replicas": 128, "steps": 100},
            train={"epochs": epochs, "mle_epochs": 100, "checkpoint_every": epochs // 2},
        )
        run_dir = Path(tempfile.mkdtemp()) / "run"
        run = fit(data, config, run_dir=run_dir)
        rows = read_history(run_dir / "history.csv")
        per_epoch = float(np.median([r[4] for r in rows[epochs // 2 :]]))
        sizes.append(run.partition.n_stochastic)
        times.append(per_epoch)
        print(f"epoch, {sizes[-1]} weights (1-{hidden}-{hidden}-1): {per_epoch * 1e3:.0f} ms")
    slope = np.polyfit(np.log(sizes[1:]), np.log(times[1:]), 1)[0]
    print(f"epoch time ratio {sizes[-1]} / {sizes[1]} weights = {times[-1] / times[1]:.2f} "
          f"(weights x{sizes[-1] / sizes[1]:.1f}); fitted exponent: {slope:.2f}")  # fmt: skip


def bench_epoch() -> None:
    from langevin_uq.demos import ou_config
    from langevin_uq.run import fit
    from langevin_uq.systems.ou import OUSystem, simulate_ou

    data = simulate_ou(OUSystem(), jr.key(0))
    for kind in ("energy-score", "gaussian"):
        cfg = ou_config(kind).replace(train={"epochs": 200, "mle_epochs": 50})
        t0 = time.perf_counter()
        fit(data, cfg)
        total = time.perf_counter() - t0
        cfg2 = cfg.replace(train={"epochs": 400})
        t0 = time.perf_counter()
        fit(data, cfg2)
        per_epoch = (time.perf_counter() - t0 - total) / 200
        print(f"OU training epoch ({kind}, R=256, batch 256, T=50): {per_epoch * 1e3:.1f} ms; "
              f"fit of 200 epochs incl. compile {total:.1f} s")  # fmt: skip


if __name__ == "__main__":
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}")
    bench_simulation(2)
    bench_simulation(321)
    bench_scaling()
    bench_epoch_scaling()
    bench_epoch()
