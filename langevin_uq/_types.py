"""Shape-annotated array aliases used across the package.

Dimension names: ``N`` trajectories, ``T`` observation times, ``ny`` outputs, ``nx`` inputs,
``nh`` hidden/ODE state, ``nw`` data-model weights, ``ns`` stochastic weights, ``R`` replicas,
``M`` posterior samples, ``S`` pseudo-time steps.
"""

from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree

__all__ = ["Array", "Bool", "Float", "Int", "PRNGKeyArray", "PyTree"]
