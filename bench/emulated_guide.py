"""Issue 16, item 4 (prototype): the Gauss-Newton guide on an emulator of the predictions.

The guide matches NUTS on the 321-weight NODE but solves the data model at every step of every
draw. Here a network ``u -> predictions`` (an emulator) is fitted to the data model's predictions
at weights around the posterior, and the same guide formula runs on the emulator: drawing then
evaluates no data model. Training points: ``--points nuts`` takes NUTS's draws (a feasibility
check); ``--points active`` starts from points around the MLE and adds, round by round, the
emulated guide's own draws and their paths (what the library can do without NUTS).

    .venv/bin/python bench/emulated_guide.py [--points active] [--hidden 256] [--rounds 3]

Measured (2026-12-02, one core, ``--points nuts``: 5000 NUTS draws plus 60000 points between
the start and them, an emulator ``321 -> [H, H] -> 26`` trained in noise units, i.e. errors in
sds of the data's mean): the emulator does not generalise to posterior draws it was not
trained on, so the guide drives the replicas to the emulator's own shell, not the data's.

    H    steps   train error   held-out NUTS draws   error at the draws   predictive W1 to NUTS
    256  4000    2.8           7.85                  33.1                 0.52
    512  20000   0.37          6.82                  34                   0.53

NUTS's draws misfit the data by 0.87 noise sds (rms), its predictive sd is 0.0096; the untrained
guide on the data model itself reaches W1 0.0016. Per-weight sd ratios to NUTS were 1.00 (100 %
in [0.8, 1.25]) in every run: prior-wide draws pass that figure, so it cannot judge a fit alone.
Nor was the emulator much cheaper: its Jacobian (26 reverse passes through the MLP) cost about
what the NODE's does (2000 draws in 105-180 s on one core, compilation included, against about
380 s for the guide on the data model on two).
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
from langevin_uq.htransform import GaussNewtonTransform
from langevin_uq.model import MLP
from langevin_uq.problem import predict_ensemble
from langevin_uq.run import fit, load_run

HERE = Path(__file__).parent


class Emulator(eqx.Module):
    """``y(w) ~ y_ref + y_sd * mlp((w - mean) / scale)``."""

    mlp: MLP
    mean: jax.Array
    scale: jax.Array
    y_ref: jax.Array
    y_sd: jax.Array

    def __call__(self, w):
        return self.y_ref + self.y_sd * self.mlp((w - self.mean) / self.scale)


class EmulatedTransform(GaussNewtonTransform):
    emulator: Emulator | None = None

    def predictions(self, w_s, inputs, w_d):
        return self.emulator(w_s)


def train_emulator(emu, u_pts, y_pts, root, steps, key, lr=1e-3, batch=512):
    """Least squares in noise units (``root`` = sqrt of the precision per prediction)."""
    opt = optax.adam(optax.cosine_decay_schedule(lr, steps))
    state = opt.init(eqx.filter(emu, eqx.is_array))
    n = u_pts.shape[0]

    def loss(emu, w, y):
        e = root * (jax.vmap(emu)(w) - y)
        return jnp.mean(optax.huber_loss(e, delta=10.0))

    @eqx.filter_jit
    def step(emu, state, key):
        idx = jr.randint(key, (batch,), 0, n)
        value, grad = eqx.filter_value_and_grad(loss)(emu, u_pts[idx], y_pts[idx])
        updates, state = opt.update(grad, state, emu)
        return eqx.apply_updates(emu, updates), state, value

    keys = jr.split(key, steps)
    for i in range(steps):
        emu, state, value = step(emu, state, keys[i])
    return emu, float(value)


def main(points: str, hidden: int, rounds: int, steps: int, n_draws: int, run_dir) -> None:
    relax = relaxation_data()
    config = Config.load(HERE / "schlogl_node_vs_nuts.toml").replace(
        sampler={"final_dtau": "auto"}, train={"diagnostics": False}
    )
    t0 = time.perf_counter()
    if run_dir is not None and (run_dir / "checkpoint.eqx").exists():
        run = load_run(run_dir)
    else:
        run = fit(relax, config, run_dir=run_dir or Path(tempfile.mkdtemp()) / "run")
    print(f"fit in {time.perf_counter() - t0:.0f} s", flush=True)
    sampler, drift = run.posterior.sampler, run.posterior.drift
    guide = drift.guide
    prior = sampler.prior
    nuts = dict(np.load(HERE / "out" / "node_nuts.npz"))
    ns = prior.mean.shape[0]
    root = jnp.sqrt(guide.precision).ravel()

    @jax.jit
    def truth(w_s):
        w = run.partition.join(w_s, guide.w_d)
        return predict_ensemble(run.partition, w, guide.inputs).reshape(w_s.shape[0], -1)

    def evaluate(w_s):
        chunks = np.array_split(np.asarray(w_s), max(1, len(w_s) // 4096))
        ys = [truth(jnp.asarray(c)) for c in chunks]
        y = np.concatenate([np.asarray(v) for v in ys])
        ok = np.all(np.isfinite(y), axis=1) & np.all(np.abs(y) < 1e3, axis=1)
        return np.asarray(w_s)[ok], np.clip(y[ok], -20, 20)

    rng = np.random.default_rng(0)
    y_mle = np.asarray(truth(prior.mean[None]))[0]

    def around(u_shell, n):
        """Points between the start and shell points: ``alpha u_T + beta xi``."""
        pick = u_shell[rng.integers(0, len(u_shell), n)]
        alpha = np.where(rng.random(n) < 0.5, 1.0, rng.random(n))[:, None]
        beta = 10 ** rng.uniform(-3, 0, n)[:, None]
        return alpha * pick + beta * rng.standard_normal((n, ns))

    if points == "nuts":
        u_shell = np.asarray(prior.whiten(jnp.asarray(nuts["w"][:5000])))
    else:
        u_shell = np.zeros((1, ns))
    _, y_n = evaluate(jnp.asarray(nuts["w"][-2000:]))
    nuts_misfit = np.sqrt(
        np.mean((np.asarray(root) * (y_n - np.asarray(guide.target).ravel())) ** 2)
    )
    u_all = np.concatenate([u_shell, around(u_shell, 60000)])
    w_pts, y_pts = evaluate(prior.unwhiten(jnp.asarray(u_all)))

    y_sd = jnp.asarray(np.maximum(y_pts.std(0), 1e-3))
    emu = Emulator(MLP(ns, y_mle.size, [hidden, hidden], "tanh", key=jr.key(3)), prior.mean,
                   prior.scale, jnp.asarray(y_mle), y_sd)  # fmt: skip
    transform = None

    @partial(jax.jit, static_argnums=2)
    def draw(transform, key, n):
        d = eqx.tree_at(lambda d: d.guide, drift, transform)
        return sampler.simulate(d, key, n)[0]

    for r in range(rounds):
        t0 = time.perf_counter()
        emu, last = train_emulator(emu, jnp.asarray(w_pts), jnp.asarray(y_pts), root, steps,
                                   jr.key(10 + r))  # fmt: skip

        def rms(w_s, y, emu=emu):
            e = np.asarray(root) * (np.asarray(jax.vmap(emu)(jnp.asarray(w_s))) - y)
            return np.sqrt(np.mean(e**2))

        w_held, y_held = evaluate(jnp.asarray(nuts["w"][-2000:]))
        recent = rms(w_pts[-2000:], y_pts[-2000:])
        print(f"round {r}: {len(w_pts)} points, emulator trained in {time.perf_counter() - t0:.0f}"
              f" s, loss {last:.3g}, rms error (noise sds): last points {recent:.3g}, "
              f"held-out NUTS draws {rms(w_held, y_held):.3g}", flush=True)  # fmt: skip
        transform = EmulatedTransform(guide.partition, guide.inputs, guide.w_d, guide.target,
                                      guide.precision, guide.iterations, emu)  # fmt: skip
        t0 = time.perf_counter()
        w = np.asarray(draw(transform, jr.key(7 + r), n_draws))
        jax.block_until_ready(w)
        dt = time.perf_counter() - t0
        w = w[np.all(np.isfinite(w), axis=1)]
        w_ok, y_ok = evaluate(jnp.asarray(w[:2000]))
        misfit = np.asarray(root) * (y_ok - np.asarray(guide.target).ravel())
        print(
            f"  at the draws: emulator rms error {rms(w_ok, y_ok):.3g} noise sds, true misfit "
            f"rms {np.sqrt(np.mean(misfit**2)):.3g} (NUTS: {nuts_misfit:.3g})",
            flush=True,
        )
        agree = nuts_agreement(run, relax, jnp.asarray(w), nuts)
        ratio, inside, w1 = agree["ratio"], agree["inside"], agree["w1"]
        print(f"  emulated guide, {len(w)} draws in {dt:.0f} s (with compilation): sd ratio "
              f"median {np.median(ratio):.3f} (10-90 %: {np.quantile(ratio, 0.1):.3f}-"
              f"{np.quantile(ratio, 0.9):.3f}), {inside:.0%} in [0.8, 1.25]; predictive W1 to "
              f"NUTS {w1:.4g} (NUTS spread {agree['spread']:.4g})",
              flush=True)  # fmt: skip
        if r < rounds - 1:  # add the draws and points on their way
            u_new = np.asarray(prior.whiten(jnp.asarray(w)))
            u_shell = u_new if points != "nuts" else np.concatenate([u_shell, u_new])
            w_new, y_new = evaluate(prior.unwhiten(jnp.asarray(
                np.concatenate([u_new, around(u_new, 30000)]))))  # fmt: skip
            w_pts, y_pts = np.concatenate([w_pts, w_new]), np.concatenate([y_pts, y_new])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", default="nuts", choices=("nuts", "active"))
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--run-dir", type=Path, default=None)
    args = parser.parse_args()
    main(args.points, args.hidden, args.rounds, args.steps, args.draws, args.run_dir)
