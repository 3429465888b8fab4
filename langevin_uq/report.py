"""A run's report: figures and a summary table under ``RUN_DIR/report/`` (METHOD section 10)."""

import math
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from . import metrics, plotting, rundir
from ._atomic import write_text_atomic
from ._types import Float
from .data import Trajectories, groups
from .errors import DataError
from .prediction import run_samples
from .prepare import relabel_groups
from .run import FittedRun, load_run, predict
from .sample_quality import no_density, run_diagnostics
from .seeding import stream


def predict_per_group(
    run: FittedRun, data: Trajectories, w: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The predictive ensemble once per condition group, ``(M, G, T, ny)``, and the groups.

    Members of a group share their inputs, so one prediction serves them all; this keeps the
    memory of scoring a large held-out population at ``M * G * T`` instead of ``M * N * T``.
    """
    members = groups(data)
    y_rep = predict(run, data.subset([g[0] for g in members]), jnp.asarray(w))
    return y_rep, members


def group_scores(
    y_rep: np.ndarray, data: Trajectories, members: list[np.ndarray]
) -> tuple[dict[str, float], np.ndarray]:
    """Scores of per-group predictive ensembles ``(M, G, T, ny)`` against the groups' data.

    Each condition group is scored as one population: W1 per time and output between the group's
    data and its ensemble (Eq. 27), pooled 50/90 % band coverage, and the energy score of whole
    trajectories. Returns the summary numbers (weighted by group size) and the W1 curve
    ``(T, ny)`` averaged over groups.
    """
    sizes = np.array([len(g) for g in members], dtype=float)
    w1, cov50, cov90, es = [], [], [], []
    for k, g in enumerate(members):
        ens = y_rep[:, k]
        w1.append(metrics.w1_over_time(data.y[g], ens))
        cov = metrics.coverage_pooled(ens, data.y[g], (0.5, 0.9))
        cov50.append(cov[0.5])
        cov90.append(cov[0.9])
        flat = ens.reshape(len(ens), -1)
        es.append(metrics.energy_score(flat, data.y[g].reshape(len(g), -1)))
    weight = sizes / sizes.sum()
    w1 = np.asarray(w1)
    curve = np.tensordot(weight, w1, axes=1)
    summary = {
        "W1 mean over time": float(curve.mean()),
        "W1 max over time": float(curve.max()),
        "coverage 50%": float(weight @ np.asarray(cov50)),
        "coverage 90%": float(weight @ np.asarray(cov90)),
        "energy score": float(weight @ np.asarray(es)),
    }
    return summary, curve


ALEATORY_LIKELIHOODS = ("energy-score", "marginal-mixture")
"""Likelihoods whose predictive ensemble stands for the spread of the data themselves: the
PIT of held-out values is uniform when it is calibrated. (The gaussian likelihood's ensemble
leaves out the observation noise, so its PIT is U-shaped by construction.)"""

PIT_OUTER = (0.12, 0.30)
"""The band of the outer-decile PIT fraction (calibrated: 0.2) outside which `pit_line` says the
bands are too wide or too narrow: PIT values of one trajectory are correlated across times,
so the fraction scatters far more than a binomial count of all values would."""


def pit_line(pit: Float[np.ndarray, " n"]) -> str:
    """One summary line for held-out PIT values: the fraction in the outer deciles (0.2 when
    calibrated), the mean (0.5), and a plain-words reading when the fraction leaves
    `PIT_OUTER`."""
    outer = float(np.mean((pit < 0.1) | (pit > 0.9)))
    line = (f"- PIT of {pit.size} held-out values (pit.png): {100 * outer:.3g} % in the outer "
            f"deciles (calibrated: 20 %), mean {np.mean(pit):.3f} (0.5)")  # fmt: skip
    if outer > PIT_OUTER[1]:
        return line + "; the predictive bands are too narrow for the held-out data"
    if outer < PIT_OUTER[0]:
        return line + "; the predictive bands are wider than the held-out data's spread"
    return line


START_STRAIN = 1.0
"""A Gaussian start whose calibrated extra precision exceeds this (prior units) held the
uninformed directions below 0.71 of the prior's sd: `start_lines` says so."""


def start_lines(drift: dict | None) -> list[str]:
    """The report's lines on the Langevin drift's Gaussian start (``model.json["drift"]``).

    The start's extra precision for the directions its linearisation leaves uninformed is chosen
    by the ELBO (`langevin_uq.htransform.calibrate_start`). A large one means prior-wide Gaussian
    replicas missed the data there: the posterior is far from Gaussian, and the Gaussian family
    narrows what it cannot bend. On the 321-weight NODE of `bench/schlogl_node_vs_nuts.toml` the
    ELBO took 10 (every sd 0.31x a long NUTS run's; 0.55x after 300 epochs), where the
    Gauss-Newton guide matched NUTS's sds within 3 %.
    """
    if not drift or drift.get("start_extra_precision") is None:
        return []
    extra, rank = float(drift["start_extra_precision"]), drift["rank"]
    line = (f"- start: Gaussian, rank {rank} from the linearised data model, extra precision "
            f"{extra:g} (ELBO's choice) for the other directions")  # fmt: skip
    if extra <= START_STRAIN:
        return [line]
    sd = 1 / math.sqrt(1 + extra)
    return [
        line,
        f"- caution: the ELBO held those directions at {sd:.2g} of the prior's sd: the posterior "
        "is far from Gaussian there and this sampler's sds may be too narrow; compare with "
        'sampler.drift_init = "gauss-newton" and train.epochs = 0 (it solves the model at every '
        "step of every draw), or with NUTS (`langevin-uq compare --methods ls,nuts`)",
    ]


def _training_line(run: FittedRun) -> str:
    cfg = run.config
    kind = cfg.method.kind
    if kind == "ls":
        return (f"- epochs: {run.epoch}; replicas {cfg.sampler.replicas}, steps "
                f"{cfg.sampler.steps}, beta {cfg.train.beta}")  # fmt: skip
    if kind == "nuts":
        return f"- NUTS warm-up {cfg.method.warmup}, draws {cfg.method.samples} per chain"
    return f"- epochs: {run.epoch}; particles {cfg.method.particles}, beta {cfg.train.beta}"


def _ksd(run: FittedRun, run_dir: Path, meta: dict, data: Trajectories | None) -> dict | None:
    """The run's KSD diagnostics: computed from ``data``, else read from ``ksd.json``."""
    if (answer := no_density(run)) is not None:
        return answer
    if data is not None:
        if rundir.data_digest(relabel_groups(data)) != meta.get("data_sha256"):
            raise DataError(
                f"the data passed as training data differ from the data {run_dir} was fitted "
                "to; the KSD needs the run's own training data"
            )
        return run_diagnostics(run, data, stream(run.config.train.seed, "report/ksd"))
    return rundir.read_ksd(run_dir)


def ksd_lines(diagnostics: dict | None) -> list[str]:
    """The summary's KSD line, verdict line and pseudo-time grid line for `run_diagnostics`'s
    dict (or ``None``)."""
    if diagnostics is None:
        return ["- KSD: not computed (the report needs the run's training data for it)"]
    grid = _grid_lines(diagnostics.get("discretisation"))
    if diagnostics.get("ksd") is None:
        return [f"- KSD: none; {diagnostics['why']}", *grid]
    d = diagnostics
    spread = ""
    if d.get("dispersion") is not None:  # absent from run directories written before it
        spread = f"; Stein dispersion {d['dispersion']:.3g} +- {d['dispersion_se']:.2g}"
    return [
        f"- KSD of {d['n']} draws of {d['dimension']} stochastic weights: {d['ksd']:.4g}, "
        f"{d['ratio']:.3g}x the reference of exact Gaussian draws; U-statistic {d['z']:.3g} "
        f"null sds above 0 (p = {d['p']:.2g}){spread}",
        f"- verdict: {d['verdict'] or 'no disagreement between samples and posterior detected'}",
        *grid,
    ]


def _grid_lines(check: dict | None) -> list[str]:
    if check is None:
        return []
    if check["verdict"]:
        return [f"- pseudo-time grid: {check['verdict']}"]
    return [
        f"- pseudo-time grid: twice the {check['steps']} steps moves no weight's mean by more "
        f"than {check['mean_shift']:.3g} sds nor its sd by more than "
        f"{100 * math.expm1(check['sd_change']):.3g} % (within the Monte Carlo tolerances of "
        f"{check['draws']} draws)"
    ]


def write_report(
    run_dir: str | Path,
    held_out: Trajectories | None = None,
    *,
    data: Trajectories | None = None,
) -> str:
    """Write ``report/`` for a run and return its summary as Markdown text.

    Always: the training history and the posterior-sample statistics. With ``held_out`` data:
    the predictive bands of the largest condition group, W1 over time and the scores of
    `group_scores`. The KSD line and its verdict (`langevin_uq.sample_quality.run_diagnostics`,
    also written to ``report/ksd.json``) need the run's training data: from ``data``, or from
    the run's ``ksd.json`` when the run directory has one.

    Raises:
        DataError: ``data`` are not the data the run was fitted to.
    """
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    meta = rundir.read_metadata(run_dir)
    diagnostics = _ksd(run, run_dir, meta, data)
    out = run_dir / "report"
    out.mkdir(exist_ok=True)
    history_file = run_dir / rundir.HISTORY
    history = np.empty(0)
    if history_file.exists():
        history = np.genfromtxt(history_file, delimiter=",", names=True, ndmin=1)
    lines = [f"# Report: {run_dir.name}", ""]
    cfg = run.config
    lines += [
        f"- method: {cfg.method.kind}",
        f"- likelihood: {cfg.likelihood.kind} (time_reduction = {cfg.likelihood.time_reduction})",
        f"- partition: {cfg.partition.variant}, {run.partition.n_stochastic} of "
        f"{run.partition.n_weights} weights sampled",
        _training_line(run),
        *start_lines(meta.get("drift")),
        f"- MLE: train MSE {meta['mle']['train_mse']:.4g}, validation MSE "
        f"{meta['mle']['validation_mse']:.4g} (scaled units)",
        *ksd_lines(diagnostics),
    ]
    if diagnostics is not None:
        rundir.write_ksd(out, diagnostics)
    if run.diagnostics is not None:
        d = run.diagnostics
        lines.append(
            f"- NUTS: {d['chains']} chains x {d['draws_per_chain']} draws ({d['chain_method']}), "
            f"R-hat max {d['r_hat_max']:.4f}, ESS min {d['ess_min']:.0f} "
            f"({d['ess_per_second_min']:.3g}/s), {d['divergences']} divergences"
        )
    if history.size:
        last = history[-1]
        lines.append(
            f"- last epoch: loss {last['loss']:.5g}, nll {last['nll']:.5g}, kl {last['kl']:.5g}"
        )
        plotting.plot_history({k: history[k] for k in history.dtype.names}, out / "history.png")
    w = np.asarray(run_samples(run, run_dir, None, 0))
    w_s = w[:, run.partition.stochastic_mask]
    stats = metrics.weight_statistics(w_s)
    names = [run.partition.names[i] for i in run.partition.stochastic_index]
    lines += ["", "| weight | mean | sd |", "|---|---|---|"]
    lines += [f"| {n} | {m:.5g} | {s:.5g} |" for n, m, s in
              zip(names[:20], stats["mean"], stats["sd"], strict=False)]  # fmt: skip
    if len(names) > 20:
        lines.append(f"| ... {len(names) - 20} more | | |")
    if held_out is not None:
        y_rep, members = predict_per_group(run, held_out, w)
        summary, curve = group_scores(y_rep, held_out, members)
        lines += ["", "| held-out metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" for k, v in summary.items()]
        k = int(np.argmax([len(g) for g in members]))
        t = held_out.t[members[k][0]]
        plotting.plot_predictive_bands(
            t, held_out.y[members[k]][..., 0], y_rep[:, k, :, 0], out / "bands.png"
        )
        plotting.plot_w1_over_time(t, {"held-out": curve[:, 0]}, out / "w1_over_time.png")
        if cfg.likelihood.kind in ALEATORY_LIKELIHOODS:
            pit = np.concatenate([metrics.pit_pooled(y_rep[:, k], held_out.y[g]).ravel()
                                  for k, g in enumerate(members)])  # fmt: skip
            plotting.plot_pit_histogram(pit, out / "pit.png")
            lines += ["", pit_line(pit)]
    text = "\n".join(lines) + "\n"
    write_text_atomic(out / "summary.md", text)
    return text
