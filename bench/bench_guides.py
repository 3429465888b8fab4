"""Benchmark: what a guided starting drift costs per training epoch, same process.

On the LS-vs-NUTS problem of `bench/schlogl_node_vs_nuts.toml` (the 1-16-16-1 tanh NODE,
321 stochastic weights, 4 noisy trajectories on 26 times), the value and gradient of the
sampler's part of the ELBO (R = 256 replicas, S = 100 steps, drift MLP 101-101) with
``sampler.drift_init`` = prior, laplace and gauss-newton. Prints per-call times and their
ratios to the prior start. Times exclude compilation (a warm-up call first).
"""

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from _timing import best_time

from langevin_uq.config import Config
from langevin_uq.run import fit
from langevin_uq.systems.ou import OUSystem, simulate_ou

CONFIG = Path(__file__).with_name("schlogl_node_vs_nuts.toml")


@eqx.filter_jit
def _value_and_grad(sampler, drift, key, replicas: int):
    def loss(d):
        w, kl, _ = sampler.simulate(d, key, replicas)
        return jnp.mean(kl) + jnp.mean(w**2)

    return eqx.filter_value_and_grad(loss)(drift)


def main() -> None:
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}")
    system = OUSystem(n=4, n_times=26, theta_sd=0.0, mu_sd=0.0)
    data = simulate_ou(system, jr.key(0), noise_sd=0.05)
    base = Config.load(CONFIG).replace(train={"epochs": 1, "lr_warmup": 0, "mle_epochs": 300})
    times = {}
    for init in ("prior", "laplace", "gauss-newton"):
        run = fit(data, base.replace(sampler={"drift_init": init}))
        posterior = run.posterior
        times[init] = best_time(_value_and_grad, posterior.sampler, posterior.drift, jr.key(1),
                            base.sampler.replicas, repeat=3)  # fmt: skip
        print(f"drift_init = {init:12s}: {times[init]:7.3f} s per value and gradient, "
              f"{times[init] / times['prior']:5.1f}x the prior start")  # fmt: skip


if __name__ == "__main__":
    main()
