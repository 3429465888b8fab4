"""The library's entry points: `fit` a run, `load_run`, `sample_weights`, `predict`.

A run directory (INTERFACE.md) holds the resolved ``config.toml``, ``model.json`` (sizes,
scaling, split, MLE summary), ``mle.npz``, the atomic ``checkpoint.eqx``, ``history.csv`` and
``samples.npz``. Everything a later command needs is rebuilt from these files.
"""

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from . import __version__
from . import checkpoint as ckpt
from ._atomic import remove_stale_temporaries, write_text_atomic
from ._interrupt import deferred_sigint
from ._types import Array, Float, PRNGKeyArray
from .baselines import bbvi
from .baselines.model import ProbabilisticModel
from .baselines.nuts import run_nuts
from .config import Config
from .data import Scaler, Trajectories, split
from .datamodel import (
    check_data_model,
    construct,
    load_model_class,
    source_digest,
    structure_digest,
)
from .errors import ConfigError, RunDirError, TrainingDivergedError, TrainingInterrupted
from .htransform import (
    GaussianStart,
    GaussNewtonTransform,
    gaussian_start,
    prediction_jacobian,
)
from .likelihoods import AbstractLikelihood, build_likelihood
from .model import build_model
from .posterior import AbstractPosterior, EmpiricalPosterior, LangevinPosterior
from .prior import OUPrior, prior_vectors
from .problem import (
    GroupInputs,
    group_inputs,
    group_means,
    predict_ensemble,
    predict_groups,
    training_arrays,
)
from .sampler import (
    Drift,
    LangevinSampler,
    auto_final_dtau,
    calibrate_start,
    pseudo_time_grid,
)
from .seeding import stream
from .train import ELBO, Trainable, TrainState, fit_mle, init_state, make_chunk_step
from .weights import WeightPartition, make_partition, preset

HISTORY_COLUMNS = (
    "epoch",
    "loss",
    "nll",
    "kl",
    "seconds",
    "heldout_energy_score",
    "gamma",
    "grad_norm",
)
_FORMAT = 2
"""Run-directory layout version; 2 added checksums to checkpoints and array files."""
RESUMABLE = ("epochs", "lr", "divergence_retries")
"""Keys of ``[train]`` that a resumed run may change (more epochs; a lower rate after a
divergence). With none changed, a resumed run equals an uninterrupted one."""
_RUN_FILES = (ckpt.CONFIG, ckpt.METADATA, ckpt.MLE, ckpt.HISTORY, ckpt.CHECKPOINT, ckpt.SAMPLES,
              ckpt.NUTS, ckpt.DIAGNOSTICS, ckpt.KSD)  # fmt: skip


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


def _dtype(config: Config):
    if config.train.x64:
        jax.config.update("jax_enable_x64", True)
        return jnp.float64
    return jnp.float32


def _keys(seed: int) -> dict[str, PRNGKeyArray]:
    names = ("split", "model", "drift", "train", "samples")
    return {name: stream(seed, f"fit/{name}") for name in names}


def _data_model(config: Config, n_outputs: int, n_inputs: int, dtype, model=None):
    """The data model of a run: ``model`` (a user's module from the Python API), the module
    of ``[model] module``, or the built-in neural ODE of ``[model]``; its arrays in ``dtype``.

    Returns ``(model, own)``; ``own`` is true for a user's model (it works in the data's units).
    """
    m = config.model
    own = model is not None or bool(m.module)
    if model is None and m.module:
        factory = load_model_class(m.module)
        model = construct(factory, m.args, _keys(config.train.seed)["model"])
    if model is None:
        model = build_model(
            n_outputs=n_outputs, n_inputs=n_inputs, hidden_state=m.hidden_state,
            R_hidden=m.R_hidden, R_activation=m.R_activation, observation=m.observation,
            Z_hidden=m.Z_hidden, Z_activation=m.Z_activation, key=_keys(config.train.seed)["model"],
        )  # fmt: skip
    model = jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, model)
    if own:
        where = f"the model {m.module}" if m.module else f"the model {type(model).__name__}"
        check_data_model(model, n_outputs, n_inputs, dtype, where=where)
    return model, own


def _partition(config: Config, model, own: bool, scaler: Scaler) -> WeightPartition:
    """The weight layout of ``model`` from ``[partition]``, ``[model]`` and the noise."""
    p = config.partition
    stochastic, rest = p.stochastic, p.rest
    if p.variant != "full":
        stochastic, rest = preset(model, p.variant, p.submodels)
    n_noise = scaler.shift.shape[0] if config.likelihood.sigma == "learn" else 0
    return make_partition(model, stochastic=stochastic, rest=rest, fixed=config.model.fixed,
                          substeps=config.model.substeps, n_noise=n_noise,
                          units=scaler if own else None)  # fmt: skip


def _skeleton(config: Config, model, own: bool, scaler: Scaler, w_mle, dtype, grid=(0, 0, 0),
              drift_shape=None):  # fmt: skip
    """Partition and the untrained method: a function of config, data model and sizes.

    ``grid``: the data's ``(groups, times, inputs)``, the shapes of a Gauss-Newton guide's
    arrays.
    ``drift_shape``: the Langevin drift's ``{"rank", "final_dtau"}``, fixed when the run starts
    (`_drift_start`); a placeholder start of that rank is built for a checkpoint to load into.

    Returns ``(partition, w_init, sampler, params)``; ``sampler`` is the Langevin sampler's
    (``None`` for the baselines) and ``params`` what training starts from (``None`` for NUTS).
    """
    partition = _partition(config, model, own, scaler)
    w_init = partition.flatten(model)
    if w_mle is None:
        return partition, w_init, None, None
    w_s, w_d = partition.split(w_mle)
    kind = config.method.kind
    w_d_opt = w_d if partition.reoptimise_deterministic else None
    if kind == "nuts":
        return partition, w_init, None, None
    if kind != "ls":
        params = bbvi.init_params(w_s, config.method.init_scale, kind == "bbvi-full", w_d_opt)
        return partition, w_init, None, params
    s = config.sampler
    sampler = LangevinSampler(
        prior=_prior(config, partition, w_mle),
        taus=_taus(s, drift_shape["final_dtau"]),
        init_center=w_s,
        init_noise=s.init_noise,
    )
    start = GaussianStart.placeholder(partition.n_stochastic, drift_shape["rank"], dtype)
    guide = None
    if s.drift_init == "gauss-newton":
        n_groups, n_times, n_inputs = grid
        guide = GaussNewtonTransform.placeholder(partition, n_groups, n_times,
                                                 scaler.shift.shape[0], n_inputs, dtype,
                                                 s.gauss_newton_iterations)  # fmt: skip
    return partition, w_init, sampler, Trainable(drift=_drift(config, start, guide), w_d=w_d_opt)


def _drift(config: Config, start: GaussianStart, guide) -> Drift:
    s = config.sampler
    return Drift(start, s.drift_hidden, prior_start=s.drift_init != "laplace", guide=guide,
                 key=_keys(config.train.seed)["drift"])  # fmt: skip


def _prior(config: Config, partition: WeightPartition, w_mle) -> OUPrior:
    """The OU prior of the stochastic weights from ``[prior]`` (tables resolved per weight)."""
    mean, scale = prior_vectors(partition.names, np.asarray(w_mle), config.prior)
    dtype = w_mle.dtype
    return OUPrior(mean=jnp.asarray(partition.split(mean)[0], dtype),
                   scale=jnp.asarray(partition.split(scale)[0], dtype))  # fmt: skip


def _taus(s, final_dtau: float) -> np.ndarray:
    return pseudo_time_grid(s.steps, s.dtau, s.schedule, final_dtau)


def _drift_start(config: Config, partition, likelihood, inputs, train, w_mle, y_mle):
    """The Gaussian start of the drift (`langevin_uq.htransform.gaussian_start`) at the MLE,
    and the drift's shape: its rank and the resolved ``sampler.final_dtau``."""
    s, beta = config.sampler, config.train.beta
    prior = _prior(config, partition, w_mle)
    w_s, w_d = partition.split(w_mle)
    jac = prediction_jacobian(partition, w_s, w_d, inputs)
    curvature = likelihood.curvature(np.asarray(train.y), np.asarray(train.group),
                                     inputs.n_groups, beta if beta > 0 else 1.0)  # fmt: skip
    if not (np.all(np.isfinite(jac)) and np.all(np.isfinite(curvature))):
        raise TrainingDivergedError(
            "the data model's Jacobian at the MLE is not finite, so the sampler cannot start "
            "from it; check the data, or lower train.mle_lr"
        )
    means, counts = group_means(train.y, train.group, inputs.n_groups)
    residual = np.where(np.asarray(counts)[:, None, None] > 0, means - y_mle, 0.0).ravel()
    jac, curvature, residual = _with_noise_rows(
        partition, jac, np.ravel(curvature), residual, train.y.shape, beta if beta > 0 else 1.0
    )
    start = gaussian_start(jac, curvature, prior.whiten(w_s), prior.scale, s.max_rank,
                           residual)  # fmt: skip
    final = s.final_dtau
    if final == "auto":
        final = auto_final_dtau(start.max_precision, s.dtau)
    return start, {"rank": int(start.eigvals.shape[0]), "final_dtau": float(final),
                   "max_precision": start.max_precision}  # fmt: skip


def _with_noise_rows(partition: WeightPartition, jac, curvature, residual, shape, beta):
    """The Gauss-Newton rows of a learned noise's sampled ``log_sigma`` entries, appended.

    The predictions do not depend on ``log_sigma``, but the likelihood does: at the MLE the
    curvature of ``N log sigma + SSR / (2 sigma^2)`` in ``log sigma`` is ``2 N`` for ``N``
    observations of the output. Each sampled entry gets a unit row with that precision (and a
    zero residual: the MLE is its minimum)."""
    if not partition.n_noise:
        return jac, curvature, residual
    first = partition.n_weights - partition.n_noise
    columns = {j: k for k, j in enumerate(partition.stochastic_index)}
    rows = [k for k in range(first, partition.n_weights) if k in columns]
    if not rows:
        return jac, curvature, residual
    extra = np.zeros((len(rows), jac.shape[1]))
    extra[np.arange(len(rows)), [columns[k] for k in rows]] = 1.0
    n_obs = shape[0] * shape[1]
    return (np.concatenate([jac, extra]), np.concatenate([curvature, np.full(len(rows),
            2.0 * n_obs / beta)]), np.concatenate([residual, np.zeros(len(rows))]))  # fmt: skip


def _halve_dtau(config: Config, times: int) -> Config:
    """``sampler.dtau`` halved and ``sampler.steps`` doubled ``times`` times (same span)."""
    if times == 0:
        return config
    s = config.sampler
    return config.replace(sampler={"dtau": s.dtau / 2**times, "steps": s.steps * 2**times})


_RUNAWAY = 1e3
"""Replicas farther than this many prior scales from the prior mean have left any posterior:
the SDE step, not the data model, is what diverged."""


def _divergence_message(objective, state, key, config: Config, halvings: int, run_dir) -> str:
    """Why training stopped, with the likely cause: the SDE step or the learning rate."""
    epoch = int(state.epoch)
    kept = f"; the checkpoint in {run_dir} keeps epoch {epoch}" if run_dir is not None else ""
    after = f" after {halvings} halving(s) of sampler.dtau" if halvings else ""
    lr = config.train.lr
    if isinstance(objective, ELBO):
        replicas = eqx.filter_jit(objective.replicas_at)
        w_s, _, _ = replicas(state.params, jr.fold_in(key, epoch), jnp.asarray(epoch))
        prior = objective.sampler.prior
        spread = float(jnp.max(jnp.abs(prior.whiten(w_s))))
        if not spread < _RUNAWAY:  # also true for NaN
            return (
                f"the Langevin replicas ran away at epoch {epoch + 1}{after} (up to {spread:.3g} "
                f"prior scales from the prior mean): "
                f"sampler.dtau = {config.sampler.dtau:g} is likely too large for the learned "
                f"drift, or train.lr = {lr:g} too high; resume with train.divergence_retries = "
                f"1 (halves dtau from the last good state) or a lower train.lr{kept}"
            )
        return (
            f"the loss became NaN or infinite at epoch {epoch + 1}{after} with finite replicas: "
            f"the data model overflowed for some replicas; lower train.lr = {lr:g} or raise "
            f"model.substeps, then resume{kept}"
        )
    return (
        f"the loss became NaN or infinite at epoch {epoch + 1}: lower train.lr = {lr:g} or "
        f"method.init_scale, then resume{kept}"
    )


def _posterior(config: Config, partition: WeightPartition, sampler, params, w_mle):
    """The trained method's `AbstractPosterior` and its ``w_D``."""
    w_d = partition.split(w_mle)[1]
    if config.method.kind == "ls":
        w_d = params.w_d if params.w_d is not None else w_d
        return LangevinPosterior(sampler=sampler, drift=params.drift), w_d
    return bbvi.posterior(params, config.method.kind == "bbvi-full"), params.get("w_d", w_d)


def _data_digest(data: Trajectories) -> str:
    h = hashlib.sha256()
    for a in (data.t, data.y, data.y0, data.group, data.x):
        if a is not None:
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _relabel_groups(data: Trajectories) -> Trajectories:
    _, ids = np.unique(data.group, return_inverse=True)
    return Trajectories(data.t, data.y, data.x, data.y0, ids.astype(np.int64))


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
    dtype = _dtype(config)
    run_dir = Path(run_dir) if run_dir is not None else None
    data = _relabel_groups(data)
    digest = _data_digest(data)
    data_model, own = _data_model(config, data.n_outputs, data.n_inputs, dtype, model)
    record = _model_record(config, data_model, own)
    halvings = 0
    if run_dir is not None:
        resume, config, halvings = _check_run_dir(run_dir, config, digest, resume, record)

    train, validation = split(
        data, config.data.validation_fraction, _keys(config.train.seed)["split"]
    )
    scaler = Scaler.fit(train, config.data.scaling)
    inputs = group_inputs(scaler.transform(data), dtype)
    train_s = scaler.transform(train)
    train_arrays = training_arrays(train_s, dtype)
    val_arrays = training_arrays(scaler.transform(validation), dtype) if validation else None

    partition, w_init, _, _ = _skeleton(config, data_model, own, scaler, None, dtype)
    if resume:
        w_mle = jnp.asarray(ckpt.load_arrays(run_dir / ckpt.MLE)["w"], dtype)
        mle_info = read_metadata(run_dir)["mle"]
    else:
        t0 = time.perf_counter()
        tr = config.train
        result = fit_mle(partition, w_init, inputs, train_arrays, val_arrays,
                         epochs=tr.mle_epochs, lr=tr.mle_lr, patience=tr.mle_patience)  # fmt: skip
        w_mle = _with_noise_mle(partition, result.w, inputs, train_arrays, scaler)
        if not bool(jnp.all(jnp.isfinite(w_mle))):
            raise TrainingDivergedError("the MLE pre-fit diverged; lower train.mle_lr")
        mle_info = {"train_mse": result.train_mse, "validation_mse": result.validation_mse,
                    "epochs": result.epochs, "seconds": time.perf_counter() - t0}  # fmt: skip

    grid = (*inputs.t.shape, data.n_inputs)
    y_mle = np.asarray(predict_groups(partition, w_mle, inputs))
    likelihood = build_run_likelihood(config, train_s, inputs.n_groups, y_mle, scaler, dtype)
    start, drift_shape = None, None
    if config.method.kind == "ls":
        if resume:
            drift_shape = read_metadata(run_dir)["drift"]
        else:
            start, drift_shape = _drift_start(config, partition, likelihood, inputs,
                                              train_arrays, w_mle, y_mle)  # fmt: skip
    partition, _, sampler, params = _skeleton(
        config, data_model, own, scaler, w_mle, dtype, grid, drift_shape
    )
    if run_dir is not None and not resume:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / ckpt.CONFIG, config.to_toml())
        ckpt.save_arrays(run_dir / ckpt.MLE, w=np.asarray(w_mle))
        ckpt.write_json(run_dir / ckpt.METADATA, {
            "format": _FORMAT, "version": __version__, "dtau_halvings": 0,
            "n_outputs": data.n_outputs, "n_inputs": data.n_inputs,
            "n_groups": grid[0], "n_times": grid[1],
            "n_weights": partition.n_weights, "n_stochastic": partition.n_stochastic,
            "scaler": scaler.to_dict(), "data_sha256": digest, "mle": mle_info,
            "n_train": train.n_trajectories,
            "n_validation": 0 if validation is None else validation.n_trajectories,
            "validation_group_ids": [] if validation is None else validation.group.tolist(),
            "likelihood": _describe(likelihood, scaler), "drift": drift_shape, "model": record,
        })  # fmt: skip

    s, tr, method = config.sampler, config.train, config.method
    w_s_mle, w_d_mle = partition.split(w_mle)
    if method.kind != "ls":
        bbvi_run = method.kind.startswith("bbvi")
        model = ProbabilisticModel(
            partition=partition, likelihood=likelihood, inputs=inputs,
            prior=_prior(config, partition, w_mle), w_d=w_d_mle,
            full_covariance=method.kind == "bbvi-full",
            reoptimise=partition.reoptimise_deterministic,
            particles=method.particles if bbvi_run else 0, beta=tr.beta,
        )  # fmt: skip
    if method.kind == "nuts":
        result = run_nuts(
            model, train_arrays.y, train_arrays.group, w_s_mle, _keys(tr.seed)["train"],
            warmup=method.warmup, samples=method.samples, chains=method.chains,
            target_accept=method.target_accept, max_tree_depth=method.max_tree_depth,
            progress=progress,
        )  # fmt: skip
        if run_dir is not None:
            ckpt.save_arrays(run_dir / ckpt.NUTS, w=result.samples, diverging=result.diverging,
                             r_hat=result.r_hat, ess=result.ess)  # fmt: skip
            ckpt.write_json(run_dir / ckpt.DIAGNOSTICS, result.summary())
        posterior = EmpiricalPosterior(jnp.asarray(result.samples.reshape(-1, w_s_mle.shape[0])))
        fitted = FittedRun(config, partition, posterior, w_d_mle, w_mle, scaler, 0,
                           result.summary())  # fmt: skip
    else:
        if method.kind == "ls" and not resume:
            guide = None
            if s.drift_init == "gauss-newton":
                guide = GaussNewtonTransform.from_data(
                    partition, inputs, w_d_mle, train_arrays.y, train_arrays.group,
                    likelihood.sigma, tr.beta, s.gauss_newton_iterations,
                )  # fmt: skip
            params = eqx.tree_at(lambda p: p.drift, params, _drift(config, start, guide))
        if method.kind == "ls":
            objective = ELBO(
                sampler=sampler, partition=partition, likelihood=likelihood, inputs=inputs,
                train=train_arrays, validation=val_arrays, w_d_fixed=w_d_mle,
                replicas=s.replicas, beta=tr.beta, batch=tr.batch_trajectories,
                gamma0=s.gamma0, anneal_epochs=s.anneal_epochs,
            )  # fmt: skip
        else:
            guide = bbvi.GaussianGuide(full=model.full_covariance, particles=model.particles,
                                       beta=model.beta)  # fmt: skip
            objective = bbvi.BBVIObjective(
                model=model, guide=guide,
                train=train_arrays, validation=val_arrays, batch=tr.batch_trajectories,
            )  # fmt: skip
        if method.kind == "ls" and not resume and s.drift_init == "laplace":
            params = _calibrate(objective, params, drift_shape, run_dir, tr.seed)
        optimiser = _optimiser(tr)
        state = init_state(params, optimiser)
        history: list[tuple] = []
        if resume:
            state = ckpt.load_state(run_dir / ckpt.CHECKPOINT, state)
            history = read_history(run_dir / ckpt.HISTORY, int(state.epoch))
            write_text_atomic(run_dir / ckpt.CONFIG, config.to_toml())
        key = jr.fold_in(_keys(tr.seed)["train"], 0)
        while True:
            chunk = make_chunk_step(objective, optimiser, tr.epochs)
            state, diverged = _train_loop(chunk, state, key, tr, history, run_dir, progress)
            if not diverged:
                break
            if method.kind != "ls" or halvings >= tr.divergence_retries:
                raise TrainingDivergedError(
                    _divergence_message(objective, state, key, config, halvings, run_dir)
                )
            halvings += 1
            config = _halve_dtau(config, 1)
            sampler = sampler.with_grid(_taus(config.sampler, drift_shape["final_dtau"]))
            objective = eqx.tree_at(lambda obj: obj.sampler, objective, sampler)
            if run_dir is not None:
                write_text_atomic(run_dir / ckpt.CONFIG, config.to_toml())
                meta = read_metadata(run_dir)
                ckpt.write_json(run_dir / ckpt.METADATA, {**meta, "dtau_halvings": halvings})
        posterior, w_d = _posterior(config, partition, sampler, state.params, w_mle)
        fitted = FittedRun(config, partition, posterior, w_d, w_mle, scaler, int(state.epoch))
    if run_dir is not None:
        w = sample_weights(fitted, s.posterior_samples, _keys(tr.seed)["samples"])
        ckpt.save_samples(run_dir / ckpt.SAMPLES, np.asarray(w), partition.names,
                          partition.stochastic_mask)  # fmt: skip
        if tr.diagnostics:
            from .sample_quality import KSD_FILE, run_diagnostics  # it imports this module

            quality = run_diagnostics(fitted, data, stream(tr.seed, "fit/ksd"))
            ckpt.write_json(run_dir / KSD_FILE, quality)
    return fitted


def _calibrate(objective: ELBO, params: Trainable, drift_shape: dict, run_dir, seed: int):
    """The Gaussian start's extra precision (`langevin_uq.sampler.calibrate_start`), chosen by
    the ELBO on the first epoch's keys; recorded in ``model.json``."""
    key = stream(seed, "fit/calibrate")

    @eqx.filter_jit
    def loss(drift):
        return objective(eqx.tree_at(lambda p: p.drift, params, drift), key, jnp.asarray(0))[0]

    drift, extra, tried = calibrate_start(params.drift, loss, drift_shape["max_precision"])
    drift_shape.update(start_extra_precision=extra, start_losses=tried)
    if run_dir is not None:
        meta = read_metadata(run_dir)
        ckpt.write_json(run_dir / ckpt.METADATA, {**meta, "drift": drift_shape})
    return eqx.tree_at(lambda p: p.drift, params, drift)


def _optimiser(tr) -> optax.GradientTransformation:
    if tr.lr_schedule == "constant" or tr.epochs == 0:
        schedule = optax.constant_schedule(tr.lr)
    else:
        decay = tr.epochs - tr.lr_warmup
        schedule = optax.cosine_decay_schedule(tr.lr, decay, alpha=tr.lr_final)
    if tr.lr_warmup:
        # Adam's first steps move every parameter by about lr whatever its gradient; a ramp
        # keeps them from throwing a drift that starts at a good law far from it.
        ramp = optax.linear_schedule(tr.lr / tr.lr_warmup, tr.lr, tr.lr_warmup)
        schedule = optax.join_schedules([ramp, schedule], [tr.lr_warmup])
    adam = optax.adam(schedule)
    if tr.grad_clip > 0:
        return optax.chain(optax.clip_by_global_norm(tr.grad_clip), adam)
    return adam


def _train_loop(
    chunk, state: TrainState, key, tr, history, run_dir, progress
) -> tuple[TrainState, bool]:
    """Run chunks to ``tr.epochs``; returns the state and whether training diverged.

    Checkpoints every ``tr.checkpoint_every`` epochs, at the end and on divergence (the last
    good state). The first SIGINT finishes the chunk under way, saves, and raises
    `TrainingInterrupted`.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("fit"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[status]}"))  # fmt: skip
    with deferred_sigint() as interrupted, Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("fit", total=tr.epochs, completed=int(state.epoch), status="")
        last_saved = int(state.epoch)
        while int(state.epoch) < tr.epochs:
            start = int(state.epoch)
            t0 = time.perf_counter()
            new_state, info, diverged = chunk(state, key)
            info = jax.device_get(info)
            n_done = int(np.sum(info.active))
            per_epoch = (time.perf_counter() - t0) / max(n_done, 1)
            for i in range(n_done):
                history.append((start + i + 1, info.loss[i], info.nll[i], info.kl[i], per_epoch,
                                info.heldout[i], info.gamma[i], info.grad_norm[i]))  # fmt: skip
            state = new_state
            if bool(diverged):
                if run_dir is not None:
                    _save(run_dir, state, history)
                return state, True
            if n_done:
                i = n_done - 1
                status = f"loss {info.loss[i]:.4g}  nll {info.nll[i]:.4g}  kl {info.kl[i]:.4g}"
                bar.update(task, completed=int(state.epoch), status=status)
            epoch = int(state.epoch)
            due = epoch // tr.checkpoint_every > last_saved // tr.checkpoint_every
            if run_dir is not None and (due or epoch >= tr.epochs or interrupted()):
                _save(run_dir, state, history)
                last_saved = epoch
            if interrupted():
                where = f"the checkpoint in {run_dir}" if run_dir is not None else "nothing"
                raise TrainingInterrupted(
                    f"interrupted after epoch {epoch} of {tr.epochs}; {where} holds it"
                    + ("; fit --resume continues the run" if run_dir is not None else "")
                )
    if run_dir is not None and tr.epochs == 0:  # untrained: the starting drift is the result
        _save(run_dir, state, history)
    return state, False


def _save(run_dir: Path, state: TrainState, history: list[tuple]) -> None:
    lines = [",".join(HISTORY_COLUMNS)]
    lines += [",".join([str(int(row[0]))] + [f"{float(v):.9g}" for v in row[1:]])
              for row in history]  # fmt: skip
    write_text_atomic(run_dir / ckpt.HISTORY, "\n".join(lines) + "\n")
    ckpt.save_state(run_dir / ckpt.CHECKPOINT, state)


def read_history(path: Path, epochs: int | None = None) -> list[tuple]:
    """The rows of ``history.csv`` (`HISTORY_COLUMNS`) up to epoch ``epochs`` (all: ``None``)."""
    epochs = float("inf") if epochs is None else epochs
    if not path.exists():
        return []
    rows = [line.split(",") for line in path.read_text().splitlines()[1:] if line]
    return [tuple([int(r[0])] + [float(v) for v in r[1:]]) for r in rows if int(r[0]) <= epochs]


def build_run_likelihood(config: Config, train_s: Trajectories, n_groups: int, y_mle, scaler,
                         dtype) -> AbstractLikelihood:  # fmt: skip
    """The run's likelihood from its scaled training split and the MLE's group predictions."""
    lk = config.likelihood
    return build_likelihood(
        lk.kind, y=np.asarray(train_s.y, np.dtype(dtype)), group=train_s.group,
        n_groups=n_groups, y_mle=np.asarray(y_mle), sigma=_sigma_scaled(lk.sigma, scaler),
        modes=lk.modes, time_reduction=lk.time_reduction, time_weighting=lk.time_weighting,
        marginal=lk.marginal, seed=config.train.seed, output_scale=np.asarray(scaler.scale),
    )  # fmt: skip


_NOISE_FLOOR = 1e-6
"""Smallest MLE noise sd, relative to the data's scale: a model that fits exactly would
otherwise start ``log_sigma`` at minus infinity."""


def _with_noise_mle(partition: WeightPartition, w, inputs, train, scaler: Scaler):
    """``w`` with its ``log_sigma`` entries (a learned noise) at their MLE: the log RMS
    residual of each output at the model's MLE, in the data's units."""
    if not partition.n_noise:
        return w
    pred = predict_groups(partition, w, inputs)
    rms = jnp.sqrt(jnp.mean((train.y - pred[train.group]) ** 2, axis=(0, 1)))
    sigma = jnp.maximum(rms, _NOISE_FLOOR) * jnp.asarray(scaler.scale, w.dtype)
    return w.at[partition.n_weights - partition.n_noise :].set(jnp.log(sigma))


def _model_record(config: Config, model, own: bool) -> dict:
    """What ``model.json`` records of the data model, so that a later command can refuse a
    changed one: its module, class and SHA-256s of its structure and source."""
    if not own:
        return {"kind": "built-in"}
    spec = config.model.module or None
    return {"kind": "module" if spec else "python", "module": spec,
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "structure_sha256": structure_digest(model),
            "source_sha256": source_digest(spec, model)}  # fmt: skip


def _same_model(run_dir: Path, saved: dict | None, record: dict) -> None:
    """Refuse a data model that differs from the one the run in ``run_dir`` was fitted with."""
    saved = saved or {"kind": "built-in"}
    if saved.get("kind") == "built-in" and record.get("kind") == "built-in":
        return
    if record.get("kind") == "built-in":
        raise RunDirError(
            f"the run in {run_dir} was fitted with your own model ({saved.get('class')}); "
            + ("pass it as model=" if saved.get("kind") == "python" else "its config names it")
        )
    if saved.get("kind") == "built-in":
        raise RunDirError(f"the run in {run_dir} was fitted with the built-in model, not yours")
    for key, what in (("structure_sha256", "its weights' names and shapes"),
                      ("source_sha256", "its source file")):  # fmt: skip
        if saved.get(key) and record.get(key) and saved[key] != record[key]:
            raise RunDirError(
                f"the model differs from the one the run in {run_dir} was fitted with "
                f"({what} changed); fit again into a new directory"
            )


def _sigma_scaled(sigma, scaler: Scaler):
    if isinstance(sigma, str):
        return sigma
    scale = np.asarray(scaler.scale)
    if scale.size > 1 and not np.allclose(scale, scale[0]):
        raise ConfigError(
            "likelihood.sigma as a number needs equal output scales; set data.scaling = 'none'"
        )
    return float(sigma) / float(scale[0])


def _describe(likelihood, scaler: Scaler) -> dict:
    out = {"kind": type(likelihood).__name__}
    if hasattr(likelihood, "sigma") and np.ndim(likelihood.sigma) == 1:
        out["sigma"] = (np.asarray(likelihood.sigma) * np.asarray(scaler.scale)).tolist()
    return out


def _check_run_dir(
    run_dir: Path, config: Config, digest: str, resume: bool, record: dict
) -> tuple[bool, Config, int]:
    """Refuse a run directory that does not fit; returns ``(resume, config, dtau halvings)``.

    The config comes back with the run's halvings of ``sampler.dtau`` applied when the given
    one is the config the run started from.

    ``resume`` comes back false when there is nothing to continue: the directory is empty or
    holds only the files a run writes before its first checkpoint (a run killed
    early, with the same data and config), and the run then starts from the beginning.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"run directory {run_dir} is a file, not a directory")
    if not resume:
        if run_dir.exists() and any(run_dir.iterdir()):
            raise RunDirError(
                f"run directory {run_dir} is not empty; choose a new --out or pass --resume"
            )
        return False, config, 0
    if not run_dir.exists():
        raise RunDirError(f"run directory {run_dir} does not exist; there is nothing to resume")
    remove_stale_temporaries(run_dir, _RUN_FILES)
    present = {p.name for p in run_dir.iterdir()} & set(_RUN_FILES)
    if not present and any(run_dir.iterdir()):
        raise RunDirError(f"{run_dir} holds files a run does not write; it is not a run directory")
    meta = read_metadata(run_dir) if ckpt.METADATA in present else {}
    if meta and meta.get("data_sha256") != digest:
        raise RunDirError(f"the data differ from the data {run_dir} was fitted to")
    if meta:
        _same_model(run_dir, meta.get("model"), record)
    halvings = int(meta.get("dtau_halvings", 0))
    if ckpt.CONFIG in present:
        config = _same_config(run_dir, config, halvings)
    finished = ckpt.NUTS if config.method.kind == "nuts" else ckpt.CHECKPOINT
    if finished not in present:  # killed before its first checkpoint: start again
        for name in present:
            (run_dir / name).unlink()
        return False, config, 0
    if config.method.kind == "nuts":
        raise RunDirError(f"the NUTS run in {run_dir} is complete; there is nothing to resume")
    return True, config, halvings


def read_metadata(run_dir: Path) -> dict:
    """``model.json`` of a run directory, refused unless this version wrote its format."""
    meta = ckpt.read_json(run_dir / ckpt.METADATA)
    if meta.get("format") != _FORMAT:
        raise RunDirError(
            f"{run_dir} was written by another version of langevin-uq (run format "
            f"{meta.get('format')}, version {meta.get('version', 'unknown')}); this version "
            f"{__version__} reads format {_FORMAT}: fit again"
        )
    return meta


def _same_config(run_dir: Path, config: Config, halvings: int) -> Config:
    """The config of a resumed run may differ from the saved one only in `RESUMABLE` keys, and
    by the run's halvings of ``sampler.dtau``; returns it with those halvings applied."""
    saved = Config.load(run_dir / ckpt.CONFIG)
    mine = config.replace(train={k: getattr(saved.train, k) for k in RESUMABLE})
    if mine == saved:
        return config
    if _halve_dtau(mine, halvings) == saved:
        return _halve_dtau(config, halvings)
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
    meta = read_metadata(run_dir)
    config = Config.load(run_dir / ckpt.CONFIG)
    dtype = _dtype(config)
    w_mle = jnp.asarray(ckpt.load_arrays(run_dir / ckpt.MLE)["w"], dtype)
    grid = (meta.get("n_groups", 0), meta.get("n_times", 0), meta["n_inputs"])
    scaler = Scaler.from_dict(meta["scaler"])
    if model is None and (meta.get("model") or {}).get("kind") == "python":
        raise RunDirError(
            f"the run in {run_dir} was fitted with a model given in Python "
            f"({meta['model']['class']}); pass one of the same structure as model="
        )
    data_model, own = _data_model(config, meta["n_outputs"], meta["n_inputs"], dtype, model)
    _same_model(run_dir, meta.get("model"), _model_record(config, data_model, own))
    partition, _, sampler, params = _skeleton(
        config, data_model, own, scaler, w_mle, dtype, grid, meta.get("drift")
    )
    if config.method.kind == "nuts":
        draws = ckpt.load_arrays(run_dir / ckpt.NUTS)
        w_s = jnp.asarray(draws["w"], dtype).reshape(-1, partition.n_stochastic)
        diagnostics = ckpt.read_json(run_dir / ckpt.DIAGNOSTICS)
        w_d = partition.split(w_mle)[1]
        return FittedRun(config, partition, EmpiricalPosterior(w_s), w_d, w_mle, scaler, 0,
                         diagnostics)  # fmt: skip
    optimiser = _optimiser(config.train)
    state = ckpt.load_state(run_dir / ckpt.CHECKPOINT, init_state(params, optimiser))
    posterior, w_d = _posterior(config, partition, sampler, state.params, w_mle)
    return FittedRun(config, partition, posterior, w_d, w_mle, scaler, int(state.epoch))


def sample_weights(run: FittedRun, n: int, key: PRNGKeyArray, *, batch: int = 8192):
    """Draw ``n`` posterior samples of the whole flat weight vector, ``(n, nw)``.

    For the Langevin sampler one simulation of the learned SDE with ``n`` replicas (in batches of
    ``batch``), no data-model evaluations; for BBVI draws of the guide; for NUTS draws of the
    stored chains. Deterministic entries are repeated in every row.
    """
    if n < 1:
        raise ConfigError(f"the number of samples must be at least 1, got {n}")
    parts = []
    for i, start in enumerate(range(0, n, batch)):
        size = min(batch, n - start)
        parts.append(_draw(run.posterior, run.partition, run.w_d, jr.fold_in(key, i), size))
    return jnp.concatenate(parts, axis=0)


@eqx.filter_jit
def _draw(posterior: AbstractPosterior, partition: WeightPartition, w_d, key, n: int):
    w_s = posterior.draw(key, n)
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
