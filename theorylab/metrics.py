"""Structural measurements of first-layer weights (spec feature_purification.md section 5).

All quantities are computed in the dictionary basis, C = W M (C_ij = <w_i, M_j>),
which is exact because M is orthonormal.

Note on dense alignment: the spec's text writes cos(v_i, sign(a_i) M w*), but the
gradient push on every active neuron is along +M w* whatever the sign of its main
coefficient (the gate 1{|u_i| > b_i} is even), and the pilot's logged numbers
(median cos 0.70) are for cos(v_i, M w*).  theorylab measures cos(v_i, M w*);
the signed variant is reported too, as ``dense_alignment_signed``.
"""

from __future__ import annotations

import numpy as np

from ._linalg import row_norms
from ._validation import check_array

__all__ = ["feature_structure", "purification", "dense_decomposition", "summarize"]


def _coefficients(W, M):
    W = check_array("W", W, ndim=2, dtype=np.float64)
    if M is None:
        return W
    M = check_array("M", M, ndim=2, shape=(W.shape[1], W.shape[1]), dtype=np.float64)
    return W @ M


def dense_decomposition(W, M=None):
    """Main atom, main coefficient and dense part of each neuron.

    Returns
    -------
    j : (m,) int array
        Main atom j(i) = argmax_j |<w_i, M_j>|.
    a : (m,) array
        Main coefficient <w_i, M_j(i)>.
    V : (m, d) array
        Dense part v_i = w_i - a_i M_j(i), in dictionary coordinates.
    """
    C = _coefficients(W, M)
    rows = np.arange(C.shape[0])
    j = np.abs(C).argmax(axis=1)
    a = C[rows, j].copy()
    V = C.copy()
    V[rows, j] = 0.0
    return j, a, V


def _rowcos(A, B):
    # Cosine of matching rows, computed on rescaled rows (0 for a zero row).
    na, nb = row_norms(A), row_norms(B)
    ok = (na > 0) & (nb > 0)
    An = A / np.where(ok, na, 1.0)[:, None]
    Bn = B / np.where(ok, nb, 1.0)[:, None]
    return np.where(ok, np.einsum("ij,ij->i", An, Bn), 0.0)


def _cos(A, u):
    return _rowcos(A, np.broadcast_to(u, A.shape))


def feature_structure(W, w_star, M=None):
    """Per-neuron feature structure of a first layer.

    Parameters
    ----------
    W : ndarray of shape (m, d)
    w_star : ndarray of shape (d,)
        The teacher (dictionary coordinates).
    M : ndarray of shape (d, d), optional
        Dictionary (None for the identity).

    Returns
    -------
    dict of arrays / numbers
        ``dense_ratio`` rho_i = ||v_i|| / |a_i| (inf for a zero neuron),
        ``dense_alignment`` cos(v_i, M w*), ``dense_alignment_signed``
        cos(v_i, sign(a_i) M w*), ``sign_correct`` sign(a_i) = w*_{j(i)},
        ``main_atom`` j(i), ``coverage`` (number of distinct main atoms).
    """
    j, a, V = dense_decomposition(W, M)
    w_star = check_array("w_star", w_star, ndim=1, shape=(V.shape[1],), dtype=np.float64)
    vn = row_norms(V)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(a != 0, vn / np.abs(a), np.inf)
    return {
        "dense_ratio": ratio,
        "dense_alignment": _cos(V, w_star),
        "dense_alignment_signed": np.sign(a) * _cos(V, w_star),
        "sign_correct": np.sign(a) == w_star[j],
        "main_atom": j,
        "coverage": int(np.unique(j).size),
    }


def purification(W_clean, W_adv, W_init=None):
    """The purification principle: w_i = beta_i w'_i + v_i with ||beta_i w'_i|| > ||v_i||.

    beta_i = <w_i, w'_i> / ||w'_i||^2 is the least-squares fit of the clean
    weight on the adversarially trained one; v_i is the residual.

    Returns
    -------
    dict
        ``beta``, ``ratio`` = ||beta_i w'_i|| / ||v_i|| per neuron, ``fraction``
        of neurons with ratio > 1, and with ``W_init`` the |cos| of clean and
        adversarial weights with the init (``corr_init_clean``, ``corr_init_adv``).
    """
    Wc = check_array("W_clean", W_clean, ndim=2, dtype=np.float64)
    Wa = check_array("W_adv", W_adv, ndim=2, shape=Wc.shape, dtype=np.float64)
    na = row_norms(Wa)
    nc = row_norms(Wc)
    cos = _rowcos(Wc, Wa)
    # beta_i = <w, w'>/||w'||^2 = cos ||w|| / ||w'||; fit = |cos| ||w||, resid = sin ||w||.
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.where(na > 0, cos * nc / np.where(na > 0, na, 1.0), 0.0)
        fit = np.abs(cos) * nc
        unit_c = Wc / np.where(nc > 0, nc, 1.0)[:, None]
        unit_a = Wa / np.where(na > 0, na, 1.0)[:, None]
        resid = nc * row_norms(unit_c - cos[:, None] * unit_a)
        ratio = np.where(resid > 0, fit / np.where(resid > 0, resid, 1.0), np.inf)
    out = {"beta": beta, "ratio": ratio, "fraction": float(np.mean(fit > resid))}
    if W_init is not None:
        W0 = check_array("W_init", W_init, ndim=2, shape=Wc.shape, dtype=np.float64)
        out["corr_init_clean"] = np.abs(_rowcos(Wc, W0))
        out["corr_init_adv"] = np.abs(_rowcos(Wa, W0))
    return out


def summarize(W, w_star, M=None):
    """Medians and fractions of :func:`feature_structure`, as plain floats (for logs)."""
    s = feature_structure(W, w_star, M)
    return {
        "dense_ratio": float(np.median(s["dense_ratio"])),
        "dense_alignment": float(np.median(s["dense_alignment"])),
        "sign_correct": float(np.mean(s["sign_correct"])),
        "coverage": s["coverage"],
    }
