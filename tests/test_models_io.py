"""theorylab.models.load: every model kind round-trips, every malformed file is a ValueError.

The ValueError names the file and the entry: a missing file, a non-zip or
truncated one, a corrupt archive member, no ``kind`` or an unknown one, bad
``metadata``, and for each kind every array entry missing (unless optional),
of the wrong shape, or with NaN / infinite values, and a ``W_init`` that does
not match ``W``.
"""

import json
import re

import numpy as np
import pytest

from theorylab.models import (LinearClassifier, NTKClassifier, PolynomialClassifier,
                              SmoothedReLUCNN, TwoLayerReLU, load)
from theorylab.worlds import SparseCoding

# Entries a file may lack (the loader falls back: identity dictionary, W_init = W).
OPTIONAL = {"TwoLayerReLU": {"M", "W_init"}, "SmoothedReLUCNN": {"W_init"},
            "PolynomialClassifier": {"M"}}


def _models():
    world = SparseCoding(8, 2, seed=0)
    rotated = SparseCoding(8, 2, dictionary="orthogonal", seed=0)
    tr = world.sample(80, 1)
    net = TwoLayerReLU.for_world(rotated, m=6, seed=1)
    net.W += 0.01  # W differs from W_init
    cnn = SmoothedReLUCNN(3, 2, 5, seed=2)
    cnn.W *= 2.0
    return {
        "two_layer": net,
        "two_layer_float32": TwoLayerReLU(8, 4, dtype=np.float32, seed=3),
        "cnn": cnn,
        "linear": LinearClassifier(8).fit(tr.X, tr.y),
        "poly_separable": PolynomialClassifier.oracle(rotated, 3),
        "poly_kernel": PolynomialClassifier.kernel(8).fit(tr.X[:30], tr.y[:30]),
        "ntk_empirical": NTKClassifier.empirical(8, 6).fit(tr.X, tr.y),
        "ntk_analytic": NTKClassifier.analytic(8).fit(tr.X[:30], tr.y[:30]),
    }


MODELS = _models()


def _points(model):
    rng = np.random.default_rng(0)
    if isinstance(model, SmoothedReLUCNN):
        return rng.standard_normal((4, 2, model.d))
    return rng.standard_normal((5, model.d))


@pytest.fixture(params=sorted(MODELS))
def saved(request, tmp_path):
    model = MODELS[request.param]
    model.metadata = {"note": request.param}
    path = tmp_path / f"{request.param}.npz"
    model.save(path)
    return model, path


def _arrays(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _write(path, arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def _raises(path, *words):
    with pytest.raises(ValueError) as info:
        load(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    for w in words:
        assert w in msg, msg
    assert "\n" not in msg
    return msg


def test_round_trip(saved):
    model, path = saved
    back = load(path)
    assert type(back) is type(model) and back.kind == model.kind
    X = _points(model)
    np.testing.assert_array_equal(back.decision_function(X), model.decision_function(X))
    assert back.metadata == model.metadata
    if hasattr(model, "W_init"):
        np.testing.assert_array_equal(back.W_init, model.W_init)
        assert back.W.dtype == model.W.dtype


@pytest.mark.parametrize("kind", ["empty", "text", "npy", "directory", "missing"])
def test_not_an_npz_file(tmp_path, kind):
    path = tmp_path / "model.npz"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("W = [1, 2, 3]\n")
    elif kind == "npy":
        with open(path, "wb") as fh:
            np.save(fh, np.zeros(3))
    elif kind == "directory":
        path.mkdir()
    words = {"missing": ("no such file",), "directory": ("directory",)}.get(kind, ("not an .npz",))
    _raises(path, *words)


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_truncated_file(saved, keep):
    _, path = saved
    raw = path.read_bytes()
    path.write_bytes(raw[:int(keep * len(raw))])
    _raises(path, "not an .npz")


@pytest.mark.parametrize("compressed", [False, True])
def test_corrupt_member(tmp_path, compressed):
    # The zip directory is intact, one member's bytes are not (CRC / inflate error).
    path = tmp_path / "m.npz"
    arrays = _arrays(_save(MODELS["two_layer"], tmp_path / "ok.npz"))
    with open(path, "wb") as fh:
        (np.savez_compressed if compressed else np.savez)(fh, **arrays)
    raw = bytearray(path.read_bytes())
    for i in range(len(raw) // 3, len(raw) // 2):
        raw[i] ^= 0x5A
    path.write_bytes(bytes(raw))
    _raises(path, "cannot be read")


def _save(model, path):
    model.save(path)
    return path


def test_kind_and_metadata_entries(saved, tmp_path):
    model, path = saved
    arrays = _arrays(path)
    _raises(_write(tmp_path / "a.npz", {k: v for k, v in arrays.items() if k != "kind"}),
            "no 'kind' entry")
    _raises(_write(tmp_path / "b.npz", dict(arrays, kind=np.array("Perceptron"))),
            "unknown model kind 'Perceptron'", "'kind'")
    _raises(_write(tmp_path / "c.npz", dict(arrays, kind=np.arange(3.0))), "'kind'")
    _raises(_write(tmp_path / "d.npz", dict(arrays, metadata=np.array("{oops"))),
            "'metadata'", "JSON")
    _raises(_write(tmp_path / "e.npz", dict(arrays, metadata=np.array("[1, 2]"))),
            "'metadata'", "JSON object")
    _raises(_write(tmp_path / "f.npz", dict(arrays, metadata=np.zeros(2))), "'metadata'")
    meta = json.loads(str(arrays["metadata"]))
    _raises(_write(tmp_path / "g.npz", dict(arrays, metadata=np.array(json.dumps(
        dict(meta, user=[1]))))), "'user'")
    _raises(_write(tmp_path / "h.npz", dict(arrays, W=np.array([None, 1], dtype=object))),
            "cannot be read")


def _entries(path):
    return sorted(k for k in _arrays(path) if k not in ("kind", "metadata"))


def test_every_entry_missing(saved, tmp_path):
    model, path = saved
    arrays = _arrays(path)
    for name in _entries(path):
        bad = _write(tmp_path / f"no_{name}.npz", {k: v for k, v in arrays.items() if k != name})
        if name == "M" and model.kind == "TwoLayerReLU" and model.M is not None:
            # Optional (identity), but this network's thresholds follow its rotated dictionary.
            _raises(bad, "'b'", "threshold")
        elif name in OPTIONAL.get(model.kind, ()):
            back = load(bad)  # optional: falls back
            if name != "M":
                X = _points(model)
                np.testing.assert_array_equal(back.decision_function(X),
                                              model.decision_function(X))
        else:
            _raises(bad, f"missing entry {name!r}")


def test_every_entry_wrong_shape(saved, tmp_path):
    _, path = saved
    arrays = _arrays(path)
    for name in _entries(path):
        bad = _write(tmp_path / f"shape_{name}.npz", dict(arrays, **{name: np.ones((2, 3, 1, 7))}))
        _raises(bad, f"entry {name!r}")


def test_every_float_entry_non_finite(saved, tmp_path):
    _, path = saved
    arrays = _arrays(path)
    for value in (np.nan, np.inf):
        for name in _entries(path):
            a = arrays[name]
            if a.dtype.kind != "f" or a.size == 0:
                continue
            flat = a.astype(np.float64).ravel()
            flat[flat.size // 2] = value
            bad = _write(tmp_path / f"nan_{name}.npz",
                         dict(arrays, **{name: flat.reshape(a.shape)}))
            _raises(bad, f"entry {name!r}")


@pytest.mark.parametrize("key", ["two_layer", "cnn"])
def test_w_init_of_the_wrong_shape(tmp_path, key):
    path = _save(MODELS[key], tmp_path / "m.npz")
    arrays = _arrays(path)
    shape = arrays["W_init"].shape
    wrong = np.zeros(shape[:-1] + (shape[-1] + 1,))
    msg = _raises(_write(tmp_path / "w.npz", dict(arrays, W_init=wrong)), "'W_init'")
    assert re.search(r"shape", msg)


def test_metadata_fields(tmp_path):
    path = _save(MODELS["two_layer"], tmp_path / "m.npz")
    arrays = _arrays(path)
    meta = json.loads(str(arrays["metadata"]))
    for field, value, word in (("threshold", "bogus", "'threshold'"), ("c", -1.0, "'c'"),
                               ("dtype", "int8", "'dtype'"), ("c", "half", "'c'")):
        bad = dict(arrays, metadata=np.array(json.dumps(dict(meta, **{field: value}))))
        _raises(_write(tmp_path / f"{field}.npz", bad), word)
    del meta["threshold"]
    _raises(_write(tmp_path / "none.npz", dict(arrays, metadata=np.array(json.dumps(meta)))),
            "'threshold'")
    # The saved thresholds must match the rule applied to W.
    _raises(_write(tmp_path / "b.npz", dict(arrays, b=arrays["b"] + 1.0)), "'b'")
    # A non-orthonormal dictionary.
    _raises(_write(tmp_path / "M.npz", dict(arrays, M=2.0 * arrays["M"])), "'M'")


def test_cnn_scalars(tmp_path):
    arrays = _arrays(_save(MODELS["cnn"], tmp_path / "m.npz"))
    _raises(_write(tmp_path / "q.npz", dict(arrays, q=np.array(2.5))), "'q'")
    _raises(_write(tmp_path / "q1.npz", dict(arrays, q=np.array(1))), "'q'")
    _raises(_write(tmp_path / "rho.npz", dict(arrays, rho=np.array(-0.5))), "'rho'")
    back = load(_write(tmp_path / "qf.npz", dict(arrays, q=np.array(3.0))))  # 3.0 is 3
    assert back.q == 3
