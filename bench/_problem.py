"""The `Problem` a benchmark studies: data, model, MLE and likelihood of a config, as `fit`
builds them (`langevin_uq.run.fit`), without a run directory or training."""

from langevin_uq.prepare import data_model, dtype_of, prepare, relabel_groups


def problem_for(data, config, mle=None):
    """``data`` (group ids relabelled here) under ``config``; ``mle`` a known ``(w_mle, {})``."""
    dtype = dtype_of(config.train)
    data = relabel_groups(data)
    model, own = data_model(config.model, config.train.seed, data.n_outputs, data.n_inputs,
                            dtype)  # fmt: skip
    return prepare(data, model, own, dtype, mle, data_options=config.data,
                   model_options=config.model, partition=config.partition, prior=config.prior,
                   likelihood=config.likelihood, train=config.train)  # fmt: skip


def relaxation_data():
    """The data of `schlogl_node_vs_nuts.toml`: four noisy copies (sd 0.05) of one OU relaxation
    curve at 26 times."""
    import jax.random as jr

    from langevin_uq.systems.ou import OUSystem, simulate_ou

    return simulate_ou(OUSystem(n=4, n_times=26, theta_sd=0.0, mu_sd=0.0), jr.key(0),
                       noise_sd=0.05)  # fmt: skip


def nuts_agreement(run, data, w, nuts: dict) -> dict:
    """Draws ``w`` ``(M, nw)`` against NUTS's (``bench/out/node_nuts.npz``): per-weight sd
    ratios, the share of them in [0.8, 1.25], the predictive W1 of the first 2000 draws to
    NUTS's (first trajectory, averaged over times) and NUTS's predictive sd."""
    import numpy as np

    from langevin_uq.metrics import wasserstein1
    from langevin_uq.run import predict

    ratio = np.asarray(w).std(0) / nuts["w"].std(0)
    pred = np.asarray(predict(run, data, w[:2000]))
    w1 = np.mean([wasserstein1(pred[:, 0, j, 0], nuts["pred"][:, 0, j, 0])
                  for j in range(pred.shape[2])])  # fmt: skip
    return {"ratio": ratio, "inside": float(np.mean((ratio >= 0.8) & (ratio <= 1.25))),
            "w1": float(w1), "spread": float(np.mean(nuts["pred"][:, 0, :, 0].std(0)))}  # fmt: skip
