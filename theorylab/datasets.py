"""Loaders for real image data sets in their standard on-disk formats.

Nothing is downloaded: every loader reads files the user already has, from a
path the user gives, and says which file is missing when one is.

* MNIST: the idx files (``train-images-idx3-ubyte`` ...), optionally gzipped.
* CIFAR-10: the python pickle batches (``cifar-10-batches-py/data_batch_1`` ...),
  read with a restricted unpickler that only resolves the few numpy names those
  files contain; a pickle that asks for anything else is refused (pickles can
  run arbitrary code, and these are user files).
* SVHN: the cropped-digit ``.mat`` files (``train_32x32.mat`` ...), via
  :func:`scipy.io.loadmat`.
* scikit-learn's 8x8 digits (:func:`sklearn.datasets.load_digits`), which ship
  inside the scikit-learn wheel, so the image experiments run anywhere with no
  file at all.  scikit-learn is optional (``pip install theorylab[images]``).

Every loader returns an :class:`ImageSet`: pixels as float64 in [0, 1], shape
(n, h, w) for grey images or (n, h, w, 3) for colour, and integer labels.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
from dataclasses import dataclass

import numpy as np

from ._validation import check_choice

__all__ = ["ImageSet", "read_idx", "load_mnist", "load_cifar10", "load_svhn", "load_digits",
           "load_dataset", "DATASETS"]


@dataclass
class ImageSet:
    """Images with integer labels.

    Attributes
    ----------
    images : ndarray of shape (n, h, w) or (n, h, w, c), float64 in [0, 1]
    labels : ndarray of shape (n,), int64
    name : str
    """

    images: np.ndarray
    labels: np.ndarray
    name: str = ""

    def __post_init__(self):
        if self.images.ndim not in (3, 4):
            raise ValueError(f"images must have shape (n, h, w) or (n, h, w, c), "
                             f"got {self.images.shape}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels must have shape ({self.images.shape[0]},), "
                             f"got {self.labels.shape}")

    def __len__(self):
        return self.images.shape[0]

    @property
    def image_shape(self):
        """Shape of one image, (h, w) or (h, w, c)."""
        return self.images.shape[1:]

    def flat(self):
        """Images as rows, shape (n, h*w*c)."""
        return self.images.reshape(len(self), -1)


# -- MNIST (idx) -----------------------------------------------------------

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _open_maybe_gzip(path):
    with open(path, "rb") as fh:
        head = fh.read(2)
    return gzip.open(path, "rb") if head == b"\x1f\x8b" else open(path, "rb")


def read_idx(path):
    """Read one idx file (the MNIST format), gzipped or not.

    The header is two zero bytes, a type code (0x08 unsigned byte ... 0x0E
    double), the number of dimensions, then each dimension as a big-endian
    32-bit integer; the data follow, big-endian, in C order.

    Returns
    -------
    ndarray
        With the file's dimensions and dtype (native byte order).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        The header is not an idx header or the data are shorter than it says.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"idx file not found: {path}")
    try:
        with _open_maybe_gzip(path) as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:  # a truncated or corrupt gzip stream
        raise ValueError(f"{path}: cannot read ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an idx file (bad magic number)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: idx header truncated")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(shape, dtype=np.int64))
    body = raw[4 + 4 * ndim:]
    if len(body) < count * dtype.itemsize:
        raise ValueError(f"{path}: idx data truncated ({len(body)} bytes for shape {shape})")
    arr = np.frombuffer(body, dtype=dtype, count=count).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def _find(directory, names, what):
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"{what}: none of {names} found in {directory}")


def load_mnist(path, split="train"):
    """MNIST (or Fashion-MNIST, same format) from a directory of idx files.

    Parameters
    ----------
    path : str or path-like
        Directory holding ``train-images-idx3-ubyte`` and
        ``train-labels-idx1-ubyte`` (``t10k-*`` for the test split), each
        optionally with ``.gz`` (a ``.`` instead of the last ``-`` is accepted).
    split : {"train", "test"}

    Returns
    -------
    ImageSet
        images (n, 28, 28) in [0, 1], labels 0..9.
    """
    check_choice("split", split, ("train", "test"))
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"MNIST directory not found: {path}")
    prefix = "train" if split == "train" else "t10k"
    found = {}
    for part, nd in (("images", 3), ("labels", 1)):
        stems = (f"{prefix}-{part}-idx{nd}-ubyte", f"{prefix}-{part}.idx{nd}-ubyte")
        found[part] = _find(path, [s + ext for s in stems for ext in ("", ".gz")],
                            f"MNIST {split} {part}")
    images, labels = read_idx(found["images"]), read_idx(found["labels"])
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"{found['images']} and {found['labels']}: expected (n, h, w) images "
                         f"and (n,) labels, got {images.shape} and {labels.shape}")
    return ImageSet(images.astype(np.float64) / 255.0, labels.astype(np.int64), "mnist")


# -- CIFAR-10 (python pickles) ---------------------------------------------

def _allowed_globals():
    # The only names a CIFAR-10 batch pickle refers to (python 2's cPickle of a dict
    # holding a uint8 array), plus what python 3 / numpy 2 write for the same data.
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric
    import _codecs

    table = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
             ("_codecs", "encode"): _codecs.encode}
    for mod in ("numpy.core", "numpy._core"):
        table[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        table[(f"{mod}.multiarray", "scalar")] = multiarray.scalar
        if hasattr(numeric, "_frombuffer"):
            table[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer
    return table


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the numpy names of a CIFAR batch."""

    _table = None

    def find_class(self, module, name):
        if _RestrictedUnpickler._table is None:
            _RestrictedUnpickler._table = _allowed_globals()
        try:
            return self._table[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed") from None


def _read_cifar_batch(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CIFAR-10 batch not found: {path}")
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # any unpickling failure is a bad file, never code we run
        raise ValueError(f"{path}: not a CIFAR-10 batch pickle ({exc})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict, got {type(obj).__name__}")
    get = lambda key: obj.get(key.encode(), obj.get(key))  # noqa: E731  (bytes or str keys)
    X, y = get("data"), get("labels")
    if not isinstance(X, np.ndarray) or y is None:
        raise ValueError(f"{path}: missing 'data' array or 'labels'")
    y = np.asarray(y, dtype=np.int64)
    if X.ndim != 2 or X.shape[1] != 3072 or X.shape[0] != y.shape[0]:
        raise ValueError(f"{path}: expected data of shape (n, 3072) and n labels, "
                         f"got {X.shape} and {y.shape}")
    return X, y


def load_cifar10(path, split="train"):
    """CIFAR-10 from the python version's directory (``cifar-10-batches-py``).

    Parameters
    ----------
    path : str or path-like
        Directory holding ``data_batch_1`` ... ``data_batch_5`` (train) and
        ``test_batch`` (test).
    split : {"train", "test"}

    Returns
    -------
    ImageSet
        images (n, 32, 32, 3) in [0, 1], labels 0..9.

    Notes
    -----
    Each row of a batch is 1024 red, 1024 green, then 1024 blue values, each
    a 32x32 image in row-major order.
    """
    check_choice("split", split, ("train", "test"))
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"CIFAR-10 directory not found: {path}")
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    parts = [_read_cifar_batch(os.path.join(path, name)) for name in names]
    X = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    images = X.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float64) / 255.0
    return ImageSet(np.ascontiguousarray(images), y, "cifar10")


# -- SVHN (.mat) -------------------------------------------------------------

def load_svhn(path, split="train"):
    """SVHN cropped digits from ``{split}_32x32.mat``.

    Parameters
    ----------
    path : str or path-like
        The ``.mat`` file itself, or a directory holding ``train_32x32.mat``,
        ``test_32x32.mat`` or ``extra_32x32.mat``.
    split : {"train", "test", "extra"}
        Which file to look for when ``path`` is a directory.

    Returns
    -------
    ImageSet
        images (n, 32, 32, 3) in [0, 1], labels 0..9 (the files store digit 0
        as label 10).
    """
    from scipy.io import loadmat

    check_choice("split", split, ("train", "test", "extra"))
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, f"{split}_32x32.mat")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"SVHN file not found: {path}")
    try:
        mat = loadmat(path)
    except Exception as exc:  # scipy raises several types for a bad file
        raise ValueError(f"{path}: not a readable .mat file ({exc})") from exc
    if "X" not in mat or "y" not in mat:
        raise ValueError(f"{path}: expected variables 'X' and 'y'")
    X, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    if X.ndim != 4 or X.shape[2] != 3 or X.shape[3] != y.shape[0]:
        raise ValueError(f"{path}: expected X of shape (h, w, 3, n) and n labels, "
                         f"got {X.shape} and {y.shape}")
    y = np.where(y == 10, 0, y)
    images = np.ascontiguousarray(X.transpose(3, 0, 1, 2)).astype(np.float64) / 255.0
    return ImageSet(images, y, "svhn")


# -- scikit-learn's digits (ships offline) -----------------------------------

def load_digits():
    """scikit-learn's 8x8 handwritten digits (1797 images, 16 grey levels).

    The data ship inside the scikit-learn package: no file and no network.

    Returns
    -------
    ImageSet
        images (1797, 8, 8) in [0, 1] (the stored 0..16 divided by 16), labels 0..9.

    Raises
    ------
    ImportError
        scikit-learn is not installed (``pip install theorylab[images]``).
    """
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as exc:
        raise ImportError("the digits data set needs scikit-learn: "
                          "pip install 'theorylab[images]' (or scikit-learn)") from exc
    bunch = _sk_load_digits()
    return ImageSet(np.asarray(bunch.images, dtype=np.float64) / 16.0,
                    np.asarray(bunch.target, dtype=np.int64), "digits")


DATASETS = ("digits", "mnist", "cifar10", "svhn")


def load_dataset(name="digits", path=None, split="train"):
    """Load ``name`` from ``path`` (``"digits"`` needs no path).

    Parameters
    ----------
    name : {"digits", "mnist", "cifar10", "svhn"}
    path : str or path-like, optional
        Required for every data set but ``"digits"``.
    split : str
        Passed to the loader (ignored for ``"digits"``).
    """
    check_choice("name", name, DATASETS)
    if name == "digits":
        return load_digits()
    if path is None:
        raise ValueError(f"path is required for the {name} data set (nothing is downloaded)")
    loader = {"mnist": load_mnist, "cifar10": load_cifar10, "svhn": load_svhn}[name]
    return loader(path, split)
