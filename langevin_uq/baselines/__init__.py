"""Comparison methods on the same data model, likelihood and prior as the Langevin sampler.

`bbvi`: black-box variational inference with a Gaussian guide (full or mean-field covariance)
through NumPyro's ELBO; `nuts`: the No-U-Turn sampler through NumPyro's MCMC, the reference for
probabilistic likelihoods. `model.ProbabilisticModel` is the NumPyro model both share.
"""
