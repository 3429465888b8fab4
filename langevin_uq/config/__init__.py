"""Typed run configuration, read from TOML (INTERFACE.md "Config").

Every key has a default; unknown sections or keys and ill-typed values are refused with a
`ConfigError` naming the key. `Config.to_toml` writes the resolved configuration with every
default filled in, which is what a run directory keeps.
"""

from .sections import (
    DRIFT_INITS,
    METHODS,
    DataOptions,
    LikelihoodOptions,
    MethodOptions,
    ModelOptions,
    PartitionOptions,
    PriorOptions,
    SamplerOptions,
    TrainOptions,
)
from .toml import Config

__all__ = [
    "DRIFT_INITS",
    "METHODS",
    "Config",
    "DataOptions",
    "LikelihoodOptions",
    "MethodOptions",
    "ModelOptions",
    "PartitionOptions",
    "PriorOptions",
    "SamplerOptions",
    "TrainOptions",
]
