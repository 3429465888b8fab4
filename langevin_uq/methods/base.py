"""The interface every inference method implements, and the capabilities it declares.

A method is built from its config sections (`langevin_uq.methods.method_for`) and turns a
`langevin_uq.prepare.Problem` into a posterior over the stochastic weights ``w_S``: the
ELBO-trained ones (`trained`) give `init`'s parameters to the training loop
(`langevin_uq.train.make_chunk_step` on their `objective`); the others (`run`) sample directly.
`skeleton` is the untrained structure a checkpoint loads into, `posterior` the fitted law.

What a method can do is declared on its class and refused by `check` when a config is read
(`langevin_uq.config.Config`), before any fit.
"""

from typing import ClassVar

import equinox as eqx

from ..errors import ConfigError
from ..likelihoods import KINDS as LIKELIHOODS

GUIDED_LIKELIHOODS = {"gauss-newton": ("gaussian",)}
"""``sampler.drift_init`` values that need certain likelihoods (a Gauss-Newton guide needs a
Gaussian one). The ``[sampler]`` section is read for every method, so every config is checked."""


class AbstractMethod(eqx.Module):
    """An inference method over ``w_S``.

    Class attributes (capabilities):
        kinds: the ``method.kind`` values of the class.
        likelihoods: the likelihood kinds it accepts.
        reoptimises: whether it can re-optimise ``w_D`` (``partition.rest = 'optimise'``).
        min_epochs: the fewest ``train.epochs`` it can run.
        min_particles: the fewest ``method.particles`` (draws per step) it can run.
        needs_beta: whether it needs ``train.beta > 0`` (a proper posterior).
        trained: trained on an `objective` by the epoch loop (else sampled by `run`).
        retries: a divergence can be retried with ``sampler.dtau`` halved.
    """

    kinds: ClassVar[tuple[str, ...]] = ()
    likelihoods: ClassVar[tuple[str, ...]] = LIKELIHOODS
    reoptimises: ClassVar[bool] = True
    min_epochs: ClassVar[int] = 0
    min_particles: ClassVar[int] = 1
    needs_beta: ClassVar[bool] = True
    trained: ClassVar[bool] = True
    retries: ClassVar[bool] = False

    @property
    def samples_noise(self) -> bool:
        """Whether a learned noise (``log_sigma``) is sampled when the partition selects it;
        ``False`` holds it at the MLE."""
        return True

    @classmethod
    def check(cls, config) -> None:
        """Refuse a config this method cannot run (`ConfigError` naming the key and the fix)."""
        kind, lk = config.method.kind, config.likelihood.kind
        if lk not in cls.likelihoods:
            accepted = " or ".join(map(repr, cls.likelihoods))
            raise ConfigError(
                f"method.kind = {kind!r} needs a probabilistic likelihood; the energy score is a "
                f"score, not a density: use likelihood.kind {accepted}"
            )
        if config.partition.reoptimise and not cls.reoptimises:
            raise ConfigError(
                f"method.kind = {kind!r} cannot re-optimise w_D; use partition.variant 'bll-fixed' "
                "or partition.rest = 'fixed'"
            )
        init = config.sampler.drift_init
        if lk not in GUIDED_LIKELIHOODS.get(init, (lk,)):
            raise ConfigError(
                f"sampler.drift_init = {init!r} needs likelihood.kind = 'gaussian', got "
                f"{lk!r}; 'laplace' serves every likelihood"
            )
        modes = config.sampler.modes
        if (
            modes != "auto"
            and modes > 1
            and (lk != "marginal-mixture" or modes != config.likelihood.modes)
        ):
            raise ConfigError(
                f"sampler.modes = {modes} starts one basin per data mode: it needs likelihood.kind"
                f" = 'marginal-mixture' with likelihood.modes = {modes} (got {lk!r} with "
                f"{config.likelihood.modes}); use sampler.modes = 'auto' or 1"
            )
        if config.train.epochs < cls.min_epochs:
            raise ConfigError(
                f"method.kind = {kind!r} needs train.epochs >= 1; epochs = 0 (sampling the "
                "starting drift untrained) is for the Langevin sampler"
            )
        if config.method.particles < cls.min_particles:
            raise ConfigError(
                f"method.particles must be at least {cls.min_particles}, got "
                f"{config.method.particles}"
            )
        if cls.needs_beta and not config.train.beta > 0:
            raise ConfigError(
                f"method.kind = {kind!r} needs train.beta > 0, got {config.train.beta}"
            )

    def skeleton(self, setup, record: dict | None):
        """The untrained parameters of ``setup`` (what a checkpoint loads into); ``record`` is
        what `init` recorded in ``model.json`` (``drift``). ``None`` when nothing is trained."""
        return None

    def init(self, problem) -> tuple:
        """The parameters training starts from, and the record for ``model.json``'s ``drift``
        (``None`` for the baselines)."""
        return self.skeleton(problem, None), None

    def objective(self, problem, record: dict | None):
        """``objective(params, key, epoch) -> (loss, (nll, kl, heldout, gamma))``."""
        raise NotImplementedError(f"{type(self).__name__} is not trained on an objective")

    def run(self, problem, key, *, progress: bool = False):
        """Sample the posterior directly (the untrained methods)."""
        raise NotImplementedError(f"{type(self).__name__} is trained, not run")

    def posterior(self, setup, params, record: dict | None) -> tuple:
        """The fitted `langevin_uq.posterior.AbstractPosterior` and its ``w_D``."""
        raise NotImplementedError

    def divergence_message(self, objective, state, key, config, halvings: int, run_dir) -> str:
        """Why training stopped, with the likely cause and the fix."""
        return (
            f"the loss became NaN or infinite at epoch {int(state.epoch) + 1}: lower train.lr = "
            f"{config.train.lr:g} or method.init_scale, then resume{kept_in(run_dir, state)}"
        )


def kept_in(run_dir, state) -> str:
    """The end of a divergence message: where the last good state is kept."""
    if run_dir is None:
        return ""
    return f"; the checkpoint in {run_dir} keeps epoch {int(state.epoch)}"
