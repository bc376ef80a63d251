"""The sparse-coding world of Feature Purification: x = M z + xi.

Provenance (see ``shared/spec/feature_purification.md`` section 1):
x = Mz + xi with an orthonormal dictionary, sparse z and y = sign(<w*, z>) is the
paper's form as recalled [R]; the concrete code distribution, noise model,
teacher w* in {-1,+1}^d and tie resampling are theorylab's reconstruction [D].
Every such choice is a parameter here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from .._validation import (as_generator, check_choice, check_dtype, check_float, check_int,
                           check_memory)

__all__ = ["SparseCoding", "Sample", "make_dictionary"]

CODES = ("pm1", "continuous")
DICTIONARIES = ("identity", "orthogonal", "hadamard")


@dataclass(frozen=True)
class Sample:
    """A labelled draw from a world.

    Attributes
    ----------
    X : ndarray of shape (n, d)
        Inputs, one per row (x = M z + xi).
    y : ndarray of shape (n,)
        Labels in {-1, +1}.
    Z : ndarray of shape (n, d)
        The hidden sparse codes.
    """

    X: np.ndarray
    y: np.ndarray
    Z: np.ndarray

    def __len__(self):
        return self.X.shape[0]


def make_dictionary(d, kind, rng):
    """An orthonormal d x d dictionary whose *columns* are the atoms M_j.

    ``"orthogonal"`` is Haar-distributed: QR of a Gaussian matrix with the
    signs of R's diagonal folded into Q (without that fix QR is not Haar).
    ``"hadamard"`` is the Sylvester Hadamard matrix over sqrt(d), dense and
    maximally incoherent with the standard basis; d must be a power of two.
    """
    d = check_int("d", d, 1)
    check_choice("dictionary", kind, DICTIONARIES)
    check_memory("d", (d, d), copies=2)
    if kind == "identity":
        return np.eye(d)
    if kind == "hadamard":
        if d & (d - 1):
            raise ValueError(f"dictionary='hadamard' needs d a power of two, got d={d}")
        return scipy.linalg.hadamard(d).astype(np.float64) / np.sqrt(d)
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


class SparseCoding:
    """Sparse-coding data x = M z + xi with labels y = sign(<w*, z>).

    Parameters
    ----------
    d : int
        Dimension (>= 1).
    k : float
        Expected number of non-zero code coordinates, 1 <= k <= d: each z_j is
        non-zero independently with probability k/d.
    noise : float, default 0.05
        sigma >= 0; xi ~ N(0, sigma^2 / d I), so ||xi|| is about sigma.
    codes : {"pm1", "continuous"}, default "pm1"
        Magnitudes of non-zero codes: exactly 1, or uniform on [code_low, 1].
    dictionary : {"identity", "orthogonal", "hadamard"}, default "identity"
        The orthonormal dictionary M (columns are atoms).
    code_low : float, default 0.1
        Lower end of the magnitude range for ``codes="continuous"``.
    seed : int, SeedSequence or Generator, default 0
        Draws M (when random) and w*; samples have their own seeds.

    Attributes
    ----------
    M : ndarray of shape (d, d)
        Orthonormal dictionary, atoms in columns.
    w_star : ndarray of shape (d,)
        Teacher in {-1, +1}^d.

    Notes
    -----
    Ties <w*, z> = 0 (frequent with +-1 codes, and z = 0 always ties) are
    resampled row by row until none is left, so every label is +-1 and the
    code distribution is the product law conditioned on <w*, z> != 0.
    """

    def __init__(self, d, k, *, noise=0.05, codes="pm1", dictionary="identity",
                 code_low=0.1, seed=0):
        self.d = check_int("d", d, 1)
        check_memory("d", (self.d, self.d), copies=2)  # the dictionary and its QR
        self.k = check_float("k", k, 1.0, float(self.d))
        self.noise = check_float("noise", noise, 0.0)
        self.codes = check_choice("codes", codes, CODES)
        self.dictionary = check_choice("dictionary", dictionary, DICTIONARIES)
        self.code_low = check_float("code_low", code_low, 0.0, 1.0, low_open=True)
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            check_int("seed", seed, 0)
        self.seed = seed
        rng = as_generator(seed, "seed")
        # w* first: the same seed gives the same teacher for every dictionary, so worlds
        # that differ only by a rotation are comparable sample for sample.
        self.w_star = rng.choice(np.array([-1.0, 1.0]), size=self.d)
        self.M = make_dictionary(self.d, self.dictionary, rng)
        self.identity = self.dictionary == "identity"

    # -- description -----------------------------------------------------
    def spec(self):
        """JSON-serialisable parameters that rebuild this world exactly (int seeds only)."""
        if not isinstance(self.seed, (int, np.integer)):
            raise ValueError("spec() needs a world built from an integer seed")
        return {"kind": "SparseCoding", "d": self.d, "k": self.k, "noise": self.noise,
                "codes": self.codes, "dictionary": self.dictionary,
                "code_low": self.code_low, "seed": int(self.seed)}

    @classmethod
    def from_spec(cls, spec):
        """Rebuild a world from :meth:`spec`'s output."""
        spec = dict(spec)
        if spec.pop("kind", "SparseCoding") != "SparseCoding":
            raise ValueError("spec: kind must be 'SparseCoding'")
        return cls(**spec)

    def __repr__(self):
        return (f"SparseCoding(d={self.d}, k={self.k:g}, noise={self.noise:g}, "
                f"codes={self.codes!r}, dictionary={self.dictionary!r}, seed={self.seed!r})")

    # -- sampling --------------------------------------------------------
    @property
    def label_direction(self):
        """M w*, the dense direction every label-correlated gradient points along."""
        return self.M @ self.w_star

    def _draw_codes(self, n, rng):
        p = self.k / self.d
        # One uniform draw gives support and sign: u < p/2 -> -1, p/2 <= u < p -> +1.
        # One compiled pass (NumPy took three); imported here so that importing the worlds
        # does not start Numba.
        from .._kernels.sampling import codes_from_uniform

        u = rng.random((n, self.d))
        Z = codes_from_uniform(u, p)
        if self.codes == "continuous":
            Z *= rng.uniform(self.code_low, 1.0, size=(n, self.d))
        return Z

    def sample(self, n, rng_or_seed, *, dtype=np.float64):
        """Draw ``n`` labelled points.

        Parameters
        ----------
        n : int
            Number of points (>= 1).
        rng_or_seed : int, SeedSequence or Generator
            Randomness for this draw (same seed, same bits).
        dtype : {float64, float32}
            dtype of ``X`` and ``y`` (codes are always drawn in float64).

        Returns
        -------
        Sample
        """
        n = check_int("n", n, 1)
        rng = as_generator(rng_or_seed, "rng_or_seed")
        dtype = check_dtype("dtype", dtype)
        # The uniforms, the codes, the noise and X are alive at once.
        check_memory("n", (n, self.d), copies=4)
        Z = self._draw_codes(n, rng)
        s = Z @ self.w_star
        tie = np.abs(s) < 1e-9
        while tie.any():
            idx = np.flatnonzero(tie)
            Z[idx] = self._draw_codes(idx.size, rng)
            s[idx] = Z[idx] @ self.w_star
            tie[idx] = np.abs(s[idx]) < 1e-9
        X = Z if self.identity else Z @ self.M.T
        if self.noise > 0:
            # In place, one buffer: the same bits as X + scale * noise (addition commutes).
            noise = rng.standard_normal((n, self.d))
            noise *= self.noise / np.sqrt(self.d)
            noise += X
            X = noise
        elif self.identity:
            X = X.copy()
        y = np.sign(s)
        return Sample(X=np.ascontiguousarray(X, dtype=dtype), y=y.astype(dtype), Z=Z)
