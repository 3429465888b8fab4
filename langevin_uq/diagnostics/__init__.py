"""Chain-free sample-quality diagnostics: the kernel Stein discrepancy (KSD) of posterior samples.

A sampler's draws ``w_1..w_M`` and the posterior's score ``grad log p(w)`` at those draws are
all the KSD needs (Liu, Lee & Jordan 2016; Gorham & Mackey 2017): no chains, no normalising
constant, no reference samples; with this kernel it tends to zero only if the samples
converge to ``p`` (for distantly dissipative ``p``, Gorham & Mackey's Theorem 8).
`ksd_report` reads it three ways, and `verdict` flags the samples on the last two:

* size: the V-statistic ``KSD`` divided by `gaussian_reference`, the KSD that ``M`` exact draws
  from the samples' own Gaussian fit get against that Gaussian's exact score (its size alone
  means little: exact draws get about ``sqrt(tr(C^-1) / M)``, ``C`` the scaled covariance);
* significance: the U-statistic (the V-statistic's double sum without its diagonal, unbiased
  for the population ``KSD^2``, so 0 on average for exact draws of any law) as a z-score over
  its null sd, with a p-value (`_u_test`). The null sd and the p-value's degrees of freedom
  come from the samples' own Stein kernel matrix, so the test stays calibrated for exact
  draws of non-Gaussian laws; ``z`` cannot exceed ``sqrt(M (M - 1) / 2)``, which grossly
  wrong samples approach;
* dispersion: Stein's identity ``E_p[grad log p(w) (w - a)^T] = -I``, which holds for any
  law, read as the mean over draws and weights of ``-score_j (w_j - mean_j)``: 1 for exact
  draws, about the squared sd ratio for a Gaussian posterior (`report._dispersion`).

The size and the significance cover each other's blind spot on Gaussian posteriors. The default
scale divides by the samples' own sd, so samples shrunk by ``a`` see scores ``a^2`` times
smaller: their KSD tends to a constant while the exact-draw floor (the diagonal) grows like
``sqrt(d / M)``, and a collapse's ratio falls like ``sqrt(M / d)`` (below 1 at d = 50, M = 512);
the U-statistic has no diagonal and puts the same collapse 300 null sds out. Samples too wide
see large scores, which raise their own null variance, so at d = 50 their z is only 2.8-6.3;
their ratio stays at 4.5 or more, and their dispersion near 4. (The null spread of the
reference's U-statistics instead of the samples' own, as first tried, put the d = 50 collapse at
only 4.7-5.0 sds and flagged 7-10 % of exact draws of well-separated modes, whose null spread no
Gaussian has.)

Measured (default scale; targets N(mu, Sigma): d = 2 with sds (1, 3) and correlation 0.8, d = 10
and 50 with sds log-spaced over 0.1..10 and correlation 0.5^|i-j|; the wrong samples are exact
draws with every sd times 0.3 or 2, or the mean moved by 0.5 or 1 sd in every coordinate).
Exact draws: median (99th percentile, max) of 2500 (M = 512, d = 2), 1000 (M = 1024, d = 2),
500 (M = 512) or 200 (M = 1024) seeds; the rest: median [min-max] of 20 (M = 512) or 10 seeds.

KSD ratio:

====  ==  =================  ================  ================  ================  ================
M     d   exact              sd x 0.3          sd x 2            mean + 0.5 sd     mean + 1 sd
====  ==  =================  ================  ================  ================  ================
512   2   0.88 (2.19, 3.05)  3.77 [2.81-4.94]  12.9 [8.59-16.5]  3.04 [1.90-4.16]  5.94 [4.04-7.95]
512   10  0.96 (1.49, 1.63)  2.18 [1.85-2.47]  8.13 [7.11-9.21]  3.33 [2.74-3.97]  6.46 [5.57-7.43]
512   50  0.94 (1.14, 1.21)  0.92 [0.85-0.95]  4.79 [4.54-5.45]  2.67 [2.52-2.86]  5.05 [4.76-5.34]
1024  2   0.87 (2.10, 2.75)  5.32 [4.58-6.40]  17.8 [14.9-20.5]  4.22 [3.65-5.26]  8.15 [7.21-10.0]
1024  10  0.96 (1.56, 1.60)  3.11 [2.92-3.31]  10.8 [10.3-11.8]  4.65 [3.92-5.34]  9.07 [8.00-10.2]
1024  50  0.96 (1.18, 1.21)  1.32 [1.27-1.37]  5.95 [5.41-6.40]  3.69 [3.64-3.89]  7.18 [7.06-7.58]
====  ==  =================  ================  ================  ================  ================

U-statistic z:

====  ==  ===================  =============  ================  ================  ================
M     d   exact                sd x 0.3       sd x 2            mean + 0.5 sd     mean + 1 sd
====  ==  ===================  =============  ================  ================  ================
512   2   -0.34 (4.15, 8.04)   189 [185-195]  12.0 [10.9-17.4]  9.61 [6.27-15.0]  39.7 [32.8-46.5]
512   10  -0.16 (3.05, 4.58)   305 [302-306]  9.03 [7.51-12.3]  26.6 [21.4-33.3]  99.8 [88.6-113]
512   50  -0.09 (2.50, 3.29)   305 [302-307]  3.74 [2.82-6.28]  41.4 [38.8-45.8]  149 [144-156]
1024  2   -0.38 (4.06, 7.09)   375 [362-387]  23.9 [22.8-31.9]  21.7 [16.3-26.6]  83.7 [73.0-94.4]
1024  10  -0.15 (3.32, 4.46)   609 [607-613]  17.8 [16.6-18.8]  55.2 [43.8-62.0]  202 [181-217]
1024  50  -0.17 (2.71, 3.10)   609 [608-612]  7.40 [5.83-10.7]  82.8 [79.7-86.9]  297 [292-302]
====  ==  ===================  =============  ================  ================  ================

The z of exact draws is skewed and, at small ``d``, heavy-tailed (few eigenvalues of the
Stein kernel dominate), hence the p-value from a chi-square with the matching degrees of
freedom rather than a fixed z threshold. Its extreme tail is still about ten times too light
at d = 2 (smallest p of 2500 exact draws 4e-5), so `verdict` flags ``p < 1e-5``: no exact
Gaussian sample; every sd x 0.3 and mean + 1 sd sample at every ``M`` and ``d``; mean + 0.5 sd
in 75 % of seeds at M = 512, d = 2 and always otherwise. Inflation (sd x 2) hides from it in
many dimensions (z 2.8-6.3 at d = 50); the dispersion below catches it.

Exact draws from non-Gaussian laws (500 seeds at M = 512, 200 at M = 1024): the p-value never
fell below 1e-5 (multivariate Student-t with 5 degrees of freedom and the covariances above at
d = 2, 10, 50; two unit Gaussians at +-1.5 or +-3 along one axis at d = 2 and 10). Their ratio
sits above 1, because a law's Fisher information exceeds the inverse covariance of its
Gaussian fit: Student-t medians 0.94-1.21, and the well-separated modes at d = 2 have a median
of 1.8 and exceed 3 in 9-10 % of seeds. On a real posterior it is worse: NUTS's draws (4 x
2500, R-hat 1.0007, min ESS 6850) of the 33-weight neural ODE of ``bench/out_of_the_box.py``'s
row 12 read 15.6 (z 1.55, p 0.078), the Langevin sampler's draws there 17.7, since that
posterior is a thin curved shell. So the ratio is reported but flags nothing; over-dispersion,
which it was there to catch, is the dispersion's job.

Stein dispersion (M = 512; median [min-max]; exact Gaussian draws over 2000 seeds, wrong ones
over 20 (sd x 0.3, x 2, mean + 1 sd) or 200 (sd x 0.8, x 1.25); z = (dispersion - 1) / its
standard error):

==  ================  =====  ================  ================  ================  ================
d   exact             x 0.3  sd x 0.8          sd x 1.25         sd x 2            mean + 1 sd
==  ================  =====  ================  ================  ================  ================
2   1.00 [0.86-1.19]  0.089  0.64 [0.57-0.71]  1.55 [1.38-1.73]  3.94 [3.54-4.16]  0.98 [0.89-1.04]
10  1.00 [0.93-1.07]  0.090  0.64 [0.60-0.67]  1.56 [1.46-1.63]  4.00 [3.92-4.10]  1.00 [0.98-1.03]
50  1.00 [0.96-1.03]  0.090  0.64 [0.62-0.65]  1.56 [1.52-1.60]  3.98 [3.93-4.03]  1.00 [0.98-1.01]
==  ================  =====  ================  ================  ================  ================

Exact draws of the non-Gaussian laws above over 1000 seeds: Student-t 0.90-1.09, the modes
0.78-1.32. |z| of exact draws stayed at most 3.9 / 3.7 / 4.2 (d = 2 / 10 / 50; above 4 once in
6000 samples, with the dispersion at 1.03), and 3.6 for the non-Gaussian laws; for wrong
spreads it is at least 6.3 (sd x 1.25) and 9.2 (sd x 0.8) at d = 2, over 15 at d >= 10. NUTS's
draws of the 33-weight neural ODE above: 0.989 +- 0.049 (512 draws), 0.994 +- 0.025 (2048).
So `verdict` flags a dispersion outside [1 / 1.4, 1.4] that is also 4 standard errors from 1
(sds about 18 % off in every direction): none of the exact draws, every sd x 0.3, x 0.8 and
x 2 sample, and sd x 1.25 always at d >= 10 and in 198 of 200 seeds at d = 2. A shifted mean
leaves it at 1; the U-test catches that.
"""

from .ksd import _statistics as _statistics
from .ksd import gaussian_reference, kernel_stein_discrepancy
from .report import DEFAULT_LEVEL, DISPERSION_BAND, DISPERSION_Z, ksd_report, verdict
from .report import _u_test as _u_test
from .stein import _stein_kernel as _stein_kernel
from .stein import _stein_sums as _stein_sums
from .stein import _SteinSums as _SteinSums

__all__ = [
    "DEFAULT_LEVEL",
    "DISPERSION_BAND",
    "DISPERSION_Z",
    "gaussian_reference",
    "kernel_stein_discrepancy",
    "ksd_report",
    "verdict",
]
