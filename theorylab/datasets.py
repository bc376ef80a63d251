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
    images = _check_pixels(found["images"], images)
    labels = _check_labels(found["labels"], labels, 0, 9)
    return ImageSet(images.astype(np.float64) / 255.0, labels, "mnist")


# -- CIFAR-10 (python pickles) ---------------------------------------------

class _NDArray:
    """What the name ``numpy.ndarray`` resolves to: a marker, never instantiated."""

    def __new__(cls, *args, **kwargs):
        raise pickle.UnpicklingError("numpy.ndarray may only be named by _reconstruct")


class _DtypeStub:
    """A dtype as the pickle describes it (``numpy.dtype('u1', False, True)`` + state)."""

    def __init__(self, spec, align=False, copy=True):
        if isinstance(spec, bytes):
            spec = spec.decode("latin1")
        if not isinstance(spec, str):
            raise pickle.UnpicklingError(f"dtype spec must be a string, got {type(spec).__name__}")
        self.spec, self.order = spec, "|"

    def __setstate__(self, state):
        # (version, byte order, subdtype, names, fields, elsize, alignment, flags)
        if isinstance(state, tuple) and len(state) >= 2 and isinstance(state[1], (str, bytes)):
            self.order = state[1].decode("latin1") if isinstance(state[1], bytes) else state[1]

    def name(self):
        return self.spec


class _ArrayStub:
    """An array's description (shape, dtype, raw bytes), held without building the array.

    ``numpy.core.multiarray._reconstruct`` followed by ``__setstate__`` is how a
    protocol-2 pickle (the CIFAR files) writes an array; ``_frombuffer`` is what
    protocol 5 writes.  Building a real ndarray from the file's shape would let a
    tiny pickle allocate any amount of uninitialised memory, so the loader only
    records the description and checks it against the bytes actually present.
    """

    def __init__(self, shape=None, dtype=None, fortran=False, raw=None):
        self.shape, self.dtype, self.fortran, self.raw = shape, dtype, fortran, raw

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("malformed ndarray state")
        self.shape, self.dtype, self.fortran, self.raw = state[-4:]


def _reconstruct(cls, shape, typecode):
    if cls is not _NDArray:
        raise pickle.UnpicklingError("_reconstruct may only build numpy.ndarray")
    return _ArrayStub()


def _frombuffer(buf, dtype, shape, order):
    return _ArrayStub(shape, dtype, order == "F", bytes(buf))


def _latin1(obj, encoding="latin1"):
    # Python 3 writes bytes in protocol 2 as _codecs.encode(str, 'latin1').
    if not isinstance(obj, str) or encoding != "latin1":
        raise pickle.UnpicklingError("_codecs.encode is allowed only for latin1 strings")
    return obj.encode("latin1")


def _empty_bytes(*args):
    # Python 3 writes b"" in protocol 2 as bytes(): only the empty call is allowed.
    if args:
        raise pickle.UnpicklingError("bytes() is allowed only without arguments")
    return b""


def _scalar(dtype, raw):
    # A numpy integer scalar (a label written as np.int64): its value from the raw bytes.
    if (not isinstance(dtype, _DtypeStub) or not isinstance(raw, bytes)
            or dtype.spec.lstrip("<>|=") not in ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8")
            or len(raw) != int(dtype.spec.lstrip("<>|=")[1:])):
        raise pickle.UnpicklingError("only integer numpy scalars are allowed")
    return int.from_bytes(raw, "big" if dtype.order == ">" else "little",
                          signed=dtype.spec.lstrip("<>|=")[0] == "i")


def _allowed_globals():
    # The only names a CIFAR-10 batch pickle refers to (python 2's cPickle of a dict
    # holding a uint8 array, numpy.core) plus what python 3 / numpy 2 write for the same
    # data (numpy._core, _codecs.encode, _frombuffer); each resolves to a stand-in above.
    table = {("numpy", "ndarray"): _NDArray, ("numpy", "dtype"): _DtypeStub,
             ("_codecs", "encode"): _latin1, ("__builtin__", "bytes"): _empty_bytes,
             ("builtins", "bytes"): _empty_bytes}
    for mod in ("numpy.core", "numpy._core"):
        table[(f"{mod}.multiarray", "_reconstruct")] = _reconstruct
        table[(f"{mod}.multiarray", "scalar")] = _scalar
        table[(f"{mod}.numeric", "_frombuffer")] = _frombuffer
    return table


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the stand-ins of a CIFAR batch's numpy names."""

    _table = _allowed_globals()

    def find_class(self, module, name):
        try:
            return self._table[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed") from None


_CIFAR_ROW = 3 * 32 * 32


def _cifar_data(path, stub, file_size):
    # The (n, 3072) uint8 image block from its description, checked before any copy.
    if not isinstance(stub, _ArrayStub):
        raise ValueError(f"{path}: entry 'data' must be a numpy array, got "
                         f"{type(stub).__name__}")
    shape, dtype, raw = stub.shape, stub.dtype, stub.raw
    if not (isinstance(shape, tuple) and len(shape) == 2
            and all(isinstance(s, int) and s >= 0 for s in shape) and shape[1] == _CIFAR_ROW):
        raise ValueError(f"{path}: entry 'data' must have shape (n, {_CIFAR_ROW}), got {shape!r}")
    if not isinstance(dtype, _DtypeStub) or dtype.spec.lstrip("|") != "u1":
        raise ValueError(f"{path}: entry 'data' must be uint8 pixels, got dtype "
                         f"{getattr(dtype, 'spec', dtype)!r}")
    need = shape[0] * _CIFAR_ROW
    if need > file_size or not isinstance(raw, (bytes, bytearray)) or len(raw) != need:
        raise ValueError(f"{path}: entry 'data' says shape {shape} ({need} bytes) but holds "
                         f"{len(raw) if isinstance(raw, (bytes, bytearray)) else 0} bytes "
                         f"(file of {file_size} bytes)")
    X = np.frombuffer(raw, dtype=np.uint8).reshape(shape, order="F" if stub.fortran else "C")
    return np.ascontiguousarray(X)


def _check_labels(path, labels, low, high, what="labels"):
    """Integer labels in [low, high] as int64; ValueError naming the first bad record."""
    arr = np.asarray(labels)
    if arr.dtype == object or arr.dtype.kind not in "iuf" or arr.ndim != 1:
        raise ValueError(f"{path}: {what} must be a flat list of integers, got "
                         f"{arr.dtype} of shape {arr.shape}")
    bad = ~np.isfinite(arr) if arr.dtype.kind == "f" else np.zeros(arr.shape, bool)
    with np.errstate(invalid="ignore"):
        bad |= (arr < low) | (arr > high)
        if arr.dtype.kind == "f":
            bad |= arr != np.round(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}: {what}[{i}] = {arr[i].item()!r} is not an integer in "
                         f"[{low}, {high}] ({int(bad.sum())} bad records)")
    return arr.astype(np.int64)


def _check_pixels(path, images, what="images"):
    """Pixels finite and in [0, 255] (the stored 8-bit range); names the first bad image."""
    if images.dtype.kind not in "iuf":
        raise ValueError(f"{path}: {what} must be numeric pixels, got dtype {images.dtype}")
    if images.dtype == np.uint8:
        return images
    flat = images.reshape(images.shape[0], -1)
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(flat) & (flat >= 0) & (flat <= 255)).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}: {what}[{i}] has pixels outside [0, 255] or not finite "
                         f"({int(bad.sum())} bad images)")
    return images


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
    if X is None or y is None:
        raise ValueError(f"{path}: missing 'data' array or 'labels'")
    X = _cifar_data(path, X, len(data))
    if not isinstance(y, list) or not all(isinstance(v, int) and not isinstance(v, bool)
                                          for v in y):
        raise ValueError(f"{path}: entry 'labels' must be a list of integers")
    y = _check_labels(path, np.array(y, dtype=np.int64) if y else np.zeros(0, np.int64), 0, 9)
    if X.shape[0] != y.shape[0]:
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
    X, y = np.asarray(mat["X"]), np.asarray(mat["y"])
    if X.ndim != 4 or X.shape[2] != 3 or y.size != X.shape[3]:
        raise ValueError(f"{path}: expected X of shape (h, w, 3, n) and n labels, "
                         f"got {X.shape} and {y.shape}")
    # The files store digit 0 as 10; a stored 0 is not a label.
    y = _check_labels(path, y.reshape(-1), 1, 10, what="y")
    y = np.where(y == 10, 0, y)
    images = _check_pixels(path, np.ascontiguousarray(X.transpose(3, 0, 1, 2)), what="X")
    images = images.astype(np.float64) / 255.0
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
