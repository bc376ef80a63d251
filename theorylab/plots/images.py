"""Figures of the image experiments (:mod:`theorylab.images`).  Every function returns a Figure.

``python -m theorylab.plots.images [OUTDIR]`` reruns the quick regime on the
shipped digits (seed 0, about a minute) and writes ``OUTDIR/img_*.png``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

__all__ = ["feature_tiles", "low_rank_curve", "dataset_curves", "dataset_examples"]


def _tile(ax, w, shape, title=None):
    # One weight as an image, its own symmetric colour scale (red +, blue -).
    img = np.asarray(w, dtype=float).reshape(shape)
    if img.ndim == 3:  # colour: show the channel mean, the tile is about spatial structure
        img = img.mean(axis=2)
    lim = np.abs(img).max() or 1.0
    ax.imshow(img, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=6, pad=2)


def feature_tiles(W_clean, W_adv, image_shape, *, n=12, ratio=None, title=None):
    """First-layer features as image tiles: clean, after adversarial training, and the removed part.

    Rows: the clean weight w_i, the adversarially fine-tuned w'_i, and the
    residual v_i = w_i - beta_i w'_i that the purification principle says is
    small (beta_i the least-squares coefficient).  Columns: the ``n`` neurons
    of largest clean norm.

    Parameters
    ----------
    W_clean, W_adv : ndarray of shape (m, D)
    image_shape : tuple
        Shape of one weight as an image, e.g. (8, 8).
    n : int
        Number of neurons shown.
    ratio : ndarray of shape (m,), optional
        ||beta_i w'_i|| / ||v_i||, printed above each column.
    """
    Wc, Wa = np.asarray(W_clean, float), np.asarray(W_adv, float)
    beta = np.einsum("ij,ij->i", Wc, Wa) / np.maximum(np.einsum("ij,ij->i", Wa, Wa), 1e-300)
    V = Wc - beta[:, None] * Wa
    order = np.argsort(-np.linalg.norm(Wc, axis=1))[:n]
    fig = Figure(figsize=(0.72 * len(order) + 1.0, 2.6))
    axes = fig.subplots(3, len(order), squeeze=False)
    rows = (("clean $w_i$", Wc), ("adversarial $w'_i$", Wa), (r"removed $v_i$", V))
    for r, (label, W) in enumerate(rows):
        for c, i in enumerate(order):
            head = None
            if r == 0 and ratio is not None:
                head = f"{ratio[i]:.1f}"
            _tile(axes[r, c], W[i], image_shape, head)
        axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(title or "first-layer features before / after adversarial fine-tuning "
                 "(number: ||beta w'|| / ||v||)", fontsize=8)
    fig.subplots_adjust(left=0.13, right=0.99, top=0.8, bottom=0.02, wspace=0.08, hspace=0.12)
    return fig


def low_rank_curve(curves, *, title=None):
    """Robust accuracy of rank-r adversarial fine-tuning against r, with full fine-tuning.

    Parameters
    ----------
    curves : dict
        label -> the ``arrays`` of :func:`theorylab.images.low_rank_experiment`
        (``ranks``, ``robust``, ``robust_full``, ``robust_clean``, ``energy``).
    """
    fig = Figure(figsize=(8.4, 3.4))
    ax, ax2 = fig.subplots(1, 2)
    for k, (label, a) in enumerate(curves.items()):
        color = f"C{k}"
        ax.plot(a["ranks"], a["robust"], "o-", color=color, label=f"{label}: rank r")
        ax.axhline(a["robust_full"], color=color, ls="--", lw=1, label=f"{label}: full")
        ax.axhline(a["robust_clean"], color=color, ls=":", lw=1, label=f"{label}: clean net")
        ax2.plot(a["ranks"], a["energy"], "o-", color=color, label=label)
    for a_ in (ax, ax2):
        a_.set_xscale("log", base=2)
        a_.set_xlabel("rank r of the update A B")
        a_.grid(alpha=0.3)
    ax.set_ylabel("PGD robust accuracy (test)")
    ax.set_title("low-rank adversarial fine-tuning vs full", fontsize=9)
    ax.legend(fontsize=6, loc="best")
    ax2.set_ylim(0, 1.02)
    ax2.set_ylabel("share of ||W_full - W_clean||^2 in top r")
    ax2.set_title("spectrum of the full fine-tuning update", fontsize=9)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig


_SERIES = (("dr", "D_R (robust features)", "tab:blue"),
           ("dnr", "D_NR (non-robust, label t)", "tab:red"),
           ("clean", "clean test", "k"), ("robust", "PGD robust test", "tab:green"))


def dataset_curves(runs, *, chance=None, title=None):
    """Accuracy on D_R, D_NR and the test set during standard and adversarial training.

    Parameters
    ----------
    runs : dict
        ``{"std": series, "adv": series}``, each a dict with ``step`` and the
        series ``dr``, ``dnr``, ``clean``, ``robust`` (the ``arrays`` of
        :func:`theorylab.images.robust_nonrobust_experiment`).
    chance : float, optional
        Drawn as a grey line.
    """
    fig = Figure(figsize=(4.2 * len(runs), 3.7))
    axes = fig.subplots(1, len(runs), sharey=True, squeeze=False)[0]
    names = {"std": "standard training", "adv": "adversarial training (fresh net)"}
    for ax, (key, series) in zip(axes, runs.items()):
        for s, label, color in _SERIES:
            ax.plot(series["step"], series[s], color=color, marker="o", ms=2.5, label=label,
                    ls="--" if s in ("clean", "robust") else "-")
        if chance is not None:
            ax.axhline(chance, color="0.6", lw=0.8, label="chance")
        ax.set_title(names.get(key, key), fontsize=9)
        ax.set_xlabel("GD step")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=len(labels), frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def dataset_examples(examples, *, n=8, unpatch=None):
    """Source test images, their D_R and D_NR versions, with labels (images un-centred).

    ``unpatch(X)`` turns the stored rows into flat images (e.g.
    ``theorylab.images.from_patches`` for patch inputs); default: already flat.
    """
    shape, mean = examples["image_shape"], examples["mean"]
    unpatch = (lambda A: A) if unpatch is None else unpatch
    rows = [("source, label y", examples["source"], examples["y"]),
            ("D_R, label y", examples["robust"], examples["y"]),
            ("D_NR, label t", examples["nonrobust"], examples["t"])]
    n = min(n, len(examples["y"]))
    fig = Figure(figsize=(0.8 * n + 1.0, 2.8))
    axes = fig.subplots(3, n, squeeze=False)
    for r, (label, Xp, lab) in enumerate(rows):
        X = unpatch(np.asarray(Xp)[:n]) + mean
        for c in range(n):
            img = X[c].reshape(shape)
            ax = axes[r, c]
            ax.imshow(img if img.ndim == 3 else img, cmap="gray_r", vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(str(int(lab[c])), fontsize=7, pad=2)
        axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle("Ilyas-style datasets from held-out digits (pixels outside [0, 1] clipped "
                 "for display only)", fontsize=8)
    fig.subplots_adjust(left=0.15, right=0.99, top=0.82, bottom=0.02, wspace=0.08, hspace=0.3)
    return fig
