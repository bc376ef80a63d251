"""Image loaders: tiny files in each on-disk format, written here, read back exactly."""

import gzip
import os
import pickle
import struct

import numpy as np
import pytest

from theorylab import datasets


def _write_idx(path, arr, gz=False):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f8"): 0x0E}
    arr = np.asarray(arr)
    head = bytes([0, 0, codes[arr.dtype], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = head + arr.tobytes()
    with (gzip.open if gz else open)(path, "wb") as fh:
        fh.write(data)


def _mnist_dir(tmp_path, n=5, gz=False, prefix="train"):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    ext = ".gz" if gz else ""
    _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{ext}", images, gz)
    _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{ext}", labels, gz)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_roundtrip(tmp_path, gz):
    images, labels = _mnist_dir(tmp_path, gz=gz, prefix="t10k")
    ds = datasets.load_mnist(tmp_path, split="test")
    assert ds.images.shape == (5, 28, 28) and ds.images.dtype == np.float64
    np.testing.assert_array_equal(ds.images, images / 255.0)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.flat().shape == (5, 784) and ds.image_shape == (28, 28)


def test_read_idx_big_endian_types(tmp_path):
    a = (np.arange(12).reshape(3, 4) - 5).astype(">i4")
    _write_idx(tmp_path / "a.idx", a)
    out = datasets.read_idx(tmp_path / "a.idx")
    np.testing.assert_array_equal(out, a)
    assert out.dtype.byteorder in ("=", "|", "<")
    b = np.linspace(-1, 1, 6, dtype=">f8")
    _write_idx(tmp_path / "b.idx", b, gz=True)
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "b.idx"), b)


def test_mnist_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="directory not found"):
        datasets.load_mnist(tmp_path / "nope")
    _mnist_dir(tmp_path)
    os.remove(tmp_path / "train-labels-idx1-ubyte")
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        datasets.load_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.*magic"):
        datasets.load_mnist(tmp_path)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="expected"):  # 5 images, 3 labels
        datasets.load_mnist(tmp_path)
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x00")
    with pytest.raises(ValueError, match="truncated"):
        datasets.read_idx(tmp_path / "short")
    with pytest.raises(ValueError, match="split"):
        datasets.load_mnist(tmp_path, split="val")


def _cifar_batch(path, n, seed, protocol=2, str_keys=False):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, n).tolist()
    key = (lambda k: k) if str_keys else (lambda k: k.encode())
    obj = {key("batch_label"): b"batch", key("labels"): labels, key("data"): data,
           key("filenames"): [b"f%d" % i for i in range(n)]}
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)
    return data, np.array(labels)


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_roundtrip(tmp_path, protocol):
    parts = [_cifar_batch(tmp_path / f"data_batch_{i}", 2, i, protocol) for i in range(1, 6)]
    _cifar_batch(tmp_path / "test_batch", 3, 9, protocol, str_keys=True)
    ds = datasets.load_cifar10(tmp_path)
    assert ds.images.shape == (10, 32, 32, 3) and ds.name == "cifar10"
    data = np.concatenate([p[0] for p in parts])
    # Channel-major rows: pixel (r, c) of channel ch is at ch*1024 + 32 r + c.
    assert ds.images[3, 1, 2, 0] == data[3, 0 * 1024 + 32 + 2] / 255.0
    assert ds.images[7, 31, 0, 2] == data[7, 2 * 1024 + 31 * 32] / 255.0
    np.testing.assert_array_equal(ds.labels, np.concatenate([p[1] for p in parts]))
    assert len(datasets.load_cifar10(tmp_path, "test")) == 3


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar10_refuses_foreign_globals(tmp_path):
    for i in range(1, 6):
        _cifar_batch(tmp_path / f"data_batch_{i}", 1, i)
    with open(tmp_path / "data_batch_3", "wb") as fh:
        pickle.dump({b"data": _Evil(), b"labels": [0]}, fh, protocol=2)
    with pytest.raises(ValueError, match=r"data_batch_3.*not allowed"):
        datasets.load_cifar10(tmp_path)


def test_cifar10_errors_name_the_file(tmp_path):
    for i in (1, 2, 3, 5):
        _cifar_batch(tmp_path / f"data_batch_{i}", 1, i)
    with pytest.raises(FileNotFoundError, match="data_batch_4"):
        datasets.load_cifar10(tmp_path)
    with open(tmp_path / "data_batch_4", "wb") as fh:
        pickle.dump({b"data": np.zeros((1, 10), np.uint8), b"labels": [0]}, fh)
    with pytest.raises(ValueError, match=r"data_batch_4.*3072"):
        datasets.load_cifar10(tmp_path)
    (tmp_path / "data_batch_4").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="data_batch_4"):
        datasets.load_cifar10(tmp_path)


def test_svhn_roundtrip_and_label_ten_is_zero(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (32, 32, 3, 4), dtype=np.uint8)
    y = np.array([[10], [1], [9], [10]], dtype=np.uint8)
    savemat(tmp_path / "test_32x32.mat", {"X": X, "y": y})
    ds = datasets.load_svhn(tmp_path, split="test")
    assert ds.images.shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(ds.labels, [0, 1, 9, 0])
    assert ds.images[2, 5, 7, 1] == X[5, 7, 1, 2] / 255.0
    same = datasets.load_svhn(tmp_path / "test_32x32.mat")
    np.testing.assert_array_equal(same.images, ds.images)
    with pytest.raises(FileNotFoundError, match="train_32x32.mat"):
        datasets.load_svhn(tmp_path)
    savemat(tmp_path / "train_32x32.mat", {"X": X})
    with pytest.raises(ValueError, match="train_32x32.mat.*'y'"):
        datasets.load_svhn(tmp_path)


def test_digits_ship_offline_and_dispatch():
    pytest.importorskip("sklearn")
    ds = datasets.load_dataset("digits")
    assert ds.images.shape == (1797, 8, 8)
    assert ds.images.min() == 0.0 and ds.images.max() == 1.0
    assert set(np.unique(ds.labels)) == set(range(10))
    with pytest.raises(ValueError, match="path is required"):
        datasets.load_dataset("mnist")
    with pytest.raises(ValueError, match="name"):
        datasets.load_dataset("imagenet")


def test_digits_missing_sklearn_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("no sklearn")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"theorylab\[images\]"):
        datasets.load_digits()


def test_cifar10_reads_numpy1_style_pickles(tmp_path):
    # The real batches were written by python 2 / numpy 1: their globals say numpy.core.
    for i in range(1, 6):
        data, _ = _cifar_batch(tmp_path / f"data_batch_{i}", 2, i, protocol=2)
    raw = (tmp_path / "data_batch_5").read_bytes()
    assert b"numpy._core.multiarray" in raw
    (tmp_path / "data_batch_5").write_bytes(raw.replace(b"numpy._core.multiarray",
                                                        b"numpy.core.multiarray"))
    ds = datasets.load_cifar10(tmp_path)
    assert ds.images[9, 0, 0, 1] == data[1, 1024] / 255.0
