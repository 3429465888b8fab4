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
