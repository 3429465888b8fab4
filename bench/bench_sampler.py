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

from langevin_uq.prior import OUPrior
from langevin_uq.sampler import Drift, LangevinSampler, pseudo_time_grid


def bench_simulation(n_weights: int, replicas: int = 256, steps: int = 100) -> None:
    taus = pseudo_time_grid(steps, 0.01, "geometric", 1e-4)
    sampler = LangevinSampler(OUPrior(jnp.zeros(n_weights), 1.0), taus, jnp.zeros(n_weights), 0.01)
    drift = Drift(n_weights, [32, 32], time_dependent=True, key=jr.key(0))
    scan = eqx.filter_jit(lambda d, k: sampler.simulate(d, k, replicas)[:2])

    correction = jax.vmap(sampler.drift_correction, in_axes=(None, 0, None))

    @eqx.filter_jit
    def one_step(d, w, kl, remaining, dtau, k):
        g = correction(d, w, remaining)
        noise = jr.normal(k, w.shape)
        w = w + dtau * (sampler.prior.drift(w) + g) + jnp.sqrt(2 * dtau) * noise
        return w, kl + dtau * jnp.sum(g**2, -1) / 4

    remaining = np.asarray(sampler.remaining)

    def loop(d, key):
        w = jnp.zeros((replicas, n_weights)) + 0.01 * jr.normal(key, (replicas, n_weights))
        kl = jnp.zeros(replicas)
        for k in range(steps):
            dtau = remaining[k] - remaining[k + 1]
            w, kl = one_step(d, w, kl, remaining[k], dtau, jr.fold_in(key, k))
        return w, kl

    t_scan, t_loop = best_time(scan, drift, jr.key(1)), best_time(loop, drift, jr.key(1))
    print(f"simulate {n_weights:4d} weights, R={replicas}, S={steps}: scan {t_scan * 1e3:7.2f} ms, "
          f"python loop {t_loop * 1e3:7.2f} ms, loop/scan = {t_loop / t_scan:5.1f}x")  # fmt: skip


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
    bench_epoch()
