"""End-to-end demonstrations (METHOD section 11): simulate, fit each likelihood, report."""

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from . import metrics, plotting
from ._atomic import write_text_atomic
from .config import Config
from .data import save_trajectories
from .report import group_scores, predict_per_group, write_report
from .run import FittedRun, fit, sample_weights
from .systems.ou import OUSystem, OUWeightLaw, simulate_ou

OU_LIKELIHOODS = ("energy-score", "marginal-mixture", "gaussian")
OU_BASELINES = (("bbvi-full", "energy-score"), ("bbvi-full", "marginal-mixture"))
"""(method, likelihood) pairs the demo fits beside the Langevin sampler (the paper's Figs. 2-3
put BBVI with a full-covariance Gaussian beside it)."""


def ou_config(kind: str, *, quick: bool = False, seed: int = 0, method: str = "ls") -> Config:
    """The OU demonstration's configuration for one likelihood and method.

    A linear right-hand side ``dx/dt = w1 x + w2`` in the data's own units (no scaling), so the
    sampled weights are comparable with the analytic law of App. C. BBVI draws as many
    particles per step as the sampler has replicas.
    """
    aleatory = kind == "energy-score"
    epochs = 60 if quick else (2500 if aleatory else 600)
    replicas = 64 if quick else 256
    return Config.from_dict({
        "data": {"scaling": "none", "validation_fraction": 0.1},
        "model": {"R_hidden": []},
        "prior": {"mean": "mle", "scale": 1.0},
        "sampler": {"replicas": replicas, "steps": 40 if quick else 100,
                    "dtau": 0.025 if quick else 0.01, "drift_hidden": [32, 32],
                    "init_contraction": 0.5 if aleatory else 0.0,
                    "posterior_samples": 1000 if quick else 4096},
        "likelihood": {"kind": kind},
        "train": {"epochs": epochs, "lr": 1e-2, "mle_epochs": 2000,
                  "batch_trajectories": 256, "seed": seed, "checkpoint_every": 500},
        "method": {"kind": method, "particles": replicas},
    })  # fmt: skip


def drift_score_cosine(run: FittedRun, w_s: np.ndarray, law: OUWeightLaw) -> float:
    """Mean cosine similarity between the learned drift and the analytic score at the samples.

    The drift is taken at the pseudo-time of the last Euler-Maruyama step, the last drift the
    samples were moved by (``tau = T`` itself is never a step).
    """
    w = jnp.asarray(w_s, run.w_mle.dtype)
    sampler, drift = run.posterior.sampler, run.posterior.drift
    tau = sampler.taus[-2]
    f = jax.vmap(sampler.drift, in_axes=(None, 0, None))(drift, w, tau)
    score = law.score(w)
    cos = jnp.sum(f * score, -1) / (jnp.linalg.norm(f, axis=-1) * jnp.linalg.norm(score, axis=-1))
    return float(jnp.mean(cos))


def run_ou_demo(
    out: str | Path,
    *,
    quick: bool = False,
    seed: int = 0,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    system: OUSystem | None = None,
    likelihoods: tuple[str, ...] = OU_LIKELIHOODS,
    baselines: tuple[tuple[str, str], ...] = OU_BASELINES,
) -> dict[str, dict]:
    """The OU / Langevin demonstration (Sec. 4.1): Figs. 2-4 and the parameter table.

    Fits the Langevin sampler with each likelihood and the ``baselines`` (method, likelihood)
    beside it. Writes under ``out``: ``data.nc`` and ``heldout.nc``, one run directory per fit
    (``<likelihood>`` for LS, ``<method>-<likelihood>`` otherwise, each with its report),
    ``density_over_time.png`` (Fig. 2), ``weight_law.png`` (Fig. 3), ``w1_over_time.png``
    (Fig. 4) and ``parameter_table.txt``. Returns per-fit numbers.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if system is None:
        system = OUSystem(n=256, n_times=20) if quick else OUSystem()
    law = OUWeightLaw.from_system(system)
    data = simulate_ou(system, jr.key(seed))
    held_out = simulate_ou(system, jr.fold_in(jr.key(seed), 1))
    save_trajectories(data, out / "data.nc")
    save_trajectories(held_out, out / "heldout.nc")
    t = held_out.t[0]
    samples, panels, curves, results = {}, {"data": held_out.y[:, :, 0]}, {}, {}
    fits = [("ls", kind) for kind in likelihoods] + list(baselines)
    for method, kind in fits:
        label = kind if method == "ls" else f"{method}-{kind}"
        run_dir = out / label
        if run_dir.exists():  # a demo re-run replaces its own earlier output
            shutil.rmtree(run_dir)
        t0 = time.perf_counter()
        config = ou_config(kind, quick=quick, seed=seed, method=method)
        run = fit(data, config, run_dir=run_dir, progress=progress)
        seconds = time.perf_counter() - t0
        w = np.asarray(sample_weights(run, run.config.sampler.posterior_samples,
                                      jr.fold_in(jr.key(seed), 2)))  # fmt: skip
        y_rep, members = predict_per_group(run, held_out, w)
        scores, curve = group_scores(y_rep, held_out, members)
        name = f"LS {kind}" if method == "ls" else f"{method.upper()} {kind}"
        samples[name] = w
        panels[name] = y_rep[:, 0, :, 0]
        curves[name] = curve[:, 0]
        cosine = drift_score_cosine(run, w, law) if method == "ls" else float("nan")
        results[name] = {**scores, "fit seconds": seconds, "drift-score cosine": cosine}
        write_report(run_dir, held_out)
        echo(f"{name}: fitted in {seconds:.1f} s")
    reference = {"mean": np.asarray(law.mean()), "sd": np.asarray(law.sd()),
                 "corr": float(np.asarray(law.corr())[0, 1])}  # fmt: skip
    table = metrics.format_parameter_table(metrics.parameter_table(samples, reference))
    lines = [table, "", "| fit | " + " | ".join(next(iter(results.values()))) + " |"]
    lines.append("|---" * (1 + len(next(iter(results.values())))) + "|")
    for kind, res in results.items():
        lines.append(f"| {kind} | " + " | ".join(f"{v:.4g}" for v in res.values()) + " |")
    report = "\n".join(lines) + "\n"
    write_text_atomic(out / "parameter_table.txt", report)
    plotting.plot_density_over_time(t, panels, out / "density_over_time.png")
    plotting.plot_weight_law(
        samples, out / "weight_law.png", reference_log_density=lambda w: np.asarray(
            law.log_density(jnp.asarray(w))), reference_mean=reference["mean"],
    )  # fmt: skip
    plotting.plot_w1_over_time(t, curves, out / "w1_over_time.png")
    echo(report)
    return results
