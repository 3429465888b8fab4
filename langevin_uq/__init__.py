"""langevin-uq: uncertainty quantification of neural-ODE models by Langevin sampling."""

__version__ = "0.1.0"
