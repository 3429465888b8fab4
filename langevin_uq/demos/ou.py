"""The OU / Langevin demonstration (Sec. 4.1, METHOD section 11): Figs. 2-4 and the parameter
table, with the sampled weights checked against the analytic law of App. C."""

from collections.abc import Callable
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from .. import metrics, plotting
from .._atomic import write_text_atomic
from ..config import Config
from ..data import save_trajectories
from ..run import FittedRun
from ..seeding import stream
from ..systems.ou import OUSystem, OUWeightLaw, simulate_ou
from ._common import fit_and_score, markdown_table

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
    epochs = 60 if quick else (1500 if aleatory else 600)
    # The energy score's pull on sd(w1) is weak against its Monte Carlo noise: at lr 1e-2 the
    # sampler collapsed sd(w1) to 0.14x on one of four OU data sets; at 3e-3 all four stayed
    # within 7 % (issue 2 note).
    lr = 3e-3 if aleatory and method == "ls" and not quick else 1e-2
    replicas = 64 if quick else 256
    return Config.from_dict({
        "data": {"scaling": "none", "validation_fraction": 0.1},
        "model": {"R_hidden": []},
        "prior": {"mean": "mle", "scale": 1.0},
        "sampler": {"replicas": replicas, "steps": 40 if quick else 100,
                    "dtau": 0.1 if quick else 0.04, "drift_hidden": [32, 32],
                    "posterior_samples": 1000 if quick else 4096},
        "likelihood": {"kind": kind},
        "train": {"epochs": epochs, "lr": lr, "mle_epochs": 2000,
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
    f = sampler.score(drift, w, sampler.remaining[-2])
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
    resume: bool = False,
) -> dict[str, dict]:
    """The OU / Langevin demonstration (Sec. 4.1): Figs. 2-4 and the parameter table.

    Fits the Langevin sampler with each likelihood and the ``baselines`` (method, likelihood)
    beside it. Writes under ``out``: ``data.nc`` and ``heldout.nc``, one run directory per fit
    (``<likelihood>`` for LS, ``<method>-<likelihood>`` otherwise, each with its report),
    ``density_over_time.png`` (Fig. 2), ``weight_law.png`` (Fig. 3), ``w1_over_time.png``
    (Fig. 4) and ``parameter_table.txt``. Returns per-fit numbers. With ``resume``, fits
    already in ``out`` are loaded or continued instead of fitted again.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if system is None:
        system = OUSystem(n=256, n_times=20) if quick else OUSystem()
    law = OUWeightLaw.from_system(system)
    data = simulate_ou(system, stream(seed, "demo/data"))
    held_out = simulate_ou(system, stream(seed, "demo/held-out"))
    save_trajectories(data, out / "data.nc")
    save_trajectories(held_out, out / "heldout.nc")
    t = held_out.t[0]
    samples, panels, curves, results = {}, {"data": held_out.y[:, :, 0]}, {}, {}
    fits = [("ls", kind) for kind in likelihoods] + list(baselines)
    for method, kind in fits:
        label = kind if method == "ls" else f"{method}-{kind}"
        config = ou_config(kind, quick=quick, seed=seed, method=method)
        fitted = fit_and_score(data, held_out, config, out / label, seed, progress, resume)
        name = f"LS {kind}" if method == "ls" else f"{method.upper()} {kind}"
        samples[name] = fitted.w
        panels[name] = fitted.y_rep[:, 0, :, 0]
        curves[name] = fitted.curve[:, 0]
        cosine = drift_score_cosine(fitted.run, fitted.w, law) if method == "ls" else float("nan")
        results[name] = {**fitted.scores, "fit seconds": fitted.seconds,
                         "drift-score cosine": cosine}  # fmt: skip
        echo(f"{name}: fitted in {fitted.seconds:.1f} s")
    reference = {"mean": np.asarray(law.mean()), "sd": np.asarray(law.sd()),
                 "corr": float(np.asarray(law.corr())[0, 1])}  # fmt: skip
    table = metrics.format_parameter_table(metrics.parameter_table(samples, reference))
    report = table + "\n\n" + markdown_table("fit", results)
    write_text_atomic(out / "parameter_table.txt", report)
    plotting.plot_density_over_time(t, panels, out / "density_over_time.png")
    plotting.plot_weight_law(
        samples, out / "weight_law.png", reference_log_density=lambda w: np.asarray(
            law.log_density(jnp.asarray(w))), reference_mean=reference["mean"],
    )  # fmt: skip
    plotting.plot_w1_over_time(t, curves, out / "w1_over_time.png")
    echo(report)
    return results
