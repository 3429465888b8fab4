"""The library's entry points: `fit` a run, `load_run`, `sample_weights`, `predict`.

`fit` composes the steps: prepare the data (`langevin_uq.prepare`), start the method
(`langevin_uq.methods`), train it (`langevin_uq.train`) or run it, and write the run directory
(`langevin_uq.rundir`, INTERFACE.md), from which `load_run` rebuilds everything.
"""

from dataclasses import dataclass
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from . import rundir
from ._types import Array, Float, PRNGKeyArray
from .config import Config
from .data import Scaler, Trajectories
from .errors import ConfigError, RunDirError, TrainingDivergedError
from .methods import AbstractMethod, method_for
from .posterior import AbstractPosterior, draw_in_support
from .prepare import Problem, data_model, dtype_of, prepare, relabel_groups, setup
from .problem import GroupInputs, predict_ensemble
from .seeding import fit_keys, stream
from .train import init_state, make_chunk_step, optimiser, train_loop
from .weights import WeightPartition


@dataclass(frozen=True)
class FittedRun:
    """A fitted posterior over the data model's weights, ready to sample and predict.

    Attributes:
        config: the resolved configuration.
        partition: flat-weight layout and ``w_S``/``w_D`` split.
        posterior: what ``w_S`` is drawn from: the learned SDE (``ls``), the Gaussian guide
            (``bbvi-*``) or the NUTS draws (``nuts``).
        w_d: the deterministic weights, ``(nd,)`` (the MLE's, or re-optimised).
        w_mle: the MLE of all weights, ``(nw,)``.
        scaler: output scaling that predictions undo.
        epoch: number of completed training epochs (0 for NUTS).
        diagnostics: NUTS's R-hat, ESS and divergence summary (``None`` for the others).
    """

    config: Config
    partition: WeightPartition
    posterior: AbstractPosterior
    w_d: Float[Array, " nd"]
    w_mle: Float[Array, " nw"]
    scaler: Scaler
    epoch: int
    diagnostics: dict | None = None


def fit(
    data: Trajectories,
    config: Config,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    model=None,
) -> FittedRun:
    """Fit the MLE, then the posterior of ``config.method``.

    ``ls``: train the Langevin hypernetwork on the ELBO (Alg. 1); ``bbvi-*``: a Gaussian guide
    on the ELBO with the same likelihood and prior; ``nuts``: NUTS chains from the MLE.

    Args:
        data: the trajectories (in their own units; scaling follows ``config.data``).
        config: the resolved configuration.
        run_dir: where to write the run directory; ``None`` keeps everything in memory.
        resume: continue the run in ``run_dir`` from its checkpoint. The result is the same as
            an uninterrupted run with the same seed, bit for bit on the same machine. A run
            killed before its first checkpoint (an empty ``run_dir``, or one holding only the
            files written before it) starts from the beginning; a run whose ``sampler.dtau``
            was halved after a divergence resumes with the halved step.
        progress: show a progress bar with loss, data term and KL.
        model: your own data model (an Equinox module with ``vector_field``; INTERFACE.md "Your
            own model"), its weights' initial values where the MLE starts; ``None`` builds the
            model of ``config.model`` (its ``module``, or the built-in neural ODE).

    Raises:
        ConfigError: the model is not a data model for these data (the message says why).
        RunDirError: ``run_dir`` already holds a run and ``resume`` is false, or it holds a run
            of other data, config or model, or a corrupted or foreign checkpoint, and ``resume``
            is true.
        TrainingDivergedError: the loss or the replicas became NaN or infinite (after
            ``train.divergence_retries`` halvings of ``sampler.dtau``); the checkpoint holds the
            last good state.
        TrainingInterrupted: SIGINT arrived; the epochs under way were finished and saved.
    """
    run_dir = Path(run_dir) if run_dir is not None else None
    dtype = dtype_of(config.train)
    data = relabel_groups(data)
    model, own = data_model(config.model, config.train.seed, data.n_outputs, data.n_inputs,
                            dtype, model)  # fmt: skip
    record, halvings = rundir.model_record(config.model.module, model, own), 0
    if run_dir is not None:
        resume, config, halvings = _check_run_dir(run_dir, config, data, resume, record)
    mle = rundir.read_mle(run_dir, dtype) if resume else None
    method = method_for(config)
    problem = prepare(data, model, own, dtype, mle, data_options=config.data,
                      model_options=config.model, partition=config.partition, prior=config.prior,
                      likelihood=config.likelihood, train=config.train,
                      sample_noise=method.samples_noise)  # fmt: skip
    if resume:
        drift = rundir.read_metadata(run_dir)["drift"]
        params = method.skeleton(problem, drift)
    else:
        params, drift = method.init(problem)
    if run_dir is not None and not resume:
        rundir.create(run_dir, config.to_toml(), problem, record, drift)
    if method.trained:
        state, config, method = _train(method, problem, params, drift, config, run_dir, resume,
                                       halvings, progress)  # fmt: skip
        posterior, w_d = method.posterior(problem, state.params, drift)
        fitted = FittedRun(config, problem.partition, posterior, w_d, problem.w_mle,
                           problem.scaler, int(state.epoch))  # fmt: skip
    else:
        result = method.run(problem, fit_keys(config.train.seed)["train"], progress=progress)
        if run_dir is not None:
            rundir.save_nuts(run_dir, result)
        posterior, w_d = method.posterior(problem, result.samples, drift)
        fitted = FittedRun(config, problem.partition, posterior, w_d, problem.w_mle,
                           problem.scaler, 0, result.summary())  # fmt: skip
    if run_dir is not None:
        _write_samples(run_dir, fitted, data)
    return fitted


def _train(method: AbstractMethod, problem: Problem, params, drift, config: Config, run_dir,
           resume: bool, halvings: int, progress: bool):  # fmt: skip
    """Train ``params`` on the method's objective to ``train.epochs`` (from the checkpoint when
    resuming); after a divergence retry with ``sampler.dtau`` halved while the method allows.

    Returns the state, the config (with the halvings) and the method built from it.
    """
    tr = config.train
    objective = method.objective(problem, drift)
    adam = optimiser(tr)
    state, history = init_state(params, adam), []
    if resume:
        state = rundir.load_state(run_dir, state)
        history = rundir.read_history(run_dir / rundir.HISTORY, int(state.epoch))
        rundir.write_config(run_dir, config.to_toml())
    key = jr.fold_in(fit_keys(tr.seed)["train"], 0)
    while True:
        chunk = make_chunk_step(objective, adam, tr.epochs)
        state, diverged = train_loop(chunk, state, key, tr, history, run_dir, progress)
        if not diverged:
            return state, config, method
        if not method.retries or halvings >= tr.divergence_retries:
            raise TrainingDivergedError(
                method.divergence_message(objective, state, key, config, halvings, run_dir)
            )
        halvings += 1
        config = halve_dtau(config, 1)
        method = method_for(config)
        objective = method.objective(problem, drift)
        if run_dir is not None:
            rundir.write_config(run_dir, config.to_toml())
            rundir.update_metadata(run_dir, dtau_halvings=halvings)


RESUMABLE = ("epochs", "lr", "divergence_retries")
"""Keys of ``[train]`` that a resumed run may change (more epochs; a lower rate after a
divergence). With none changed, a resumed run equals an uninterrupted one."""


def _check_run_dir(run_dir: Path, config: Config, data: Trajectories, resume: bool,
                   record: dict) -> tuple[bool, Config, int]:  # fmt: skip
    """Refuse a run directory that does not fit (`langevin_uq.rundir.check`, and the config
    against the saved one); returns ``(resume, config, dtau halvings)``.

    The config comes back with the run's halvings of ``sampler.dtau`` applied when the given
    one is the config the run started from. ``resume`` comes back false when there is nothing
    to continue (`langevin_uq.rundir.resumable`): the run then starts from the beginning.
    """
    halvings = rundir.check(run_dir, rundir.data_digest(data), resume, record)
    if halvings is None:
        return False, config, 0
    if (run_dir / rundir.CONFIG).exists():
        config = _same_config(run_dir, config, halvings)
    if not rundir.resumable(run_dir, method_for(config).trained):
        return False, config, 0
    return True, config, halvings


def halve_dtau(config: Config, times: int) -> Config:
    """``sampler.dtau`` halved and ``sampler.steps`` doubled ``times`` times (same span)."""
    if times == 0:
        return config
    s = config.sampler
    return config.replace(sampler={"dtau": s.dtau / 2**times, "steps": s.steps * 2**times})


def _same_config(run_dir: Path, config: Config, halvings: int) -> Config:
    """The config of a resumed run may differ from the saved one only in `RESUMABLE` keys, and
    by the run's halvings of ``sampler.dtau``; returns it with those halvings applied."""
    saved = Config.load(run_dir / rundir.CONFIG)
    mine = config.replace(train={k: getattr(saved.train, k) for k in RESUMABLE})
    if mine == saved:
        return config
    if halve_dtau(mine, halvings) == saved:
        return halve_dtau(config, halvings)
    given = mine.to_dict()
    for name, table in saved.to_dict().items():
        for key, value in table.items():
            if given[name][key] != value:
                raise RunDirError(
                    f"config key {name}.{key} differs from the run being resumed "
                    f"({given[name][key]!r} vs {value!r}); only "
                    f"{', '.join('train.' + k for k in RESUMABLE)} may change"
                )
    raise AssertionError("unreachable: configs differ in no key")


def _write_samples(run_dir: Path, fitted: FittedRun, data: Trajectories) -> None:
    """The run's posterior samples and, with ``train.diagnostics``, their quality."""
    tr = fitted.config.train
    n = fitted.config.sampler.posterior_samples
    rundir.save_samples(run_dir, sample_weights(fitted, n, fit_keys(tr.seed)["samples"]),
                        fitted.partition)  # fmt: skip
    if tr.diagnostics:
        from .sample_quality import run_diagnostics  # it imports this module

        rundir.write_ksd(run_dir, run_diagnostics(fitted, data, stream(tr.seed, "fit/ksd")))


def load_run(run_dir: str | Path, model=None) -> FittedRun:
    """Rebuild a `FittedRun` from a run directory written by `fit`.

    Args:
        run_dir: the run directory.
        model: for a run fitted with your own model through the Python API, a module of the
            same structure (its values are replaced by the run's); a run whose config names a
            ``model.module`` loads it from there.

    Raises:
        RunDirError: no run there, or the model differs from the one the run was fitted with.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"run directory {run_dir} does not exist")
    meta = rundir.read_metadata(run_dir)
    config = Config.load(run_dir / rundir.CONFIG)
    dtype = dtype_of(config.train)
    w_mle, _ = rundir.read_mle(run_dir, dtype)
    grid = (meta.get("n_groups", 0), meta.get("n_times", 0), meta["n_inputs"])
    scaler = Scaler.from_dict(meta["scaler"])
    rundir.needs_model(run_dir, meta, model)
    model, own = data_model(config.model, config.train.seed, meta["n_outputs"], meta["n_inputs"],
                            dtype, model)  # fmt: skip
    record = rundir.model_record(config.model.module, model, own)
    rundir.same_model(run_dir, meta.get("model"), record)
    method = method_for(config)
    fixed = setup(model, own, scaler, w_mle, grid, dtype, partition=config.partition,
                  model_options=config.model, likelihood=config.likelihood,
                  prior=config.prior, sample_noise=method.samples_noise)  # fmt: skip
    if not method.trained:
        draws, diagnostics = rundir.read_nuts(run_dir)
        posterior, w_d = method.posterior(fixed, draws, None)
        return FittedRun(config, fixed.partition, posterior, w_d, w_mle, scaler, 0, diagnostics)
    like = init_state(method.skeleton(fixed, meta.get("drift")), optimiser(config.train))
    state = rundir.load_state(run_dir, like)
    posterior, w_d = method.posterior(fixed, state.params, meta.get("drift"))
    return FittedRun(config, fixed.partition, posterior, w_d, w_mle, scaler, int(state.epoch))


def sample_weights(run: FittedRun, n: int, key: PRNGKeyArray, *, batch: int = 8192):
    """Draw ``n`` posterior samples of the whole flat weight vector, ``(n, nw)``.

    For the Langevin sampler one simulation of the learned SDE with ``n`` replicas (in batches of
    ``batch``), with no data-model evaluations unless a Gauss-Newton guide drives it (then one
    Jacobian of the predictions per replica and step); for BBVI draws of the guide; for NUTS
    draws of the stored chains. Deterministic entries are repeated in every row. A draw known
    to lie where the data model overflows (the Gauss-Newton guide checks its own) is drawn
    again (`langevin_uq.posterior.draw_in_support`).
    """
    if n < 1:
        raise ConfigError(f"the number of samples must be at least 1, got {n}")
    parts = []
    for i, start in enumerate(range(0, n, batch)):
        size = min(batch, n - start)
        w_s = draw_in_support(run.posterior, jr.fold_in(key, i), size)
        parts.append(_join(run.partition, w_s, run.w_d))
    return jnp.concatenate(parts, axis=0)


@eqx.filter_jit
def _join(partition: WeightPartition, w_s, w_d):
    return partition.join(w_s, w_d)


def predict(
    run: FittedRun, data: Trajectories, w: Float[Array, "M nw"], *, batch: int = 256
) -> Float[np.ndarray, "M N T ny"]:
    """Push weight samples through the data model for every trajectory of ``data``.

    Returns the predictive ensemble in the data's own units, ``(M, N, T, ny)``.
    """
    if data.n_outputs != run.scaler.shift.shape[0]:
        raise ConfigError(
            f"the data have {data.n_outputs} outputs but the model predicts "
            f"{run.scaler.shift.shape[0]}"
        )
    dtype = w.dtype
    x = data.x if data.x is not None else np.zeros((*data.t.shape, 0))
    inputs = GroupInputs(
        t=jnp.asarray(data.t, dtype), x=jnp.asarray(x, dtype),
        y0=jnp.asarray(run.scaler.transform_y(data.y0), dtype),
    )  # fmt: skip
    solve = eqx.filter_jit(predict_ensemble)
    parts = [np.asarray(solve(run.partition, w[i : i + batch], inputs))
             for i in range(0, w.shape[0], batch)]  # fmt: skip
    return np.asarray(run.scaler.inverse_y(np.concatenate(parts, axis=0)))
