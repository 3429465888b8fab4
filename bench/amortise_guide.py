"""Issue 16, item 4: can a drift network carry the Gauss-Newton guide of the 321-weight NODE?

Fits the NODE of `schlogl_node_vs_nuts.toml` with the guide untrained (its draws match NUTS,
`node_vs_nuts.py`), then measures what an amortised drift would have to learn:

1. The guided chain's path KL to the prior, step by step (where in pseudo-time the guide acts).
2. The active subspace of the data term over the guided replicas, ``C = E[(J S)^T D (J S)]``
   (prior units, at states of the guided paths): how many directions the data inform somewhere
   on the posterior, against the 4 the linearisation at the MLE informs; and the share of the
   guide's path KL inside the top ``r`` of them (what a drift on an ``r``-dimensional
   projection can carry at best).
3. Distillation: an MLP over all weights, ``ns + 3 -> [H, H] -> ns`` (cost linear in ``ns``),
   fitted to the guide's drift along guided paths by the path KL from the guided chain to the
   network's (``sum_k c_k |g_net - g_guide|^2 / 4``), then drawn alone: sd ratio and predictive
   W1 to NUTS (``bench/out/node_nuts.npz``, written by `node_vs_nuts.py`).

    .venv/bin/python bench/amortise_guide.py [--hidden 128] [--iterations 3000]
"""

import argparse
import tempfile
import time
from functools import partial
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from _problem import nuts_agreement, relaxation_data

from langevin_uq.config import Config
from langevin_uq.model import MLP
from langevin_uq.problem import predict_groups
from langevin_uq.run import fit
from langevin_uq.rundir import read_metadata

HERE = Path(__file__).parent


def guided_paths(sampler, drift, key, n):
    """States ``u_k`` ``(S, n, ns)``, the drift there ``g_k`` and the step weights ``c_k``."""
    rem = sampler.remaining
    k0, k1 = jr.split(key)
    ns = sampler.init_center.shape[0]
    u0 = sampler.prior.whiten(sampler.init_center) + sampler.init_noise * jr.normal(k0, (n, ns))

    def step(u, inputs):
        left, h, k = inputs
        g = sampler.drift_correction(drift, u, left)
        c = -0.5 * jnp.expm1(-2 * h)
        return jnp.exp(-h) * u + c * g + jnp.sqrt(2 * c) * jr.normal(k, u.shape), (u, g, c)

    steps = (rem[:-1], rem[:-1] - rem[1:], jr.split(k1, rem.shape[0] - 1))
    return jax.lax.scan(step, u0, steps)[1]


class AllWeights(eqx.Module):
    """``g(u, tau) = o(u, phi(tau)) / sqrt(T - tau + eps)``: the guide's drift grows like the
    inverse square root of the remaining time until ``1 / eps`` (the data's largest precision)."""

    mlp: MLP
    total: float = eqx.field(static=True)
    eps: float = eqx.field(static=True)

    def __init__(self, ns, hidden, total, eps, key):
        mlp = MLP(ns + 3, ns, [hidden, hidden], "tanh", key=key)
        zero = (jnp.zeros_like(mlp.layers[-1].weight), jnp.zeros_like(mlp.layers[-1].bias))
        self.mlp = eqx.tree_at(lambda m: (m.layers[-1].weight, m.layers[-1].bias), mlp, zero)
        self.total, self.eps = total, eps

    def __call__(self, u, left):
        phi = jnp.stack([jnp.exp(-left), jnp.log((left + 1e-6) / (self.total + 1e-6)),
                         1 / (1 + left / self.eps)])  # fmt: skip
        z = jnp.concatenate([u, jnp.broadcast_to(phi, (u.shape[0], 3))], -1)
        return jax.vmap(self.mlp)(z) / jnp.sqrt(left + self.eps)


def main(hidden: int, iterations: int, replicas: int) -> None:
    relax = relaxation_data()
    config = Config.load(HERE / "schlogl_node_vs_nuts.toml").replace(
        sampler={"final_dtau": "auto"}, train={"diagnostics": False}
    )
    run_dir = Path(tempfile.mkdtemp()) / "run"
    run = fit(relax, config, run_dir=run_dir)
    sampler, drift = run.posterior.sampler, run.posterior.drift
    nuts = dict(np.load(HERE / "out" / "node_nuts.npz"))
    paths = jax.jit(partial(guided_paths, sampler, drift), static_argnums=1)
    t0 = time.perf_counter()
    batches = [paths(jr.key(10 + i), 128) for i in range(replicas // 128)]
    us, gs = (jnp.concatenate([b[j] for b in batches], 1) for j in (0, 1))
    cs = batches[0][2]
    print(f"{us.shape[1]} guided paths in {time.perf_counter() - t0:.0f} s")
    per = np.asarray(cs)[:, None] * np.asarray(jnp.sum(gs**2, -1)) / 4
    print(
        f"guided path KL per replica {per.sum(0).mean():.3g} nats; by tenths of the steps:",
        np.round(np.add.reduceat(per.mean(1), np.arange(0, per.shape[0], per.shape[0] // 10)), 2),
    )

    guide = drift.guide
    scale = np.asarray(sampler.prior.scale) * np.ones(us.shape[-1])
    root = np.sqrt(np.asarray(guide.precision).ravel())

    def predictions(w):
        return predict_groups(run.partition, run.partition.join(w, run.w_d), guide.inputs).ravel()

    jac = jax.jit(jax.jacrev(predictions))
    points = np.concatenate([np.asarray(us[k, ::8]) for k in (60, 80, 99)])
    rows = [root[:, None] * np.asarray(jac(sampler.prior.unwhiten(jnp.asarray(u)))) * scale
            for u in points]  # fmt: skip
    b = np.concatenate(rows)
    lam, vecs = np.linalg.eigh(b.T @ b / len(points))
    lam, vecs = lam[::-1], vecs[:, ::-1]
    print(
        f"active subspace over {len(points)} guided states: {int(np.sum(lam >= 1))} of "
        f"{lam.size} eigenvalues >= 1 (top: {np.round(lam[:4], 0)})"
    )
    g_all = np.asarray(gs)
    total_kl = (np.asarray(cs)[:, None] * (g_all**2).sum(-1)).sum()
    for r in (4, 16, 64, 128):
        inside = np.einsum("snd,dr->snr", g_all, vecs[:, :r])
        share = (np.asarray(cs)[:, None] * (inside**2).sum(-1)).sum() / total_kl
        print(f"  share of the guide's path KL in the top {r} directions: {share:.3f}")

    eps = 1.0 / read_metadata(run_dir)["drift"]["max_precision"]  # the MLE's largest precision
    net = AllWeights(us.shape[-1], hidden, float(sampler.total_time), eps, jr.key(1))
    lefts = sampler.remaining[:-1]

    def loss(net, u, g):
        def one(u_k, g_k, c_k, left):
            return c_k * jnp.sum((net(u_k, left) - g_k) ** 2, -1) / 4

        return jnp.mean(jnp.sum(jax.vmap(one)(u, g, cs, lefts), 0))

    opt = optax.adam(optax.cosine_decay_schedule(1e-3, iterations))
    state = opt.init(eqx.filter(net, eqx.is_array))

    @eqx.filter_jit
    def step(net, state, key):
        idx = jr.choice(key, us.shape[1], (128,), replace=False)
        value, grad = eqx.filter_value_and_grad(loss)(net, us[:, idx], gs[:, idx])
        updates, state = opt.update(grad, state, net)
        return eqx.apply_updates(net, updates), state, value

    t0 = time.perf_counter()
    for it in range(iterations):
        net, state, value = step(net, state, jr.key(100 + it))
        if it % max(iterations // 6, 1) == 0 or it == iterations - 1:
            print(
                f"  distillation {it}: path KL guided -> network {float(value):.3g} nats "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )

    @partial(jax.jit, static_argnums=1)
    def draw(key, n):
        k0, k1 = jr.split(key)
        ns = sampler.init_center.shape[0]
        u0 = sampler.prior.whiten(sampler.init_center) + sampler.init_noise * jr.normal(k0, (n, ns))
        rem = sampler.remaining

        def st(u, inputs):
            left, h, k = inputs
            g = drift.tilt(u, left) + net(u, left)
            c = -0.5 * jnp.expm1(-2 * h)
            return jnp.exp(-h) * u + c * g + jnp.sqrt(2 * c) * jr.normal(k, u.shape), None

        steps = (rem[:-1], rem[:-1] - rem[1:], jr.split(k1, rem.shape[0] - 1))
        return sampler.prior.unwhiten(jax.lax.scan(st, u0, steps)[0])

    w = np.asarray(draw(jr.key(7), 4000))
    agree = nuts_agreement(run, relax, jnp.asarray(w), nuts)
    ratio = agree["ratio"]
    print(
        f"network alone: sd ratio to NUTS median {np.median(ratio):.3f} (10-90 %: "
        f"{np.quantile(ratio, 0.1):.3f}-{np.quantile(ratio, 0.9):.3f}); predictive W1 to NUTS "
        f"{agree['w1']:.4g} (NUTS spread {agree['spread']:.4g})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--replicas", type=int, default=1024)
    args = parser.parse_args()
    main(args.hidden, args.iterations, args.replicas)
