"""The robust / non-robust patch world of Li & Li (ICLR 2025), as reconstructed.

Provenance (``shared/spec/robust_features.md`` sections 0-1): multi-class,
patch-structured inputs carrying sparse robust and dense non-robust features
are the paper's [C]; everything concrete here (one robust patch, the number of
non-robust patches, the coefficients, Gaussian patch noise, the supports and
signs of the feature vectors, the threat norm) is theorylab's reconstruction
[R].  Every such choice is a parameter.

Layout "A" (default, spec 1.2): u_k is s-sparse with entries +-1/sqrt(s) on
disjoint supports (||u_k||_1 = sqrt(s)); v_k is a dense sign vector with
entries +-1/sqrt(d) (||v_k||_1 = sqrt(d)).  Under an l_inf budget eps the
non-robust feature is erased once eps sqrt(d) >= beta while the robust one
survives while eps sqrt(s) << alpha.

Layout "B" (spec 1.3, disfavoured): robust and non-robust features are both
s-sparse on disjoint supports (s = 1 gives the spec's one-hot config B0), so
they differ only in how many patches carry them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import (as_generator, check_choice, check_dtype, check_float, check_int,
                           check_memory)

__all__ = ["RobustNonRobustPatches", "PatchSample", "THREATS", "LAYOUTS"]

THREATS = ("linf", "l2")
LAYOUTS = ("A", "B")


@dataclass(frozen=True)
class PatchSample:
    """A labelled draw from :class:`RobustNonRobustPatches`.

    Attributes
    ----------
    X : ndarray of shape (n, P, d)
        Inputs, one (P, d) block of patches per sample.
    y : ndarray of shape (n,)
        Integer labels in {0, ..., K-1}.
    robust_patch : ndarray of shape (n,)
        Index of the patch holding alpha u_y.
    nonrobust : ndarray of shape (n, P), bool
        Which patches hold beta v_y.
    """

    X: np.ndarray
    y: np.ndarray
    robust_patch: np.ndarray
    nonrobust: np.ndarray

    def __len__(self):
        return self.X.shape[0]

    @property
    def robust(self):
        """Boolean mask (n, P) of the robust patch."""
        mask = np.zeros(self.nonrobust.shape, dtype=bool)
        mask[np.arange(len(self)), self.robust_patch] = True
        return mask

    @property
    def noise_only(self):
        """Boolean mask (n, P) of the patches that hold noise only."""
        return ~(self.robust | self.nonrobust)


class RobustNonRobustPatches:
    """Patch data with one robust patch, ``n_nonrobust`` non-robust patches, the rest noise.

    A sample (X, y): y ~ Uniform{0..K-1}; a uniformly random patch is the robust
    one, x = alpha u_y + xi; ``n_nonrobust`` other random patches get
    x = beta v_y + xi; every other patch is x = xi; xi ~ N(0, noise^2 / d I_d)
    independently per patch, so ||xi|| is about ``noise`` for every d.

    Parameters
    ----------
    K : int
        Number of classes (>= 2).
    P : int
        Patches per input (>= n_nonrobust + 1).
    d : int
        Patch dimension.
    s : int
        Sparsity of the robust features (layout A: K s <= d; layout B: 2 K s <= d).
    alpha : float
        Coefficient of the robust feature (>= 0).
    beta : float
        Coefficient of the non-robust feature (>= 0).
    n_nonrobust : int
        Number of patches holding the non-robust feature (>= 0).
    noise : float
        Expected l2 norm of each patch's noise (>= 0).  The spec's pilot used
        a per-coordinate std of 0.02 at d = 256, i.e. noise = 0.32.
    threat : {"linf", "l2"}, default "linf"
        The threat norm the world is meant for (used by the structured attack
        and the checks as their default); it does not change the data.
    layout : {"A", "B"}, default "A"
        Feature vectors of spec variant A (sparse u, dense v) or B (both sparse).
    seed : int, SeedSequence or Generator, default 0
        Draws the feature vectors; samples have their own seeds.

    Attributes
    ----------
    U : ndarray of shape (K, d)
        Robust features: unit l2, s-sparse, disjoint supports, entries +-1/sqrt(s).
    V : ndarray of shape (K, d)
        Non-robust features, unit l2.  Layout A: entries +-1/sqrt(d) on every
        coordinate; on each robust support the signs are balanced against
        u_k, so <u_k, v_j> = 0 exactly for even s (|.| = 1/sqrt(s d) for odd s).
        Layout B: s-sparse like U, on supports disjoint from U's.
    """

    def __init__(self, K, P, d, *, s, alpha, beta, n_nonrobust, noise, threat="linf",
                 layout="A", seed=0):
        self.K = check_int("K", K, 2)
        self.P = check_int("P", P, 1)
        self.d = check_int("d", d, 1)
        check_memory("K, d", (self.K + 2, self.d))  # U, V and a permutation of d
        self.layout = check_choice("layout", layout, LAYOUTS)
        blocks = self.K if self.layout == "A" else 2 * self.K
        self.s = check_int("s", s, 1, self.d // blocks)
        self.alpha = check_float("alpha", alpha, 0.0)
        self.beta = check_float("beta", beta, 0.0)
        self.n_nonrobust = check_int("n_nonrobust", n_nonrobust, 0, self.P - 1)
        self.noise = check_float("noise", noise, 0.0)
        self.threat = check_choice("threat", threat, THREATS)
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            check_int("seed", seed, 0)
        self.seed = seed
        rng = as_generator(seed, "seed")
        self.U, self.V, self.supports = self._features(rng)

    def _features(self, rng):
        K, d, s = self.K, self.d, self.s
        coords = rng.permutation(d)
        supp = coords[:K * s].reshape(K, s)
        U = np.zeros((K, d))
        signs = rng.choice(np.array([-1.0, 1.0]), size=(K, s))
        U[np.arange(K)[:, None], supp] = signs / np.sqrt(s)
        if self.layout == "B":
            supp_v = coords[K * s:2 * K * s].reshape(K, s)
            V = np.zeros((K, d))
            V[np.arange(K)[:, None], supp_v] = rng.choice(np.array([-1.0, 1.0]),
                                                          size=(K, s)) / np.sqrt(s)
            return U, V, supp
        V = rng.choice(np.array([-1.0, 1.0]), size=(K, d))
        # On each robust support give v_j half agreeing and half disagreeing signs
        # with u_k, so <u_k, v_j> = 0 (exactly for even s) while v stays a sign vector.
        half = np.where(np.arange(s) < s // 2, 1.0, -1.0)
        for j in range(K):
            for k in range(K):
                V[j, supp[k]] = np.sign(signs[k]) * rng.permutation(half)
        return U, V / np.sqrt(d), supp

    # -- description -----------------------------------------------------
    def spec(self):
        """JSON-serialisable parameters that rebuild this world exactly (int seeds only)."""
        if not isinstance(self.seed, (int, np.integer)):
            raise ValueError("spec() needs a world built from an integer seed")
        return {"kind": "RobustNonRobustPatches", "K": self.K, "P": self.P, "d": self.d,
                "s": self.s, "alpha": self.alpha, "beta": self.beta,
                "n_nonrobust": self.n_nonrobust, "noise": self.noise, "threat": self.threat,
                "layout": self.layout, "seed": int(self.seed)}

    @classmethod
    def from_spec(cls, spec):
        """Rebuild a world from :meth:`spec`'s output."""
        spec = dict(spec)
        if spec.pop("kind", "RobustNonRobustPatches") != "RobustNonRobustPatches":
            raise ValueError("spec: kind must be 'RobustNonRobustPatches'")
        return cls(**spec)

    def __repr__(self):
        return (f"RobustNonRobustPatches(K={self.K}, P={self.P}, d={self.d}, s={self.s}, "
                f"alpha={self.alpha:g}, beta={self.beta:g}, n_nonrobust={self.n_nonrobust}, "
                f"noise={self.noise:g}, threat={self.threat!r}, layout={self.layout!r}, "
                f"seed={self.seed!r})")

    # -- derived quantities ----------------------------------------------
    def race(self, q):
        """n_nonrobust beta^q / alpha^q: > 1 means standard training should prefer v (spec 1.2)."""
        q = check_int("q", q, 1)
        if self.alpha == 0:
            return float("inf")
        return self.n_nonrobust * self.beta ** q / self.alpha ** q

    def erasure_radius(self, norm=None):
        """Smallest radius at which the structured attack removes beta v_y from every patch.

        l_inf: beta / ||v||_1 (per coordinate).  l2 with the budget spread over
        the non-robust patches: beta sqrt(n_nonrobust).
        """
        norm = self.threat if norm is None else check_choice("norm", norm, THREATS)
        if norm == "linf":
            return self.beta / float(np.abs(self.V).sum(axis=1).min())
        return self.beta * np.sqrt(self.n_nonrobust)

    # -- sampling --------------------------------------------------------
    def sample(self, n, rng_or_seed, *, dtype=np.float64):
        """Draw ``n`` labelled inputs.

        Parameters
        ----------
        n : int
            Number of samples (>= 1).
        rng_or_seed : int, SeedSequence or Generator
            Randomness for this draw (same seed, same bits).
        dtype : {float64, float32}

        Returns
        -------
        PatchSample
        """
        n = check_int("n", n, 1)
        rng = as_generator(rng_or_seed, "rng_or_seed")
        dtype = check_dtype("dtype", dtype)
        check_memory("n", (n, self.P, self.d), copies=2)
        y = rng.integers(0, self.K, size=n)
        # A uniformly random permutation of the patches per sample.
        order = np.argsort(rng.random((n, self.P)), axis=1, kind="stable")
        X = rng.standard_normal((n, self.P, self.d))
        X *= self.noise / np.sqrt(self.d)
        rows = np.arange(n)
        robust_patch = order[:, 0]
        X[rows, robust_patch] += self.alpha * self.U[y]
        nonrobust = np.zeros((n, self.P), dtype=bool)
        for j in range(1, 1 + self.n_nonrobust):
            X[rows, order[:, j]] += self.beta * self.V[y]
            nonrobust[rows, order[:, j]] = True
        return PatchSample(X=np.ascontiguousarray(X, dtype=dtype), y=y.astype(np.int64),
                           robust_patch=robust_patch.astype(np.int64), nonrobust=nonrobust)
