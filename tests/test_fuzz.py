"""Fuzz suite: every public entry point, loader and CLI command refuses bad input cleanly.

One table, :data:`TABLE`, lists each entry point's parameters with the *kind* of
value they take; :data:`BAD` gives, per kind, fixed bad values and a Hypothesis
strategy drawing more.  A call with one bad value (every other argument valid)
must raise ``ValueError`` whose message names the parameter; any other exception,
or a call that returns, fails the test.  The valid base calls must return no NaN.
Crafted files (CIFAR, MNIST and SVHN loaders, ``models.load``) and CLI calls
follow the same rule: a ValueError (exit status 2, one line, for the CLI), or an
output whose invariants hold.

``python tests/test_fuzz.py`` prints the counts by category (tried / rejected
cleanly / other) over the fixed bad values.
"""

from __future__ import annotations

import gzip
import io
import math
import pickle
import struct
import zipfile
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from theorylab import (attacks, datasets, evaluate, images, metrics, models, theory, training,
                       verify, worlds)

NAN, INF = float("nan"), float("inf")

# -- tiny valid objects (built once; every call below is milliseconds) ------------------

WORLD = worlds.SparseCoding(8, 2, seed=0)
PATCHES = worlds.RobustNonRobustPatches(3, 4, 12, s=2, alpha=1.0, beta=0.5, n_nonrobust=2,
                                        noise=0.1, seed=0)
S = WORLD.sample(6, 1)
PS = PATCHES.sample(5, 1)
NET = models.TwoLayerReLU.for_world(WORLD, seed=0)
CNN = models.SmoothedReLUCNN(3, 2, 12, init_scale=0.3, seed=0)
LIN = models.LinearClassifier(8, w=WORLD.label_direction)
POLY = models.PolynomialClassifier(8, degrees=(1, 3), C=np.ones((2, 8)))
NTK = models.NTKClassifier(8, W0=np.ones((4, 8)), b0=np.zeros(4))
IMAGES = datasets.ImageSet(np.random.default_rng(0).random((40, 8, 8)),
                           np.arange(40) % 10, "toy")


def _x_bad(X):
    """Bad arrays for an input of X's shape: NaN, inf, wrong shapes, types, empty."""
    Xn, Xi = X.copy(), X.copy()
    Xn.flat[0], Xi.flat[-1] = NAN, -INF
    return [Xn, Xi, X[..., :-1], X[0], X[None], X.astype(str), None, "X", X[:0],
            [[1.0, 2.0], [3.0]]]


def _y_bad(y, classes=None):
    wrong = y.copy()
    wrong[0] = 0 if classes is None else classes
    nan = y.astype(float)
    nan[0] = NAN
    return [wrong, y[:-1], nan, y.astype(str), None, np.full(y.shape, 2 if classes is None
                                                               else -1)]


#: Fixed bad values per kind of parameter.
BAD = {
    "pos_int": [0, -1, 2.5, "3", None, True, NAN, [1]],
    "nonneg_int": [-1, 2.5, "3", None, True, NAN],
    "size": [0, -3, 1.5, None, "8", 10 ** 13],
    "pos_float": [0.0, -1.0, NAN, INF, -INF, "0.1", None, True, 1j],
    "nonneg_float": [-1.0, -1e-300, NAN, INF, -INF, "0.1", None, True, 1j],
    "real": [NAN, INF, -INF, "0.1", None, True, 1j],
    "unit": [1.5, -0.1, NAN, INF, "0.5", None],
    "norm": [True, False, 3, 0, "l3", "", None, NAN, "L2x", [2]],
    "bool": ["no", "yes", "False", 0, 1, None, 2.0],
    "dtype": [np.int64, "int32", "foo", None, np.float16, complex, int, "f8x"],
    "seed": [-1, 2.5, "0", None, True, NAN, [0]],
    "model": [None, "net", 3, WORLD, np.zeros(3)],
    "world": [None, "world", 3, NET, np.zeros(3)],
    "patch_world": [None, "world", 3, WORLD, NET],
    "callback": [3, "f", [print], 1.5],
    "schedule": [(1.0, 0.5), ("a", 0.5, 2), (1.0, 0.5, 0), (NAN, 0.5, 2), 3, "linear",
                 (1.0, -0.5, 2)],
    "choice": ["nope", None, 3, True, ""],
    "X": _x_bad(S.X),
    "y": _y_bad(S.y),
    "Xp": _x_bad(PS.X),
    "yp": _y_bad(PS.y, classes=3),
    "w_star": [np.full(8, NAN), np.ones(7), None, "w", np.ones((8, 1))],
    "W": [np.full((16, 8), NAN), np.ones((16, 7)), np.ones(8), None, "W"],
    "W_any": [np.full((16, 8), NAN), np.ones(8), None, "W", np.ones((16, 0))],
    "grid": [[0.1, NAN], [-0.1, 0.2], [], None, "0.1", [[0.1]], [0.2, INF]],
    "shape": [None, "3", (-1, 3), (2.5, 3), (), (10 ** 7, 10 ** 7)],
    "labels": [np.array([1.0, 0.0]), np.array([1.0, NAN]), np.array([2, -1]), None, "y",
               np.ones((2, 2))],
    "G": [np.full((2, 3), NAN), np.full((2, 3), INF), None, "G", [[1.0], [1.0, 2.0]]],
}

_NOT_A_NUMBER = st.text(max_size=6).filter(lambda s: not _parses(s))


def _parses(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


#: Hypothesis draws more bad values of each kind (beyond the fixed ones).
STRATEGIES = {
    "pos_int": st.integers(max_value=0) | st.floats(allow_nan=True).filter(
        lambda v: not float(v).is_integer()) | _NOT_A_NUMBER,
    "nonneg_int": st.integers(max_value=-1) | st.floats().filter(
        lambda v: not float(v).is_integer()) | _NOT_A_NUMBER,
    "size": st.integers(max_value=0) | st.integers(min_value=10 ** 13, max_value=10 ** 18),
    "pos_float": st.floats(max_value=0.0) | st.sampled_from([NAN, INF]) | _NOT_A_NUMBER,
    "nonneg_float": st.floats(max_value=-1e-300) | st.sampled_from([NAN, INF, -INF])
    | _NOT_A_NUMBER,
    "real": st.sampled_from([NAN, INF, -INF]) | _NOT_A_NUMBER,
    "unit": st.floats(min_value=1.0 + 1e-9) | st.floats(max_value=-1e-9) | st.just(NAN),
    "norm": st.integers().filter(lambda v: v not in (1, 2)) | st.text(max_size=5).filter(
        lambda s: s.lower() not in ("1", "2", "l1", "l2", "inf", "linf", "l_inf")) | st.booleans(),
    "bool": st.integers() | st.text(max_size=5) | st.floats(),
    "dtype": st.sampled_from(["i8", "u1", "f2", "c16", "S3", "O", "bool", "int", "float16"])
    | st.text(max_size=4).filter(lambda s: s not in ("f8", "f4", "d", "f", "float32",
                                                    "float64", "float", "double", "single")),
    "seed": st.integers(max_value=-1) | st.floats() | st.text(max_size=3),
    "model": st.sampled_from(BAD["model"]) | st.text(max_size=3) | st.integers(),
    "world": st.sampled_from(BAD["world"]) | st.text(max_size=3) | st.integers(),
    "patch_world": st.sampled_from(BAD["patch_world"]) | st.text(max_size=3),
    "callback": st.integers() | st.text(max_size=3) | st.floats(),
    "schedule": st.tuples(st.floats(max_value=-1e-9) | st.just(NAN), st.floats(0, 1),
                          st.integers(1, 9))
    | st.tuples(st.floats(0, 1), st.floats(0, 1), st.integers(max_value=0))
    | st.lists(st.floats(0, 1), max_size=5).map(tuple).filter(lambda t: len(t) != 3),
    "choice": st.text(max_size=8).filter(lambda s: s not in _ALL_CHOICES) | st.integers(),
    "grid": st.lists(st.floats(max_value=-1e-9) | st.just(NAN) | st.just(INF), min_size=1,
                     max_size=3),
}

_ALL_CHOICES = {"pm1", "continuous", "identity", "orthogonal", "hadamard", "max", "norm",
                "fixed", "linf", "l2", "A", "B", "separable", "kernel", "empirical",
                "analytic", "online", "full", "mean", "none", "train", "test", "extra",
                "digits", "zero", "raise", "global", "nonrobust", "robust", "per_patch",
                "steepest", "sign", "gradient", "loss", "margin"}


@dataclass
class Row:
    """One parameter of one entry point: ``call(value)`` runs the entry with it."""

    entry: str
    param: str
    kind: str
    call: object
    names: tuple = ()  # words the message may use instead of ``param``
    extra_bad: list = field(default_factory=list)
    optional: bool = False  # None is the parameter's default, hence valid

    def _valid(self, v):
        return not (self.optional and v is None)

    @property
    def bad(self):
        return [v for v in list(BAD.get(self.kind, [])) + list(self.extra_bad) if self._valid(v)]

    @property
    def strategy(self):
        strat = st.sampled_from(self.bad)
        strat = strat | STRATEGIES[self.kind] if self.kind in STRATEGIES else strat
        return strat.filter(self._valid)


def _kw(fn, base, param):
    # A call of fn(**base) with base[param] replaced.
    return lambda v: fn(**{**base, param: v})


def _rows(entry, fn, base, kinds, names=None):
    """Rows of one entry point; a kind ending in '?' is an optional (None) parameter."""
    return [Row(entry, p, k.rstrip("?"), _kw(fn, base, p), names=(names or {}).get(p, ()),
                optional=k.endswith("?"))
            for p, k in kinds.items()]


def _m(method, obj):
    return lambda **kw: getattr(obj, method)(**kw)


def _copy_with(model, attr, value):
    """``model`` (a copy) with one weight replaced: the model-weights category."""
    new = model.copy() if hasattr(model, "copy") else pickle.loads(pickle.dumps(model))
    arr = getattr(new, attr)
    if np.ndim(arr):
        arr = np.array(arr, dtype=float)
        arr.flat[0] = value
    else:
        arr = value
    setattr(new, attr, arr)
    return new


TABLE = []
A = dict(model=NET, X=S.X, y=S.y, eps=0.1, norm=2)
AP = dict(model=CNN, X=PS.X, y=PS.y, eps=0.1, norm="linf")
_ATTACK = dict(model="model", X="X", y="y", eps="nonneg_float", norm="norm")
_ATTACK_P = dict(model="model", X="Xp", y="yp", eps="nonneg_float", norm="norm")

TABLE += _rows("worlds.SparseCoding", worlds.SparseCoding, dict(d=8, k=2),
               dict(d="size", k="pos_float", noise="nonneg_float", codes="choice",
                    dictionary="choice", code_low="unit", seed="seed"))
TABLE += _rows("SparseCoding.sample", _m("sample", WORLD), dict(n=4, rng_or_seed=0),
               dict(n="size", rng_or_seed="seed", dtype="dtype"))
TABLE += _rows("worlds.make_dictionary", worlds.make_dictionary,
               dict(d=4, kind="orthogonal", rng=np.random.default_rng(0)),
               dict(d="size", kind="choice"), names={"kind": ("dictionary",)})
TABLE += _rows("worlds.RobustNonRobustPatches", worlds.RobustNonRobustPatches,
               dict(K=3, P=4, d=12, s=2, alpha=1.0, beta=0.5, n_nonrobust=2, noise=0.1),
               dict(K="pos_int", P="pos_int", d="size", s="pos_int", alpha="nonneg_float",
                    beta="nonneg_float", n_nonrobust="nonneg_int", noise="nonneg_float",
                    threat="choice", layout="choice", seed="seed"))
TABLE += _rows("RobustNonRobustPatches.sample", _m("sample", PATCHES), dict(n=4, rng_or_seed=0),
               dict(n="size", rng_or_seed="seed", dtype="dtype"))

TABLE += _rows("models.TwoLayerReLU", models.TwoLayerReLU, dict(d=8, m=4),
               dict(d="size", m="size", init_scale="pos_float?", threshold="choice",
                    c="nonneg_float", seed="seed", dtype="dtype", W="W?"),
               names={"d": ("m, d",), "m": ("m, d",)})
TABLE += _rows("TwoLayerReLU.thresholds", _m("thresholds", NET), {}, dict(c="nonneg_float?"))
TABLE += _rows("TwoLayerReLU.for_world", models.TwoLayerReLU.for_world, dict(world=WORLD),
               dict(world="world"))
TABLE += _rows("TwoLayerReLU.purified", models.TwoLayerReLU.purified, dict(world=WORLD),
               dict(world="world", c="nonneg_float", scale="pos_float", dtype="dtype"))
TABLE += _rows("models.SmoothedReLUCNN", models.SmoothedReLUCNN, dict(K=3, m=2, d=12),
               dict(K="pos_int", m="size", d="size", q="pos_int", rho="pos_float",
                    init_scale="pos_float", seed="seed", dtype="dtype"),
               names={"K": ("K, m, d",), "m": ("K, m, d",), "d": ("K, m, d",)})
TABLE += _rows("models.LinearClassifier", models.LinearClassifier, dict(d=8),
               dict(d="size", b="real"))
TABLE += _rows("LinearClassifier.oracle", models.LinearClassifier.oracle, dict(world=WORLD),
               dict(world="world"))
TABLE += _rows("models.PolynomialClassifier", models.PolynomialClassifier, dict(d=8),
               dict(d="size", form="choice", b="real"))
TABLE += _rows("PolynomialClassifier.oracle", models.PolynomialClassifier.oracle,
               dict(world=WORLD), dict(world="world", degree="pos_int"))
TABLE += _rows("models.NTKClassifier", models.NTKClassifier,
               dict(d=8, W0=np.ones((4, 8)), b0=np.zeros(4)),
               dict(d="size", form="choice", b="real"), names={"d": ("W0",)})
TABLE += _rows("NTKClassifier.empirical", models.NTKClassifier.empirical, dict(d=8, m=4),
               dict(d="size", m="size", gate="choice", c="nonneg_float", seed="seed"),
               names={"d": ("m, d",), "m": ("m, d",)})
for _name, _model, _Xk, _yk, _X, _y in (
        ("TwoLayerReLU", NET, "X", "y", S.X, S.y), ("LinearClassifier", LIN, "X", "y", S.X, S.y),
        ("PolynomialClassifier", POLY, "X", "y", S.X, S.y),
        ("NTKClassifier", NTK, "X", "y", S.X, S.y),
        ("SmoothedReLUCNN", CNN, "Xp", "yp", PS.X, PS.y)):
    TABLE += _rows(f"{_name}.decision_function", _m("decision_function", _model), dict(X=_X),
                   dict(X=_Xk))
    TABLE += _rows(f"{_name}.accuracy", _m("accuracy", _model), dict(X=_X, y=_y),
                   dict(X=_Xk, y=_yk))
    TABLE += _rows(f"{_name}.loss", _m("loss", _model), dict(X=_X, y=_y),
                   dict(X=_Xk, y=_yk, reduction="choice"))
    TABLE += _rows(f"{_name}.input_gradient", _m("input_gradient", _model), dict(X=_X, y=_y),
                   dict(X=_Xk, y=_yk))

TABLE += _rows("attacks.fgm", attacks.fgm, A, dict(_ATTACK, zero_grad="choice"))
TABLE += _rows("attacks.fgm (CNN)", attacks.fgm, AP, _ATTACK_P)
TABLE += _rows("attacks.pgd", attacks.pgd, A,
               dict(_ATTACK, steps="pos_int", step_size="nonneg_float?", random_start="bool",
                    seed="seed", restarts="pos_int"))
TABLE += _rows("attacks.pgd (CNN)", attacks.pgd, dict(AP, steps=2), _ATTACK_P)
TABLE += _rows("attacks.ascent", attacks.ascent, dict(AP, steps=2),
               dict(_ATTACK_P, steps="pos_int", random_start="bool", form="choice",
                    objective="choice", step_size="pos_float?"))
TABLE += _rows("attacks.apgd", attacks.apgd, dict(A, iters=2),
               dict(_ATTACK, iters="pos_int", restarts="pos_int", random_start="bool",
                    rho="unit", seed="seed"))
TABLE += _rows("attacks.square", attacks.square, dict(A, queries=3),
               dict(_ATTACK, queries="pos_int", p_init="unit", seed="seed"))
TABLE += _rows("attacks.fmn", attacks.fmn, dict(A, steps=2),
               dict(_ATTACK, steps="pos_int", gamma_init="pos_float", seed="seed"))
TABLE += _rows("attacks.fmn_radii", attacks.fmn_radii,
               dict(model=NET, X=S.X, y=S.y, norm=2, steps=2),
               dict(model="model", X="X", y="y", norm="norm", steps="pos_int"))
TABLE += _rows("attacks.robust_accuracy", attacks.robust_accuracy, dict(A, steps=2),
               dict(_ATTACK, attack="choice"))
TABLE += _rows("attacks.robustness_curve", attacks.robustness_curve,
               dict(model=NET, X=S.X, y=S.y, eps_grid=[0.0, 0.1], norm=2, steps=2),
               dict(model="model", X="X", y="y", eps_grid="grid", norm="norm",
                    cumulative="bool"))
TABLE += _rows("attacks.steepest_ascent", attacks.steepest_ascent,
               dict(G=S.X, eps=0.1, norm=2),
               dict(G="G", eps="nonneg_float", norm="norm", zero_grad="choice"))
TABLE += _rows("attacks.project", attacks.project, dict(delta=S.X, eps=0.1, norm=2),
               dict(delta="G", eps="nonneg_float", norm="norm"))
TABLE += _rows("attacks.sample_ball", attacks.sample_ball,
               dict(shape=(3, 4), eps=0.1, norm=2, rng=np.random.default_rng(0)),
               dict(shape="shape", eps="nonneg_float", norm="norm", rng="seed"))
TABLE += _rows("attacks.structured_attack", attacks.structured_attack,
               dict(world=PATCHES, sample=PS, eps=0.1),
               dict(world="patch_world", eps="nonneg_float", where="choice", spread="choice",
                    norm="norm?"))
TABLE += _rows("attacks.dense_direction", attacks.dense_direction,
               dict(world=WORLD, y=S.y, eps=0.1, norm=2),
               dict(world="world", y="labels", eps="nonneg_float", norm="norm", dtype="dtype"))
TABLE += _rows("verify.certified_margin", verify.certified_margin, A, _ATTACK)
TABLE += _rows("verify.exact_margin", verify.exact_margin, dict(A, norm="linf"),
               dict(_ATTACK, time_limit="pos_float", node_limit="pos_int", decide="bool"))
TABLE += _rows("evaluate.robustness", evaluate.robustness,
               dict(model=LIN, X=S.X, y=S.y, eps_grid=[0.0, 0.1], norm=2),
               dict(model="model", X="X", y="y", eps_grid="grid", norm="norm",
                    certify="bool", exact="bool", seed="seed", attribution="bool",
                    progress="bool"))

_T = dict(model=NET, world=WORLD, steps=2, batch_size=8, eval_size=8)
TABLE += _rows("training.train", lambda **kw: training.train(**{**kw, "model": kw["model"]}),
               _T, dict(model="model", world="world", steps="pos_int", lr="pos_float?",
                        eps="nonneg_float?", norm="norm?", batch_size="size?",
                        eval_size="size?", schedule="schedule?", callback="callback?",
                        log_every="pos_int?", seed="seed", adversarial="choice?"))
TABLE += _rows("training.train_two_layer", training.train_two_layer, _T,
               dict(model="model", world="world", mode="choice", n_train="size?",
                    pgd_steps="pos_int", pgd_step_size="pos_float?"))
TABLE += _rows("training.train_cnn", training.train_cnn,
               dict(model=CNN, world=PATCHES, steps=2, n_train=8, eval_size=8),
               dict(model="model", world="patch_world", steps="pos_int", lr="pos_float",
                    n_train="size", eps="nonneg_float", norm="norm?", random_start="bool",
                    eps_ramp="nonneg_int", eval_size="size", callback="callback",
                    monitor_steps="pos_int?", seed="seed"))
TABLE += _rows("training.train_many", training.train_many,
               dict(models=[NET], data=[(S.X, S.y)], steps=2),
               dict(steps="pos_int", lr="pos_float", schedule="schedule"))
TABLE += _rows("training.ThresholdSchedule", training.ThresholdSchedule,
               dict(start=1.0, end=0.5, ramp_steps=2),
               dict(start="nonneg_float", end="nonneg_float", ramp_steps="pos_int"))

TABLE += _rows("metrics.feature_structure", metrics.feature_structure,
               dict(W=NET.W, w_star=WORLD.w_star), dict(W="W", w_star="w_star"),
               names={"W": ("w_star",)})
TABLE += _rows("metrics.summarize", metrics.summarize, dict(W=NET.W, w_star=WORLD.w_star),
               dict(W="W", w_star="w_star"), names={"W": ("w_star",)})
TABLE += _rows("metrics.dense_decomposition", metrics.dense_decomposition, dict(W=NET.W),
               dict(W="W_any"))
TABLE += _rows("metrics.purification", metrics.purification,
               dict(W_clean=NET.W, W_adv=NET.W), dict(W_clean="W", W_adv="W"),
               names={"W_clean": ("W_adv",)})

TABLE += _rows("theory.code_second_moment", theory.code_second_moment, {},
               dict(codes="choice", code_low="unit"))
TABLE += _rows("theory.linear_robust_bound", theory.linear_robust_bound, dict(k=2, d=8, tau=0.1),
               dict(k="pos_float", d="pos_int", tau="nonneg_float", sigma="nonneg_float",
                    norm="norm"))
for _f in (theory.linear_failure_radius, theory.ntk_failure_radius):
    TABLE += _rows(f"theory.{_f.__name__}", _f, dict(k=2, d=8),
                   dict(k="pos_float", d="pos_int", norm="norm"))
TABLE += _rows("theory.purified_radius", theory.purified_radius, dict(k=2),
               dict(k="pos_float", norm="norm", c="unit", dictionary="choice"))
TABLE += _rows("theory.polynomial_failure_radius", theory.polynomial_failure_radius,
               dict(k=2, d=8, degree=3), dict(k="pos_float", d="pos_int", degree="pos_int"))
TABLE += _rows("theory.polynomial_tau50_slope", theory.polynomial_tau50_slope, dict(degree=3),
               dict(degree="pos_int"))
TABLE += _rows("theory.clean_network_radius", theory.clean_network_radius, dict(k=2, d=8),
               dict(k="pos_float", d="pos_int", norm="norm", c="pos_float"))
for _f in (theory.margin_pmf, theory.tie_probability):
    TABLE += _rows(f"theory.{_f.__name__}", _f, dict(k=2, d=8),
                   dict(k="pos_float", d="pos_int"))
TABLE += _rows("theory.small_margin_probability", theory.small_margin_probability,
               dict(k=2, d=8), dict(k="pos_float", d="pos_int", t="nonneg_float",
                                    conditioned="bool"))
TABLE += _rows("theory.small_margin_bound", theory.small_margin_bound, dict(k=2),
               dict(k="pos_float", conditioned="bool"))

TABLE += _rows("datasets.load_dataset", datasets.load_dataset, dict(name="digits"),
               dict(name="choice"))
TABLE += _rows("images.make_task", images.make_task, dict(dataset=IMAGES, n_train=20),
               dict(n_train="size", seed="seed"))
TABLE += _rows("images.to_patches", images.to_patches,
               dict(X=IMAGES.flat()[:3], image_shape=(8, 8), patch=4),
               dict(patch="pos_int"))

# Model weights: a model holding one non-finite weight refuses to score, for every class.
_WEIGHTS = [(NET, "W"), (NET, "c"), (LIN, "w"), (LIN, "b"), (POLY, "C"), (POLY, "b"),
            (NTK, "W0"), (NTK, "b0"), (NTK, "V"), (CNN, "W")]
WEIGHT_ROWS = []
for _model, _attr in _WEIGHTS:
    _X, _y = (PS.X, PS.y) if _model is CNN else (S.X, S.y)
    for _method in ("decision_function", "accuracy", "loss", "input_gradient", "attack"):
        def _call(v, model=_model, attr=_attr, method=_method, X=_X, y=_y):
            bad = _copy_with(model, attr, v)
            if method == "attack":
                return attacks.pgd(bad, X, y, 0.1, "linf", steps=2)
            args = (X,) if method == "decision_function" else (X, y)
            return getattr(bad, method)(*args)
        WEIGHT_ROWS.append(Row(f"{type(_model).__name__}.{_method}", _attr, "weight", _call,
                               extra_bad=[NAN, INF, -INF]))


# -- the check ------------------------------------------------------------------------

def outcome(row, value):
    """'clean', 'unnamed' (a ValueError not naming the parameter), 'other' or 'accepted'."""
    try:
        row.call(value)
    except ValueError as exc:
        words = (row.param,) + tuple(row.names)
        return "clean" if any(w in str(exc) for w in words) else "unnamed"
    except Exception:  # noqa: BLE001 - the category under test
        return "other"
    return "accepted"


def _describe(row, value):
    try:
        row.call(value)
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"
    return "returned"


def _assert_clean(row, value):
    assert outcome(row, value) == "clean", (
        f"{row.entry}({row.param}={value!r}) -> {_describe(row, value)}")


# The fixed bad values run in full below; Hypothesis adds a few drawn ones per parameter
# (3 in the ci profile, 62 in thorough: a sixteenth of the profile's examples).
_SETTINGS = settings(suppress_health_check=list(HealthCheck), deadline=None,
                     max_examples=max(3, settings.default.max_examples // 16))


@pytest.mark.parametrize("row", TABLE, ids=lambda r: f"{r.entry}:{r.param}")
def test_fixed_bad_values_are_value_errors_naming_the_parameter(row):
    assert row.bad
    for value in row.bad:
        _assert_clean(row, value)


@pytest.mark.parametrize("row", TABLE, ids=lambda r: f"{r.entry}:{r.param}")
@_SETTINGS
@given(data=st.data())
def test_drawn_bad_values_are_value_errors_naming_the_parameter(row, data):
    _assert_clean(row, data.draw(STRATEGIES.get(row.kind, st.sampled_from(row.bad)).filter(
        row._valid), label=row.param))


@pytest.mark.parametrize("row", WEIGHT_ROWS, ids=lambda r: f"{r.entry}:{r.param}")
def test_model_with_a_non_finite_weight_refuses_to_score(row):
    for value in row.bad:
        _assert_clean(row, value)


def _floats_in(obj):
    if isinstance(obj, (float, np.floating)):
        yield float(obj)
    elif isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
        yield from obj.ravel().tolist()
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _floats_in(o)


_BASE_CALLS = {
    "pgd": lambda: attacks.pgd(NET, S.X, S.y, 0.1, 2, steps=3, random_start=True),
    "pgd cnn": lambda: attacks.pgd(CNN, PS.X, PS.y, 0.1, "linf", steps=3),
    "fgm": lambda: attacks.fgm(LIN, S.X, S.y, 0.1, "inf"),
    "apgd": lambda: attacks.apgd(NET, S.X, S.y, 0.1, 2, iters=3),
    "scores": lambda: [m.decision_function(S.X) for m in (NET, LIN, POLY, NTK)],
    "thresholds": lambda: NET.thresholds(c=0.0),
    "summarize": lambda: list(metrics.summarize(NET.W, WORLD.w_star).values()),
    "theory": lambda: [theory.purified_radius(2, c=0.0), theory.linear_robust_bound(2, 8, 0.1),
                       theory.small_margin_bound(2, 8)],
    "sample": lambda: [(s.X, s.y) for s in [WORLD.sample(5, 0, dtype=np.float32)]],
    "patch sample": lambda: [PATCHES.sample(5, 0).X],
}


@pytest.mark.parametrize("name", sorted(_BASE_CALLS))
def test_valid_calls_return_no_nan(name):
    values = list(_floats_in(_BASE_CALLS[name]()))
    assert values and not any(math.isnan(v) for v in values)


# -- crafted files ----------------------------------------------------------------------

def _cifar_pickle(data, labels, protocol=2):
    return pickle.dumps({b"batch_label": b"b", b"labels": labels, b"data": data,
                         b"filenames": []}, protocol=protocol)


class _Bomb:
    """Pickles as numpy's own array recipe, but for 1e9 rows and no bytes."""

    def __reduce__(self):
        try:
            from numpy._core.multiarray import _reconstruct
        except ImportError:  # numpy < 2
            from numpy.core.multiarray import _reconstruct
        return (_reconstruct, (np.ndarray, (0,), b"b"),
                (1, (10 ** 9, 3072), np.dtype("u1"), False, b""))


def _ndarray_bomb(protocol=2):
    # A ~200-byte pickle that, unpickled by numpy, allocates 2.9 TB of uninitialised images.
    return pickle.dumps({b"data": _Bomb(), b"labels": [0]}, protocol=protocol)


_GOOD_PIXELS = np.random.default_rng(0).integers(0, 256, (2, 3072), dtype=np.uint8)
CIFAR_FILES = {
    "ndarray bomb": _ndarray_bomb(),
    "label 10": _cifar_pickle(_GOOD_PIXELS, [0, 10]),
    "label -1": _cifar_pickle(_GOOD_PIXELS, [-1, 0]),
    "label str": _cifar_pickle(_GOOD_PIXELS, ["a", 0]),
    "label float": _cifar_pickle(_GOOD_PIXELS, [0.5, 0]),
    "label nan": _cifar_pickle(_GOOD_PIXELS, [NAN, 0]),
    "too few labels": _cifar_pickle(_GOOD_PIXELS, [0]),
    "float pixels": _cifar_pickle(_GOOD_PIXELS.astype(np.float64), [0, 1]),
    "nan pixels": _cifar_pickle(np.full((2, 3072), NAN), [0, 1]),
    "wrong width": _cifar_pickle(np.zeros((2, 3071), np.uint8), [0, 1]),
    "3-d data": _cifar_pickle(np.zeros((2, 3072, 1), np.uint8), [0, 1]),
    "data is a list": _cifar_pickle([[0] * 3072] * 2, [0, 1]),
    "not a dict": pickle.dumps([1, 2], protocol=2),
    "truncated": _cifar_pickle(_GOOD_PIXELS, [0, 1])[:-200],
    "empty": b"",
    "foreign global": b"cos\nsystem\n(S'true'\ntR.",
    "protocol 5 bomb": _ndarray_bomb(5),
}


def _cifar_dir(tmp_path, payload):
    for i in range(1, 5):
        (tmp_path / f"data_batch_{i}").write_bytes(_cifar_pickle(_GOOD_PIXELS, [0, 1]))
    (tmp_path / "data_batch_5").write_bytes(payload)
    return tmp_path


def _idx(arr, code=0x08):
    dt = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    return (bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
            + np.asarray(arr, dtype=dt).tobytes())


def _mnist_files(images=None, labels=None, img_code=0x08, lab_code=0x08):
    images = np.zeros((3, 28, 28)) if images is None else images
    labels = np.array([0, 1, 9]) if labels is None else labels
    return _idx(images, img_code), _idx(labels, lab_code)


_NAN_IMG = np.zeros((3, 28, 28))
_NAN_IMG[1, 2, 3] = NAN
MNIST_FILES = {
    "label 10": _mnist_files(labels=np.array([0, 10, 1])),
    "negative pixels (int8)": _mnist_files(images=-np.ones((3, 28, 28)), img_code=0x09),
    "nan pixels (float)": _mnist_files(images=_NAN_IMG, img_code=0x0E),
    "1e6 pixels": _mnist_files(images=np.full((3, 28, 28), 1e6), img_code=0x0D),
    "negative label (int32)": _mnist_files(labels=np.array([0, -5, 1]), lab_code=0x0C),
    "float label 0.5": _mnist_files(labels=np.array([0, 0.5, 1]), lab_code=0x0E),
    "nan label": _mnist_files(labels=np.array([0, NAN, 1]), lab_code=0x0E),
    "count mismatch": _mnist_files(labels=np.array([0, 1])),
    "truncated images": (_mnist_files()[0][:-10], _mnist_files()[1]),
    "bad magic": (b"\x01\x02\x03\x04", _mnist_files()[1]),
    "corrupt gzip": (b"\x1f\x8b" + b"\x00" * 20, _mnist_files()[1]),
}


def _mnist_dir(tmp_path, files):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(files[0])
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(files[1])
    return tmp_path


_X_SVHN = np.random.default_rng(0).integers(0, 256, (32, 32, 3, 3)).astype(np.uint8)
SVHN_FILES = {
    "nan label": {"X": _X_SVHN, "y": np.array([[1.0], [NAN], [10.0]])},
    "label 0": {"X": _X_SVHN, "y": np.array([[1], [0], [10]])},
    "label 11": {"X": _X_SVHN, "y": np.array([[1], [11], [10]])},
    "label 2.5": {"X": _X_SVHN, "y": np.array([[1.0], [2.5], [10.0]])},
    "nan pixels": {"X": np.where(_X_SVHN == _X_SVHN.flat[0], NAN, 1.0), "y": np.ones((3, 1))},
    "1e6 pixels": {"X": np.full(_X_SVHN.shape, 1e6), "y": np.ones((3, 1))},
    "negative pixels": {"X": -np.ones(_X_SVHN.shape), "y": np.ones((3, 1))},
    "missing y": {"X": _X_SVHN},
    "wrong X shape": {"X": np.zeros((32, 32, 3)), "y": np.ones((3, 1))},
    "label count": {"X": _X_SVHN, "y": np.ones((2, 1))},
    "string labels": {"X": _X_SVHN, "y": np.array(["a", "b", "c"])},
}


def _npz_bytes(kind, arrays, meta):
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/m.npz"
        models._base.save_npz(path, kind, arrays, meta)
        with open(path, "rb") as fh:
            return fh.read()


def _payload(model):
    # (kind, arrays, metadata) as model.save writes them, to edit one entry.
    import json
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        model.save(f"{tmp}/m.npz")
        with np.load(f"{tmp}/m.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k not in ("kind", "metadata")}
            return str(z["kind"]), arrays, json.loads(str(z["metadata"]))


def _model_bytes(model):
    return _npz_bytes(*_payload(model))


def _edited(model, **changes):
    kind, arrays, meta = _payload(model)
    for k, v in changes.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    return _npz_bytes(kind, arrays, meta)


_W_NAN = NET.W.copy()
_W_NAN[0, 0] = NAN
MODEL_FILES = {
    "NaN W_init": _edited(NET, W_init=_W_NAN),
    "wrong-shape W_init": _edited(NET, W_init=np.ones((3, 3))),
    "NaN W": _edited(NET, W=_W_NAN),
    "missing W": _edited(NET, W=None),
    "missing b": _edited(NET, b=None),
    "CNN NaN W": _edited(CNN, W=np.full(CNN.W.shape, NAN)),
    "linear inf w": _edited(LIN, w=np.full(8, INF)),
    "truncated zip": _model_bytes(NET)[:200],
    "not a zip": b"hello world",
    "empty": b"",
    "zip without entries": (lambda b: (zipfile.ZipFile(b, "w").close(), b.getvalue())[1])(
        io.BytesIO()),
}


def _check_imageset(ds):
    assert np.isfinite(ds.images).all() and ds.images.min() >= 0 and ds.images.max() <= 1
    assert ds.labels.dtype == np.int64 and ds.labels.min() >= 0 and ds.labels.max() <= 9


def _loaded_or_refused(load):
    """The loader raises ValueError, or what it returns is a valid image set."""
    try:
        ds = load()
    except ValueError:
        return "clean"
    except Exception as exc:  # noqa: BLE001
        return f"other: {type(exc).__name__}: {exc}"
    _check_imageset(ds)
    return "accepted"


def _file_outcomes(tmp_path):
    """(category, case, outcome) for every crafted file: all must be 'clean'."""
    from scipy.io import savemat
    out = []
    for name, payload in CIFAR_FILES.items():
        d = _cifar_dir(tmp_path / f"c_{len(out)}", payload) if (
            tmp_path / f"c_{len(out)}").mkdir() is None else None
        out.append(("files: cifar", name, _loaded_or_refused(lambda: datasets.load_cifar10(d))))
    for name, files in MNIST_FILES.items():
        (tmp_path / f"m_{len(out)}").mkdir()
        d = _mnist_dir(tmp_path / f"m_{len(out)}", files)
        out.append(("files: mnist", name, _loaded_or_refused(lambda: datasets.load_mnist(d))))
    for name, mat in SVHN_FILES.items():
        path = tmp_path / f"s_{len(out)}.mat"
        savemat(path, mat)
        out.append(("files: svhn", name, _loaded_or_refused(lambda: datasets.load_svhn(path))))
    for name, payload in MODEL_FILES.items():
        path = tmp_path / f"model_{len(out)}.npz"
        path.write_bytes(payload)
        try:
            models.load(path)
            result = "accepted"
        except ValueError as exc:
            result = "clean" if str(path) in str(exc) or "entry" in str(exc) else "unnamed"
        except Exception as exc:  # noqa: BLE001
            result = f"other: {type(exc).__name__}: {exc}"
        out.append(("files: models.load", name, result))
    return out


def test_crafted_files_are_refused_with_a_value_error(tmp_path):
    bad = [o for o in _file_outcomes(tmp_path) if o[2] != "clean"]
    assert not bad


def test_cifar_bomb_allocates_nothing(tmp_path):
    import tracemalloc
    d = _cifar_dir(tmp_path, CIFAR_FILES["ndarray bomb"])
    tracemalloc.start()
    with pytest.raises(ValueError, match="data_batch_5.*holds 0 bytes"):
        datasets.load_cifar10(d)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 << 20


def test_bad_records_are_named(tmp_path):
    d = _mnist_dir(tmp_path, MNIST_FILES["label 10"])
    with pytest.raises(ValueError, match=r"labels\[1\] = 10"):
        datasets.load_mnist(d)
    from scipy.io import savemat
    savemat(tmp_path / "train_32x32.mat", SVHN_FILES["nan pixels"])
    with pytest.raises(ValueError, match=r"X\[0\] has pixels outside"):
        datasets.load_svhn(tmp_path)


@_SETTINGS
@given(cut=st.integers(0, 6300), flips=st.lists(st.tuples(st.integers(0, 6300),
                                                          st.integers(1, 255)), max_size=3))
def test_mutated_cifar_batches_load_validly_or_are_refused(tmp_path_factory, cut, flips):
    raw = bytearray(_cifar_pickle(_GOOD_PIXELS, [0, 1], protocol=2))
    for pos, x in flips:
        if pos < len(raw):
            raw[pos] ^= x
    d = _cifar_dir(tmp_path_factory.mktemp("cifar"), bytes(raw[:max(1, len(raw) - cut)]))
    assert _loaded_or_refused(lambda: datasets.load_cifar10(d)) in ("clean", "accepted")


@_SETTINGS
@given(cut=st.integers(1, 900), flips=st.lists(st.tuples(st.integers(0, 900),
                                                         st.integers(1, 255)), max_size=3))
def test_mutated_model_files_load_validly_or_are_refused(tmp_path_factory, cut, flips):
    raw = bytearray(_model_bytes(LIN))
    for pos, x in flips:
        if pos < len(raw):
            raw[pos] ^= x
    path = tmp_path_factory.mktemp("m") / "m.npz"
    path.write_bytes(bytes(raw[:max(1, len(raw) - cut)]))
    try:
        model = models.load(path)
    except ValueError:
        return
    assert np.isfinite(model.decision_function(S.X)).all()


@_SETTINGS
@given(data=st.binary(max_size=64), gz=st.booleans())
def test_random_idx_bytes(tmp_path_factory, data, gz):
    path = tmp_path_factory.mktemp("idx") / "f"
    path.write_bytes(gzip.compress(data) if gz else data)
    try:
        datasets.read_idx(path)
    except ValueError:
        pass


# -- CLI ----------------------------------------------------------------------------------

def _cli_flags():
    """(subcommand words, flag, kind) for every typed flag of every subcommand."""
    import argparse

    from theorylab import cli
    out = []

    def walk(parser, words):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, words + [name])
            elif action.option_strings and action.nargs is None and (
                    action.type is not None or action.choices is not None):
                flag = max(action.option_strings, key=len)
                out.append((tuple(words), flag, "choice" if action.choices else "typed"))
    walk(cli.build_parser(), [])
    return out


CLI_FLAGS = _cli_flags()
CLI_BAD = ["nan", "-inf", "abc", "", "1e999", "-7", "0x1g"]


def _cli_outcome(words, flag, value, capsys):
    from theorylab import cli
    capsys.readouterr()
    try:
        status = cli.main([*words, f"{flag}={value}"])
    except BaseException as exc:  # noqa: BLE001 - argparse's SystemExit included
        return f"other: {type(exc).__name__}"
    err = capsys.readouterr().err
    if status == 2 and err.count("\n") == 1 and "Traceback" not in err and flag in err:
        return "clean"
    return f"status {status}: {err!r}"


@pytest.mark.parametrize("words,flag,kind", CLI_FLAGS,
                         ids=[" ".join(w) + " " + f for w, f, _ in CLI_FLAGS])
@_SETTINGS
@given(value=st.sampled_from(CLI_BAD) | _NOT_A_NUMBER.filter(lambda s: "\n" not in s))
def test_cli_bad_flag_value_is_one_line_exit_2(words, flag, kind, value, capsys):
    """Hypothesis draws the value; the fixed list ``CLI_BAD`` runs in the test below."""
    if _accepted_by_type(words, flag, value):  # e.g. "-7" for a flag that takes any number
        return
    assert _cli_outcome(words, flag, value, capsys) == "clean"


def _accepted_by_type(words, flag, value):
    import argparse

    from theorylab import cli
    parser = cli.build_parser()
    for w in words:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[w]
    action = next(a for a in parser._actions if flag in a.option_strings)
    if action.choices is not None:
        try:
            conv = action.type(value) if action.type else value
        except (argparse.ArgumentTypeError, TypeError, ValueError):
            return False
        return conv in action.choices
    try:
        action.type(value)
    except (argparse.ArgumentTypeError, TypeError, ValueError):
        return False
    return True


@pytest.mark.parametrize("words,flag,kind", CLI_FLAGS,
                         ids=[" ".join(w) + " " + f for w, f, _ in CLI_FLAGS])
def test_cli_fixed_bad_flag_values(words, flag, kind, capsys):
    for value in CLI_BAD:
        if not _accepted_by_type(words, flag, value):
            assert _cli_outcome(words, flag, value, capsys) == "clean", value


# -- counts by category --------------------------------------------------------------------

def counts(tmp_path=None):
    """{category: (tried, rejected cleanly, other)} over the fixed bad values."""
    import tempfile
    from collections import Counter
    tally = {}

    def add(cat, result):
        c = tally.setdefault(cat, Counter())
        c["tried"] += 1
        c["clean" if result == "clean" else "other"] += 1

    for row in TABLE:
        cat = "api: " + row.entry.split(".")[0].split(" ")[0]
        if row.entry[0].isupper():
            cat = "api: models" if "." in row.entry and row.entry.split(".")[0] in dir(models) \
                else "api: worlds"
        for v in row.bad:
            add(cat, outcome(row, v))
    for row in WEIGHT_ROWS:
        for v in row.bad:
            add("model weights", outcome(row, v))
    with tempfile.TemporaryDirectory() as tmp:
        import pathlib
        for cat, _, result in _file_outcomes(pathlib.Path(tmp)):
            add(cat, result)

    import contextlib

    from theorylab import cli
    for words, flag, _ in CLI_FLAGS:
        for v in CLI_BAD:
            if _accepted_by_type(words, flag, v):
                continue
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                try:
                    status = cli.main([*words, f"{flag}={v}"])
                except BaseException:  # noqa: BLE001
                    status = None
            text = err.getvalue()
            ok = status == 2 and text.count("\n") == 1 and flag in text
            add("cli", "clean" if ok else "other")
    return {k: (c["tried"], c["clean"], c["other"]) for k, c in sorted(tally.items())}


if __name__ == "__main__":
    total = [0, 0, 0]
    print(f"{'category':28s} {'tried':>6s} {'clean':>6s} {'other':>6s}")
    for cat, row in counts().items():
        print(f"{cat:28s} {row[0]:6d} {row[1]:6d} {row[2]:6d}")
        total = [a + b for a, b in zip(total, row)]
    print(f"{'total':28s} {total[0]:6d} {total[1]:6d} {total[2]:6d}")
