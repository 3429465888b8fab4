"""The typed sections of a run configuration, one frozen dataclass per TOML table.

Each section checks its own values when built (`__post_init__`), so a `ConfigError` names the
key as soon as a config is read.
"""

from dataclasses import dataclass, field

from ..errors import ConfigError
from ._checks import _at_least, _choice, _non_negative, _positive, _positive_ints, _table


@dataclass(frozen=True)
class DataOptions:
    """``[data]``: scaling of the outputs and the validation split."""

    scaling: str = "standardize"
    validation_fraction: float = 0.1

    def __post_init__(self):
        _choice("data.scaling", self.scaling, ("standardize", "none"))
        if not 0 <= self.validation_fraction < 1:
            raise ConfigError(
                f"data.validation_fraction must be in [0, 1), got {self.validation_fraction}"
            )


@dataclass(frozen=True)
class ModelOptions:
    """``[model]``: the data model: the built-in neural ODE's sizes and activations, or your
    own module (``module = "FILE.py:NAME"`` or ``"package.module:NAME"``, constructor keyword
    arguments in ``args``; INTERFACE.md "Your own model"). ``fixed`` names array leaves that
    are constants; ``substeps`` is the Heun steps per observation interval for either."""

    module: str = ""
    args: dict = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)
    hidden_state: int = 0
    R_hidden: list[int] = field(default_factory=lambda: [16, 16])
    R_activation: str = "tanh"
    observation: str = "identity"
    Z_hidden: list[int] = field(default_factory=lambda: [16])
    Z_activation: str = "softplus"
    substeps: int = 1

    def __post_init__(self):
        from ..model import ACTIVATIONS

        _choice("model.observation", self.observation, ("identity", "mlp"))
        _choice("model.R_activation", self.R_activation, tuple(ACTIVATIONS))
        _choice("model.Z_activation", self.Z_activation, tuple(ACTIVATIONS))
        _positive_ints("model.R_hidden", self.R_hidden)
        _positive_ints("model.Z_hidden", self.Z_hidden)
        _at_least("model", self, 1, "substeps")
        _non_negative("model", self, "hidden_state")
        if not all(isinstance(f, str) and f for f in self.fixed):
            raise ConfigError(f"model.fixed must be a list of leaf paths, got {self.fixed!r}")
        if self.args and not self.module:
            raise ConfigError("model.args are the arguments of model.module, which is not set")
        if self.module:
            from ..datamodel import split_spec

            split_spec(self.module)


@dataclass(frozen=True)
class PartitionOptions:
    """``[partition]``: which weights are sampled (METHOD section 3; INTERFACE.md "Which
    weights are sampled"). ``stochastic`` is ``"all"`` or a list of leaf paths and prefixes;
    ``rest`` says whether the other weights stay at the MLE or are re-optimised. ``variant``
    names a preset of the built-in model (``bll-*``: the last layers of ``submodels``)."""

    variant: str = "full"
    submodels: list[str] = field(default_factory=lambda: ["R", "Z"])
    stochastic: str | list = "all"
    rest: str = "fixed"

    def __post_init__(self):
        _choice("partition.variant", self.variant, ("full", "bll-fixed", "bll-reopt"))
        for s in self.submodels:
            _choice("partition.submodels entry", s, ("R", "Z"))
        _choice("partition.rest", self.rest, ("fixed", "reoptimise"))
        if isinstance(self.stochastic, str):
            _choice("partition.stochastic", self.stochastic, ("all",))
        elif not self.stochastic or not all(isinstance(p, str) and p for p in self.stochastic):
            raise ConfigError(
                f"partition.stochastic must be 'all' or a list of leaf paths, got "
                f"{self.stochastic!r}"
            )
        if self.variant != "full" and (self.stochastic != "all" or self.rest != "fixed"):
            raise ConfigError(
                f"partition.variant = {self.variant!r} is a preset of stochastic and rest; set "
                "either the preset or partition.stochastic / partition.rest, not both"
            )

    @property
    def reoptimise(self) -> bool:
        return self.variant == "bll-reopt" or self.rest == "reoptimise"


@dataclass(frozen=True)
class PriorOptions:
    """``[prior]``: the OU prior's stationary mean and scale per weight (INTERFACE.md "Which
    weights are sampled, and their prior"). ``mean`` is ``"mle"``, ``"zero"`` or a table from
    leaf paths to a number or an array of the leaf's shape; ``scale`` a number or such a table.
    Weights no table entry matches take ``default_mean`` and ``default_scale``."""

    mean: str | dict = "mle"
    scale: float | dict = 1.0
    default_mean: str = "mle"
    default_scale: float = 1.0

    def __post_init__(self):
        if isinstance(self.mean, str):
            _choice("prior.mean", self.mean, ("mle", "zero"))
        else:
            _table("prior.mean", self.mean, positive=False)
        if isinstance(self.scale, dict):
            _table("prior.scale", self.scale, positive=True)
        else:
            _positive("prior", self, "scale")
        _choice("prior.default_mean", self.default_mean, ("mle", "zero"))
        _positive("prior", self, "default_scale")


DRIFT_INITS = ("laplace", "prior", "gauss-newton")


@dataclass(frozen=True)
class SamplerOptions:
    """``[sampler]``: the learned-drift Langevin SDE (METHOD sections 5-6).

    The pseudo-time span is ``T = steps * dtau`` (default 4: the prior forgets the start to
    within 0.03 % in variance, METHOD section 5 "Which posterior"); ``schedule = "geometric"``
    shrinks the steps like the remaining time down to ``final_dtau``, which ``"auto"`` derives
    from the data's largest precision (`langevin_uq.sampler.auto_final_dtau`). ``"uniform"``
    takes equal steps, as in the paper.
    ``drift_init`` chooses where training starts (`langevin_uq.htransform`): ``"laplace"`` at
    the Gaussian h-transform of the Gauss-Newton approximation at the MLE (every likelihood;
    for the energy score a Gaussian with the data's spread), ``"prior"`` at the prior SDE,
    ``"gauss-newton"`` (``gaussian`` likelihood) at the prior plus a fixed h-transform of the
    data model linearised at each replica, which evaluates the data model at every step
    (``gauss_newton_iterations`` moves each linearisation point towards where the likelihood
    is). ``max_rank`` caps how many data-informed directions the drift treats jointly.
    ``modes`` is the number of basins of the weight posterior the drift starts in
    (`langevin_uq.mixture_tilt`): ``"auto"`` takes ``likelihood.modes`` with the
    ``marginal-mixture`` likelihood and 1 otherwise; more than 1 needs that likelihood, one basin
    per data mode, each at its MAP (`langevin_uq.modes.find_basins`) with its Laplace mass.
    """

    replicas: int = 256
    steps: int = 100
    dtau: float = 0.04
    schedule: str = "geometric"
    final_dtau: str | float = "auto"
    drift_hidden: list[int] = field(default_factory=lambda: [32, 32])
    max_rank: int = 32
    init_noise: float = 1e-2
    drift_init: str = "laplace"
    gauss_newton_iterations: int = 1
    gamma0: float = 1.0
    anneal_epochs: int = 0
    posterior_samples: int = 1000
    modes: str | int = "auto"

    def __post_init__(self):
        _at_least("sampler", self, 2, "replicas", "steps")
        _at_least("sampler", self, 1, "max_rank")
        _positive("sampler", self, "dtau")
        _choice("sampler.schedule", self.schedule, ("geometric", "uniform"))
        if isinstance(self.final_dtau, str):
            _choice("sampler.final_dtau", self.final_dtau, ("auto",))
        elif self.schedule == "geometric" and not 0 < self.final_dtau < self.dtau:
            raise ConfigError(
                f"sampler.final_dtau must be 'auto' or lie in (0, sampler.dtau), got "
                f"{self.final_dtau}"
            )
        _positive_ints("sampler.drift_hidden", self.drift_hidden)
        _non_negative("sampler", self, "init_noise")
        _choice("sampler.drift_init", self.drift_init, DRIFT_INITS)
        _non_negative("sampler", self, "gauss_newton_iterations")
        _at_least("sampler", self, 1, "gamma0")
        _non_negative("sampler", self, "anneal_epochs")
        _at_least("sampler", self, 1, "posterior_samples")
        if isinstance(self.modes, str):
            _choice("sampler.modes", self.modes, ("auto",))
        elif isinstance(self.modes, bool) or not float(self.modes).is_integer():
            raise ConfigError(f"sampler.modes must be 'auto' or a whole number, got {self.modes}")
        else:
            _at_least("sampler", self, 1, "modes")


@dataclass(frozen=True)
class LikelihoodOptions:
    """``[likelihood]``: how the replicas' predictions are scored (METHOD section 7)."""

    kind: str = "gaussian"
    modes: int = 1
    time_reduction: str = "sum"
    time_weighting: str = "inverse-spread"
    marginal: bool = False
    sigma: str | float = "auto"

    def __post_init__(self):
        _choice("likelihood.kind", self.kind, ("gaussian", "marginal-mixture", "energy-score"))
        _choice("likelihood.time_reduction", self.time_reduction, ("sum", "mean"))
        _choice("likelihood.time_weighting", self.time_weighting, ("none", "inverse-spread"))
        _at_least("likelihood", self, 1, "modes")
        if self.marginal and self.kind != "energy-score":
            raise ConfigError("likelihood.marginal applies to the energy score only")
        if isinstance(self.sigma, str):
            _choice("likelihood.sigma", self.sigma, ("auto", "learn"))
        elif not self.sigma > 0:
            raise ConfigError(
                f"likelihood.sigma must be 'auto', 'learn' or positive, got {self.sigma}"
            )
        if self.sigma == "learn" and self.kind != "gaussian":
            raise ConfigError(
                f"likelihood.sigma = 'learn' needs likelihood.kind = 'gaussian', got {self.kind!r}"
            )


@dataclass(frozen=True)
class TrainOptions:
    """``[train]``: optimisation of the drift (and ``w_D``) and of the MLE pre-fit.

    ``lr_schedule = "cosine"`` decays Adam's step from ``lr`` to ``lr_final * lr`` over
    ``epochs``: the loss is a Monte Carlo estimate, and the decay averages its noise out.
    ``lr_warmup > 0`` first ramps the step linearly up to ``lr`` over that many epochs (then
    the schedule runs over the remaining epochs).
    ``grad_clip`` caps the gradient's global norm before Adam (0 turns it off). Early replicas
    spread as wide as the prior, where a nonlinear model's likelihood is extreme; unclipped,
    those first gradients drive the drift into a collapsed state it does not leave (measured:
    posterior sds 0.2x the exact ones without clipping, 0.98x with it).
    ``divergence_retries`` (Langevin sampler only): when the loss or the replicas become NaN or
    infinite, continue from the last good state with ``sampler.dtau`` halved and
    ``sampler.steps`` doubled (the same pseudo-time span), at most this many times.
    ``epochs = 0`` (Langevin sampler only) skips the ELBO training: the run samples its
    starting drift, which is worth doing with a ``sampler.drift_init`` guide.
    ``diagnostics``: after training, a fit with a run directory writes ``ksd.json`` (the KSD
    of 512 draws against the posterior's score, and for the Langevin sampler the pseudo-time
    grid check); ``false`` skips it (it costs 512 gradients of the data term and a few
    compilations; `report --train-data` computes it later).
    """

    epochs: int = 2000
    lr: float = 1e-2
    lr_schedule: str = "cosine"
    lr_final: float = 0.05
    lr_warmup: int = 0
    grad_clip: float = 10.0
    beta: float = 1.0
    mle_epochs: int = 2000
    mle_lr: float = 1e-2
    mle_patience: int = 200
    batch_trajectories: int = 0
    seed: int = 0
    checkpoint_every: int = 100
    divergence_retries: int = 0
    x64: bool = False
    diagnostics: bool = True

    def __post_init__(self):
        _non_negative("train", self, "epochs", note=" (0 = sample the starting drift untrained)")
        _at_least("train", self, 1, "mle_epochs", "checkpoint_every")
        _positive("train", self, "lr", "mle_lr")
        _choice("train.lr_schedule", self.lr_schedule, ("cosine", "constant"))
        if not 0 < self.lr_final <= 1:
            raise ConfigError(f"train.lr_final must be in (0, 1], got {self.lr_final}")
        _non_negative("train", self, "lr_warmup", note=" (0 = off)")
        if self.lr_warmup and self.lr_warmup >= self.epochs:
            raise ConfigError(
                f"train.lr_warmup = {self.lr_warmup} must be shorter than train.epochs = "
                f"{self.epochs}"
            )
        _non_negative("train", self, "grad_clip", note=" (0 = off)")
        _non_negative("train", self, "beta")
        _non_negative("train", self, "batch_trajectories", note=" (0 = all)")
        _at_least("train", self, 1, "mle_patience")
        _non_negative("train", self, "divergence_retries")


@dataclass(frozen=True)
class MethodOptions:
    """``[method]``: how the posterior is represented and fitted.

    ``"ls"`` is the Langevin sampler of this library (``[sampler]``). The baselines fit the same
    data model, likelihood and prior: ``"bbvi-full"`` / ``"bbvi-meanfield"`` a Gaussian guide
    with full / diagonal covariance (``particles`` draws per step, started at the MLE with sd
    ``init_scale``; epochs, rate and batch from ``[train]``); ``"nuts"`` NumPyro's NUTS with
    ``chains`` chains of ``warmup`` + ``samples`` steps (probabilistic likelihoods only).
    """

    kind: str = "ls"
    particles: int = 64
    init_scale: float = 1e-2
    warmup: int = 500
    samples: int = 1000
    chains: int = 4
    target_accept: float = 0.8
    max_tree_depth: int = 10

    def __post_init__(self):
        _choice("method.kind", self.kind, METHODS)
        _at_least("method", self, 1, "particles", "samples", "chains", "max_tree_depth")
        _non_negative("method", self, "warmup")
        _positive("method", self, "init_scale")
        if not 0 < self.target_accept < 1:
            raise ConfigError(f"method.target_accept must be in (0, 1), got {self.target_accept}")


METHODS = ("ls", "bbvi-full", "bbvi-meanfield", "nuts")
