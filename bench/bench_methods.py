"""Benchmark: the Langevin sampler against BBVI and NUTS on one posterior, same process.

The OU model (2 weights, ``dx/dt = w1 x + w2``) with the ``gaussian`` likelihood on 64 noisy
trajectories: a posterior that all three methods target. For each method: wall time of the
whole fit (MLE, compilation and training or warm-up included), time per training epoch, and
the posterior sds against NUTS's. Prints the ratios of wall times to NUTS's.
"""

import time

import jax
import jax.random as jr
import numpy as np

from langevin_uq.config import Config
from langevin_uq.run import fit, sample_weights
from langevin_uq.systems.ou import OUSystem, simulate_ou

CONFIG = {
    "data": {"scaling": "none", "validation_fraction": 0.0},
    "model": {"R_hidden": []},
    "likelihood": {"kind": "gaussian", "sigma": 0.05},
    "sampler": {"replicas": 256, "steps": 100},
    "train": {"epochs": 600, "mle_epochs": 2000, "batch_trajectories": 0},
    "method": {"particles": 256, "warmup": 1000, "samples": 2000, "chains": 4},
}


def main() -> None:
    devices = jax.local_device_count()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {devices} device(s)")
    data = simulate_ou(OUSystem(n=64, n_times=20), jr.key(0), noise_sd=0.05)
    base = Config.from_dict(CONFIG)
    results = {}
    for kind in ("nuts", "ls", "bbvi-full", "bbvi-meanfield"):
        t0 = time.perf_counter()
        run = fit(data, base.replace(method={"kind": kind}))
        seconds = time.perf_counter() - t0
        w = np.asarray(sample_weights(run, 8000, jr.key(1)))
        results[kind] = (seconds, w.std(axis=0), run)
    t_nuts, sd_nuts, nuts = results["nuts"]
    d = nuts.diagnostics
    print(f"nuts: {t_nuts:6.1f} s ({d['chains']} chains x {d['draws_per_chain']}, "
          f"{d['chain_method']}), ESS min {d['ess_min']:.0f}, ESS/s {d['ess_per_second_min']:.1f}, "
          f"{d['divergences']} divergences")  # fmt: skip
    for kind in ("ls", "bbvi-full", "bbvi-meanfield"):
        seconds, sd, _ = results[kind]
        ratio = " ".join(f"{r:.3f}" for r in sd / sd_nuts)
        print(f"{kind:15s}: {seconds:6.1f} s, {seconds / t_nuts:5.2f}x NUTS's time; "
              f"sd / NUTS sd = {ratio}")  # fmt: skip


if __name__ == "__main__":
    main()
