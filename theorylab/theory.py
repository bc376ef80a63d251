"""Derived formulas of the Feature Purification reconstruction: radii and anti-concentration.

Every function here is labelled **[D]**: derived in ``feature_purification.md``
section 3.3 / 3.4 for theorylab's concrete model (section 1.3), *not* the
paper's statement (whose constants and radii are unknown, spec section 3.2).
Checks compare measurements with these formulas; a mismatch says something
about the derivation, not necessarily about the paper.

Notation: d dimension, k expected number of non-zero codes (each z_j != 0 with
probability k/d), sigma the noise level (xi ~ N(0, sigma^2/d I)), c the
relative threshold of the network, margin = |<w*, z>|.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.special
import scipy.stats

from ._validation import check_bool, check_choice, check_float, check_int, check_norm

__all__ = [
    "code_second_moment",
    "linear_robust_bound",
    "linear_failure_radius",
    "ntk_failure_radius",
    "purified_radius",
    "polynomial_failure_radius",
    "polynomial_tau50_slope",
    "clean_network_radius",
    "margin_pmf",
    "tie_probability",
    "small_margin_probability",
    "small_margin_bound",
]


def _kd(k, d):
    d = check_int("d", d, 1)
    k = check_float("k", k, 1.0, float(d))
    return k, d


def code_second_moment(codes="pm1", code_low=0.1):
    """E r^2 of a non-zero code magnitude: 1 for +-1 codes, (1 + a + a^2)/3 for U[a, 1]. [D]"""
    check_choice("codes", codes, ("pm1", "continuous"))
    a = check_float("code_low", code_low, 0.0, 1.0, low_open=True)  # checked even if unused
    if codes == "pm1":
        return 1.0
    return (1.0 + a + a * a) / 3.0


def linear_robust_bound(k, d, tau, *, sigma=0.0, norm=2, density=None, codes="pm1",
                        code_low=0.1):
    """Upper bound on the robust accuracy of any linear rule sign(<u, x>), spec 3.3(ii). [D]

    Robust-correctness at radius tau needs |<u, x>| >= tau ||u||_q (q dual to
    the threat norm); Markov's inequality on E<u, x>^2 = (k m2 + sigma^2)/d ||u||_2^2
    (m2 = E r^2, 1 for +-1 codes) gives

    * l2:   robust acc <= (k + sigma^2) / (d tau^2);
    * linf: robust acc <= (k + sigma^2) / (d tau^2 rho), rho = ||u||_1^2 / ||u||_2^2
      the rule's effective number of coordinates (``density``; default d, a
      fully dense rule such as u = w*, giving (k + sigma^2)/(d^2 tau^2)).

    The bound is for the product code law and b = 0 as in the spec; tie
    resampling (which conditions on <w*, z> != 0) can raise E<u, z>^2 by at
    most the factor 1 / (1 - :func:`tie_probability`).

    Returns
    -------
    float
        The bound, clipped to [0, 1] (1 at tau = 0).
    """
    k, d = _kd(k, d)
    tau = check_float("tau", tau, 0.0)
    sigma = check_float("sigma", sigma, 0.0)
    p = check_norm(norm, allowed=(2.0, np.inf))
    second = k * code_second_moment(codes, code_low) + sigma ** 2
    if p == np.inf:
        rho = float(d) if density is None else check_float("density", density, 1.0, float(d))
    else:
        rho = 1.0
    if tau == 0:
        return 1.0
    return min(1.0, second / (d * tau ** 2 * rho))


def linear_failure_radius(k, d, norm=2):
    """Radius where linear rules stop being robust: sqrt(k/d) (l2), sqrt(k)/d (linf). [D]

    Spec 3.3(ii) and the table of 3.4.
    """
    k, d = _kd(k, d)
    p = check_norm(norm, allowed=(2.0, np.inf))
    return math.sqrt(k / d) if p == 2.0 else math.sqrt(k) / d


def ntk_failure_radius(k, d, norm=2):
    """NTK with random frozen gates: locally linear, so the linear radius. [D] spec 3.3(vi)."""
    return linear_failure_radius(k, d, norm)


def purified_radius(k, norm=2, *, c=0.5, margin=None, n_active=None, d=None,
                    dictionary="identity"):
    """Robust radius of the purified network (one neuron per atom, threshold c), spec 3.3(iii). [D]

    * l2: (1 - c) margin / sqrt(n), Theta(1) for typical points;
    * linf, M = I: min(c, (1 - c) margin / n) (no inactive unit opens, the n
      active ones keep their sum), about 1/(2 sqrt(k)) at c = 1/2;
    * linf, dense incoherent M: the same divided by sqrt(d) (``d`` required).

    With the defaults n = k and margin = sqrt(k) (a typical point).  Given a
    point's own ``margin`` = |<w*, z>| and ``n_active`` = #{j: z_j != 0}, the
    identity-dictionary values are the *certified* radii of that noise-free
    +-1 code point: y f(x + delta) = (1 - c) margin - sum over active j of
    |delta_j| (plus opened inactive units, which cost c each first), so no
    smaller perturbation flips it (checked in tests/test_theory.py).
    """
    k = check_float("k", k, 1.0)
    p = check_norm(norm, allowed=(2.0, np.inf))
    c = check_float("c", c, 0.0, 1.0, high_open=True)
    check_choice("dictionary", dictionary, ("identity", "orthogonal", "hadamard"))
    margin = math.sqrt(k) if margin is None else check_float("margin", margin, 0.0)
    n = k if n_active is None else check_float("n_active", n_active, 1.0)
    if p == 2.0:
        return (1.0 - c) * margin / math.sqrt(n)
    r = min(c, (1.0 - c) * margin / n)
    if dictionary == "identity":
        return r
    if d is None:
        raise ValueError("d is required for a dense dictionary")
    return r / math.sqrt(check_int("d", d, 1))


def polynomial_failure_radius(k, d, degree, *, margin=None):
    """Dense-attack (linf, M = I) failure radius of a separable odd polynomial, spec 3.3(v). [D]

    Each of the ~d - k inactive coordinates shifts f by about tau^D, so the
    point flips once (d - k) tau^D exceeds its margin:
    tau ~ (margin / (d - k))^(1/D), i.e. (sqrt(k)/d)^(1/D) for the typical margin sqrt(k).
    """
    k, d = _kd(k, d)
    degree = check_int("degree", degree, 1)
    margin = math.sqrt(k) if margin is None else check_float("margin", margin, 0.0)
    return (margin / max(d - k, 1.0)) ** (1.0 / degree)


def polynomial_tau50_slope(degree):
    """Predicted slope of log tau50 against log d at fixed k: -1/D. [D] spec 3.3(v), V6."""
    return -1.0 / check_int("degree", degree, 1)


def clean_network_radius(k, d, norm=2, *, c=0.5):
    """Heuristic failure radius of the clean-trained network, spec 3.3(iv). [D]

    linf (M = I): c / k (inactive units open once k tau ~ c; low-margin points
    flip earlier).  l2: sqrt(d) / k^1.5 (only the ~k active units shift, by
    tau k / sqrt(d) each).
    """
    k, d = _kd(k, d)
    p = check_norm(norm, allowed=(2.0, np.inf))
    check_float("c", c, 0.0, low_open=True)
    return c / k if p == np.inf else math.sqrt(d) / k ** 1.5


# -- anti-concentration of the margin <w*, z> for +-1 codes ---------------------

def _n_support(k, d):
    # Values of N = #non-zero codes ~ Bin(d, k/d) carrying all but 1e-16 of the mass.
    hi = int(scipy.stats.binom.isf(1e-16, d, k / d)) + 1
    return np.arange(0, min(d, hi) + 1)


def margin_pmf(k, d):
    """Exact law of S = <w*, z> for +-1 codes (before tie resampling). [D] spec 1.3

    w*_j z_j = B_j s_j w*_j is a Rademacher sign times Bernoulli(k/d), so S is
    a sum of N ~ Bin(d, k/d) independent signs: P(S = s) = sum_n P(N = n)
    C(n, (n + s)/2) / 2^n.

    Returns
    -------
    values : ndarray of int
    probs : ndarray
    """
    k, d = _kd(k, d)
    ns = _n_support(k, d)
    pn = scipy.stats.binom.pmf(ns, d, k / d)
    top = int(ns[-1])
    values = np.arange(-top, top + 1)
    probs = np.zeros(values.size)
    for n, w in zip(ns, pn):
        j = np.arange(n + 1)  # number of +1 signs; S = 2j - n
        logc = scipy.special.gammaln(n + 1) - scipy.special.gammaln(j + 1) \
            - scipy.special.gammaln(n - j + 1) - n * math.log(2.0)
        probs[2 * j - n + top] += w * np.exp(logc)
    return values, probs


def tie_probability(k, d):
    """P(<w*, z> = 0) for +-1 codes: the fraction of draws the world resamples. [D]"""
    values, probs = margin_pmf(k, d)
    return float(probs[values == 0].sum())


def small_margin_probability(k, d, t=1, *, conditioned=True):
    """Exact Pr[|<w*, z>| <= t] for +-1 codes (Littlewood-Offord anti-concentration). [D]

    With ``conditioned`` (default) the law is the world's, conditioned on
    <w*, z> != 0 by tie resampling.  Spec 1.3 states O(1/sqrt(k));
    :func:`small_margin_bound` is an explicit bound of that order.
    """
    t = check_float("t", t, 0.0)
    conditioned = check_bool("conditioned", conditioned)
    values, probs = margin_pmf(k, d)
    small = np.abs(values) <= t
    if not conditioned:
        return float(probs[small].sum())
    nz = values != 0
    return float(probs[small & nz].sum() / probs[nz].sum())


def small_margin_bound(k, d=None, *, conditioned=True):
    """Explicit O(1/sqrt(k)) bound on Pr[|<w*, z>| <= 1] for +-1 codes. [D]

    Given N = n non-zero codes, |S| <= 1 takes at most two values of S's parity
    class, each of probability <= C(n, floor(n/2)) / 2^n <= sqrt(2/(pi n))
    (Erdos 1945 for unit weights).  Splitting on N <= k/2, whose probability is
    at most exp(-k/8) by Chernoff, gives

        Pr[|S| <= 1] <= exp(-k/8) + 4 / sqrt(pi k).

    Conditioning on S != 0 divides by 1 - P(S = 0) (``d`` is then needed to
    compute it exactly).
    """
    k = check_float("k", k, 1.0)
    conditioned = check_bool("conditioned", conditioned)
    bound = math.exp(-k / 8.0) + 4.0 / math.sqrt(math.pi * k)
    if not conditioned:
        return min(1.0, bound)
    if d is None:
        raise ValueError("d is required for the conditioned bound")
    return min(1.0, bound / (1.0 - tie_probability(k, d)))
