"""A hybrid model through the Python API: known first-order decay plus a small network term.

    dh/dt = -k h + h^2 / (1 + h^2) g_net(h),        h(0) = y0 (from the data)

The decay rate ``k`` is physics with an unknown value; ``g_net`` (1-8-1, tanh) learns the
source term that the physics leaves out. The factor ``h^2 / (1 + h^2)`` is what we know of the
source: second order in h for small h, which keeps ``k`` identifiable (a free network term
could absorb any part of ``-k h``, and the posterior of ``k`` would be as wide as the network
allows), and saturating, so that no weight draw makes a trajectory blow up in finite time (with
``h^2 g_net(h)`` some replicas did, and the fit stopped at epoch 12: "the data model overflowed
for some replicas"). The data come from ``f(h) = 0.8 h^2 / (1 + h^2)``,
k = 0.5, with 16 trajectories started at different amounts. The rate and the network's last
layer are sampled; the network's first layer stays at its MLE (``partition.rest = "fixed"``).

Run ``python hybrid.py [OUT]``; ``--quick`` runs a small fit (what the test suite does).
"""

import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import langevin_uq as lu
from langevin_uq.data import Trajectories
from langevin_uq.datamodel import solve


class DecayWithSource(eqx.Module):
    log_k: jax.Array
    net: eqx.nn.MLP

    def __init__(self, *, key):
        self.log_k = jnp.zeros(1)  # k = 1 to start with
        self.net = eqx.nn.MLP(1, 1, 8, 1, activation=jnp.tanh, key=key)

    def vector_field(self, t, h, x):
        return -jnp.exp(self.log_k) * h + h**2 / (1 + h**2) * self.net(h)


class _Truth(eqx.Module):
    def vector_field(self, t, h, x):
        return -0.5 * h + 0.8 * h**2 / (1 + h**2)


def simulate(n: int = 16, seed: int = 0) -> Trajectories:
    """``n`` trajectories on 25 times in [0, 8], noise sd 0.02."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 8.0, 25)
    y0 = rng.uniform(0.2, 2.5, size=(n, 1))
    path = jax.vmap(lambda h0: solve(_Truth(), jnp.asarray(t), jnp.zeros((25, 0)), h0, 20))
    y = np.asarray(path(jnp.asarray(y0))) + 0.02 * rng.standard_normal((n, 25, 1))
    return Trajectories(t=np.broadcast_to(t, (n, 25)).copy(), y=y, x=None, y0=y0,
                        group=np.arange(n))  # fmt: skip


def main(out: Path, quick: bool = False) -> dict:
    data = simulate()
    config = lu.Config.from_dict({
        "partition": {"stochastic": ["log_k", "net.layers.1"]},
        "prior": {"scale": {"log_k": 1.0, "net": 0.5}},
        "likelihood": {"sigma": "learn"},
        "train": {"epochs": 30 if quick else 1000, "mle_epochs": 300 if quick else 3000,
                  "diagnostics": not quick},
        "sampler": {"replicas": 32 if quick else 256},
    })  # fmt: skip
    model = DecayWithSource(key=jr.key(0))
    run = lu.fit(data, config, model=model, run_dir=out / "run")
    again = lu.load_run(out / "run", model=model)  # the same structure; its values are replaced
    w = np.asarray(lu.sample_weights(again, 1000, jr.key(1)))
    k = np.exp(w[:, again.partition.names.index("log_k[0]")])
    sigma = np.exp(w[:, again.partition.names.index("log_sigma[0]")])
    summary = {"k_mean": float(k.mean()), "k_sd": float(k.std()),
               "sigma_mean": float(sigma.mean()), "epochs": run.epoch}  # fmt: skip
    print(f"k = {k.mean():.3f} +- {k.std():.3f} (true 0.5); "
          f"noise sd {sigma.mean():.4f} (true 0.02)")  # fmt: skip
    return summary


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--quick"]
    main(Path(args[0]) if args else Path("hybrid-out"), quick="--quick" in sys.argv)
