"""Ctrl-C: long compiled loops return to Python between segments, with the bits of one call."""

import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from theorylab import attacks, models, training, worlds
from theorylab.models import _base


@pytest.fixture
def one_step_segments(monkeypatch):
    """Every compiled call covers one step (the finest split the drivers make)."""
    monkeypatch.setattr(_base, "SEGMENT_SECONDS", 0.0)
    calls = []
    real = _base.in_segments

    def counting(run, *args, **kwargs):
        def counted(*a):
            calls.append(a)
            run(*a)
        return real(counted, *args, **kwargs)
    for mod in ("theorylab.models.two_layer", "theorylab.models.cnn",
                "theorylab.training.many"):
        monkeypatch.setattr(sys.modules[mod], "in_segments", counting)
    return calls


def test_segmented_pgd_has_the_bits_of_one_call(one_step_segments):
    world = worlds.SparseCoding(16, 3, seed=0)
    net = models.TwoLayerReLU.for_world(world, seed=1)
    s = world.sample(600, 2)  # three kernel chunks, the last one partial
    from theorylab._kernels import relu_net as k
    D0 = attacks.sample_ball(s.X.shape, 0.3, 2, np.random.default_rng(0))
    for linf in (False, True):
        one = k.pgd(s.X, s.y, net.W, net.thresholds(), D0, 7, 0.05, 0.3, linf)
        seg = net.compiled_pgd(s.X, s.y, D0, 7, 0.05, 0.3, np.inf if linf else 2.0)
        for a, b in zip(one, seg):
            assert a.tobytes() == b.tobytes()
    assert len(one_step_segments) >= 2 * 8  # one call per iteration, 0..steps


def test_segmented_cnn_attacks_have_the_bits_of_one_call(one_step_segments):
    cnn = models.SmoothedReLUCNN(3, 2, 12, init_scale=0.3, seed=0)
    world = worlds.RobustNonRobustPatches(3, 4, 12, s=2, alpha=1.0, beta=0.5, n_nonrobust=2,
                                          noise=0.1, seed=0)
    s = world.sample(300, 1)
    from theorylab._kernels import cnn as k
    D0 = attacks.sample_ball(s.X.shape, 0.2, np.inf, np.random.default_rng(0))
    one = k.pgd(s.X, s.y, cnn.W, cnn.q, cnn.rho, D0, 5, 0.05, 0.2, True)
    seg = cnn.compiled_pgd(s.X, s.y, D0, 5, 0.05, 0.2, np.inf)
    for a, b in zip(one, seg):
        assert a.tobytes() == b.tobytes()
    one = k.ascent(s.X, s.y, cnn.W, cnn.q, cnn.rho, D0, 5, 0.05, 0.2, False)
    seg, _ = cnn.compiled_ascent(s.X, s.y, D0, 5, 0.05, 0.2, 2.0)
    assert one.tobytes() == seg.tobytes()
    assert len(one_step_segments) >= 6 + 5


def test_segmented_train_many_has_the_bits_of_one_call(one_step_segments, monkeypatch):
    world = worlds.SparseCoding(16, 3, seed=0)
    data = [(s.X, s.y) for s in (world.sample(64, i) for i in range(3))]
    nets = [models.TwoLayerReLU.for_world(world, seed=i) for i in range(3)]
    nets[1].W *= 1e150  # this run diverges mid-way and must stop there
    seg_nets = [n.copy() for n in nets]
    seg = training.train_many(seg_nets, data, steps=6, lr=0.5)
    monkeypatch.setattr(_base, "SEGMENT_SECONDS", 1e9)
    one = training.train_many(nets, data, steps=6, lr=0.5)
    assert np.array_equal(one.loss, seg.loss, equal_nan=True)
    assert np.array_equal(one.diverged_at, seg.diverged_at)
    for a, b in zip(nets, seg_nets):
        assert a.W.tobytes() == b.W.tobytes()


def test_system_error_wrapping_a_ctrl_c_becomes_keyboard_interrupt():
    def kernel_interrupted():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise SystemError("returned a result with an exception set") from exc
    with pytest.raises(KeyboardInterrupt):
        with _base.interruptible():
            kernel_interrupted()
    with pytest.raises(SystemError):  # any other SystemError is left alone
        with _base.interruptible():
            raise SystemError("other")


def test_a_ctrl_c_several_system_errors_deep_becomes_keyboard_interrupt():
    # Seen on a cold cache: the interrupt lands while Numba unpickles a kernel, and the
    # dispatcher wraps it three times (a fresh-clone CI run ended in a SystemError).
    def nested(depth):
        if depth == 0:
            raise KeyboardInterrupt
        try:
            nested(depth - 1)
        except BaseException as exc:
            raise SystemError("returned a result with an exception set") from exc
    with pytest.raises(KeyboardInterrupt):
        with _base.interruptible():
            nested(3)
    with pytest.raises(SystemError):  # a deep chain ending elsewhere is left alone
        with _base.interruptible():
            try:
                raise ValueError("x")
            except ValueError as exc:
                raise SystemError("y") from exc


_CHILD = textwrap.dedent("""
    import signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import numpy as np
    from theorylab import attacks, models, training, worlds
    w = worlds.SparseCoding(64, 3)
    net = models.TwoLayerReLU.for_world(w)
    s = w.sample(2000, 0)
    attacks.pgd(net, s.X[:8], s.y[:8], 0.1, 2, steps=2)  # compiled (or cached) first
    print("ready", flush=True)
    try:
        if sys.argv[1] == "pgd":
            attacks.pgd(net, s.X, s.y, 0.5, 2, steps=10 ** 7)
        else:
            training.train(net, w, steps=10 ** 6, adversarial="pgd", eps=0.5)
    except KeyboardInterrupt:
        print("interrupted", time.monotonic(), flush=True)
""")


@pytest.mark.parametrize("what", ["pgd", "train"])
def test_ctrl_c_interrupts_a_long_run_promptly(what, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    proc = subprocess.Popen([sys.executable, str(script), what], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        time.sleep(1.0)  # inside the long loop
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert "interrupted" in out, err[-2000:]
    took = float(out.split()[-1]) - sent
    # One segment is ~0.2 s; the bound leaves room for a loaded shared machine.
    assert took < 2.0, f"KeyboardInterrupt {took:.2f} s after SIGINT"
    assert "SystemError" not in err
