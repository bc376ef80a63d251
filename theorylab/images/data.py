"""Image classification tasks for the theory's learners: splits, centring, patches.

The two-layer threshold network is a binary classifier with labels in {-1, +1};
the smoothed-ReLU CNN takes K classes and inputs cut into P patches of
dimension d.  :func:`make_task` turns an :class:`~theorylab.datasets.ImageSet`
into either, with one fixed, seeded train / test split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import as_generator, check_int

__all__ = ["ImageTask", "make_task", "to_patches", "from_patches", "DEFAULT_BINARY"]

# Digits 0-4 against 5-9: uses every image, balanced (~900 a side), and no single pixel
# separates it, so the network has to learn stroke features.
DEFAULT_BINARY = ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))


@dataclass
class ImageTask:
    """A fixed train / test split of flattened, centred images.

    Attributes
    ----------
    X_train, X_test : ndarray of shape (n, D)
        Pixels in [0, 1] minus the training mean image (D = h*w*c).
    y_train, y_test : ndarray
        {-1, +1} floats for a binary task, class indices 0..K-1 otherwise.
    image_shape : tuple
        Shape of one image, to draw weights as tiles.
    mean : ndarray of shape (D,)
        The subtracted training mean (add it back to draw inputs as images).
    classes : tuple
        Binary: (negative digits, positive digits).  Multiclass: the original
        label of each class index.
    name : str
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple
    mean: np.ndarray
    classes: tuple
    name: str = ""

    @property
    def binary(self):
        return len(self.classes) == 2 and isinstance(self.classes[0], tuple)

    @property
    def n_classes(self):
        return 2 if self.binary else len(self.classes)

    @property
    def d(self):
        return self.X_train.shape[1]


def make_task(dataset, *, binary=DEFAULT_BINARY, classes=None, n_train=1200, n_test=None,
              seed=0):
    """Split and centre ``dataset`` into a binary or multiclass task.

    Parameters
    ----------
    dataset : ImageSet
    binary : (tuple, tuple) or None, default digits 0-4 vs 5-9
        Original labels of the negative and the positive class.  None makes a
        multiclass task instead.
    classes : sequence of int, optional
        Multiclass only: the original labels to keep, in class-index order
        (default: all labels present).
    n_train : int, default 1200
        Training images (the rest, up to ``n_test``, are the test set).
    n_test : int, optional
        Test images (default: all remaining).
    seed : int, SeedSequence or Generator
        The shuffle before the split.

    Returns
    -------
    ImageTask
    """
    n_train = check_int("n_train", n_train, 1)
    labels = dataset.labels
    if binary is not None:
        neg, pos = (tuple(int(c) for c in group) for group in binary)
        if not neg or not pos or set(neg) & set(pos):
            raise ValueError(f"binary must be two disjoint non-empty label groups, got {binary}")
        keep = np.isin(labels, neg + pos)
        y_all = np.where(np.isin(labels, pos), 1.0, -1.0)
        task_classes = (neg, pos)
    else:
        present = tuple(int(c) for c in np.unique(labels))
        task_classes = present if classes is None else tuple(int(c) for c in classes)
        if len(task_classes) < 2 or len(set(task_classes)) != len(task_classes):
            raise ValueError(f"classes must be at least two distinct labels, got {classes}")
        keep = np.isin(labels, task_classes)
        index = {c: i for i, c in enumerate(task_classes)}
        y_all = np.array([index.get(int(c), -1) for c in labels], dtype=np.int64)
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        raise ValueError("no image has one of the requested labels")
    if n_train >= idx.size:
        raise ValueError(f"n_train must be smaller than the {idx.size} usable images, "
                         f"got {n_train}")
    n_test = idx.size - n_train if n_test is None else check_int("n_test", n_test, 1,
                                                                 idx.size - n_train)
    idx = as_generator(seed, "seed").permutation(idx)
    tr, te = idx[:n_train], idx[n_train:n_train + n_test]
    flat = dataset.flat()
    mean = flat[tr].mean(axis=0)
    return ImageTask(flat[tr] - mean, y_all[tr], flat[te] - mean, y_all[te],
                     tuple(dataset.image_shape), mean, task_classes, dataset.name)


def _patch_grid(image_shape, patch):
    h, w = image_shape[:2]
    c = image_shape[2] if len(image_shape) == 3 else 1
    patch = check_int("patch", patch, 1)
    if h % patch or w % patch:
        raise ValueError(f"patch must divide the image sides {h}x{w}, got {patch}")
    return h // patch, w // patch, c, patch


def to_patches(X, image_shape, patch):
    """Cut flattened images into non-overlapping ``patch`` x ``patch`` patches.

    Parameters
    ----------
    X : ndarray of shape (n, h*w*c)
    image_shape : (h, w) or (h, w, c)
    patch : int
        Side of a square patch; must divide h and w.

    Returns
    -------
    ndarray of shape (n, (h/patch)*(w/patch), patch*patch*c)
        Patches in row-major order over the grid, each flattened row-major
        (pixel, then channel), i.e. the CNN's (N, P, d) input.
    """
    gh, gw, c, p = _patch_grid(image_shape, patch)
    X = np.asarray(X)
    n = X.shape[0]
    img = X.reshape(n, gh, p, gw, p, c)
    return np.ascontiguousarray(img.transpose(0, 1, 3, 2, 4, 5).reshape(n, gh * gw, p * p * c))


def from_patches(Xp, image_shape, patch):
    """Inverse of :func:`to_patches`: (n, P, d) back to flattened images (n, h*w*c)."""
    gh, gw, c, p = _patch_grid(image_shape, patch)
    Xp = np.asarray(Xp)
    n = Xp.shape[0]
    img = Xp.reshape(n, gh, gw, p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return np.ascontiguousarray(img.reshape(n, gh * p * gw * p * c))
