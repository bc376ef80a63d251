"""The ``theorylab`` command line: thin argparse front-end over the library.

Heavy imports happen inside subcommands so ``theorylab --help`` is instant.
Subcommands: train, attack, verify, check, sweep, plot, bench.

Every user error (a bad flag value, an unreadable or malformed input file, an
output path that cannot be written, a diverging training run) is one line on
stderr, ``theorylab <command>: error: <message>``, and exit status 2; Ctrl-C
is the line ``theorylab <command>: interrupted`` and exit status 130.  Output
paths are checked before any work starts.  ``theorylab --debug <command> ...``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

__all__ = ["main", "build_parser"]


class _UsageError(Exception):
    def __init__(self, prog, message):
        super().__init__(message)
        self.prog, self.message = prog, message


class _Parser(argparse.ArgumentParser):
    """argparse with its errors raised (main prints them as one line, exit status 2)."""

    def error(self, message):
        raise _UsageError(self.prog, message)


# -- argument types: a bad value is a parse error naming the flag ------------------------

def _int_type(low):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    return parse


def _float_type(low, *, low_open=False):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
        if value < low or (low_open and value == low):
            raise argparse.ArgumentTypeError(f"must be {'>' if low_open else '>='} {low:g}, "
                                             f"got {value:g}")
        return value
    return parse


_NORMS = {"2": "2", "l2": "2", "inf": "inf", "linf": "inf", "1": "1", "l1": "1"}


def _norm_type(allowed=("2", "inf", "1")):
    # Validated here, passed on as typed (the library normalises the spelling itself).
    def parse(text):
        if _NORMS.get(text.lower()) not in allowed:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(allowed)}, got "
                                             f"{text!r}")
        return text
    return parse


_POSITIVE_INT = _int_type(1)
_POSITIVE = _float_type(0.0, low_open=True)
_RADIUS = _float_type(0.0)


class _AttackNames:
    """The registered attacks, :func:`theorylab.attacks.names`, imported only when needed."""

    def _names(self):
        from theorylab import attacks

        return attacks.names()

    def __contains__(self, name):
        return name in self._names()

    def __iter__(self):
        return iter(self._names())

    def __len__(self):
        return len(self._names())


def _world_args(p):
    g = p.add_argument_group("world (sparse coding x = M z + xi)")
    g.add_argument("--d", type=int, default=64, help="dimension (default 64)")
    g.add_argument("--k", type=float, default=3, help="expected non-zeros of z (default 3)")
    g.add_argument("--noise", type=float, default=0.05, help="noise level sigma (default 0.05)")
    g.add_argument("--codes", default="pm1", choices=["pm1", "continuous"])
    g.add_argument("--dictionary", default="identity",
                   choices=["identity", "orthogonal", "hadamard"])
    g.add_argument("--world-seed", type=int, default=0, help="seed of M and w* (default 0)")


_NOTICE_SHOWN = []


# About how many kernels each command compiles on a cold cache (the whole check suite:
# 56 of 62 in the tests' warm-up; one check or one training run: about 10).
_KERNELS_USED = {"train": 10, "attack": 15, "verify": 20, "check": 50, "plot": 50}


def _compiling_notice(args):
    """Say once per process that kernels are about to compile (a cold Numba cache).

    The CLI only: library calls stay silent.  Nothing under ``--quiet``; on stderr.
    """
    if _NOTICE_SHOWN or getattr(args, "quiet", False):
        return
    from theorylab._kernels.cache import cold_cache_notice

    _NOTICE_SHOWN.append(True)
    uses = _KERNELS_USED.get(args.command, None)
    if args.command == "check" and getattr(args, "only", None):
        uses = 15
    jobs = getattr(args, "jobs", 1) if args.command == "check" else 1
    # With --jobs > 1 the checks run in workers that load the serial twins (_runner).
    text = cold_cache_notice(uses, serial=jobs > 1, workers=jobs)
    if text:
        print(f"theorylab: {text}", file=sys.stderr, flush=True)


def _check_output_file(path, option, **kw):
    from theorylab.sweep.cli import check_output_file

    check_output_file(path, option, **kw)


def _dumps(obj):
    from theorylab._json import to_jsonable

    return json.dumps(to_jsonable(obj), indent=1)


# -- train ---------------------------------------------------------------------------------

def _add_train(sub):
    p = sub.add_parser("train", help="train a TwoLayerReLU, clean or adversarially",
                       description="Train the two-layer threshold network on a sparse-coding "
                                   "world. With --init, continue from a saved model (e.g. "
                                   "adversarial training from clean weights). Warns on stderr "
                                   "when the run has not converged (loss plateau, dense ratio "
                                   "and threshold stable over the last fifth of the steps).")
    _world_args(p)
    g = p.add_argument_group("model")
    g.add_argument("--width", type=_POSITIVE_INT, default=None, help="neurons m (default 2d)")
    g.add_argument("--threshold", default="max", choices=["max", "norm", "fixed"])
    g.add_argument("--c0", type=float, default=1.0, help="threshold coefficient at step 0")
    g.add_argument("--c1", type=float, default=0.5, help="threshold coefficient after the ramp")
    g.add_argument("--ramp", type=_POSITIVE_INT, default=None,
                   help="ramp steps, >= 1 (default steps/2)")
    g.add_argument("--init", metavar="MODEL.npz", help="start from a saved model")
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=_POSITIVE_INT, default=1000)
    g.add_argument("--lr", type=_POSITIVE, default=0.5)
    g.add_argument("--batch-size", type=_POSITIVE_INT, default=1024)
    g.add_argument("--adversarial", choices=["fgm", "pgd"], default=None)
    g.add_argument("--norm", type=_norm_type(), default="2",
                   help="threat norm: 2, inf or 1 (default 2)")
    g.add_argument("--eps", type=_RADIUS, default=0.0, help="adversarial radius")
    g.add_argument("--seed", type=int, default=0, help="seed of init, data and attacks")
    g.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--save", metavar="PATH", help="write the trained model (.npz)")
    p.add_argument("--json", action="store_true", help="print the history as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args):
    import numpy as np

    from theorylab.models import TwoLayerReLU, load
    from theorylab.training import ThresholdSchedule, TrainingDiverged, train
    from theorylab.worlds import SparseCoding

    _check_output_file(args.save, "--save")
    world = SparseCoding(args.d, args.k, noise=args.noise, codes=args.codes,
                         dictionary=args.dictionary, seed=args.world_seed)
    _compiling_notice(args)
    if args.init:
        model = load(args.init)
        if not isinstance(model, TwoLayerReLU):
            raise ValueError(f"--init {args.init}: holds a {model.kind}; train continues a "
                             "TwoLayerReLU only")
        if model.d != world.d:
            raise ValueError(f"--init model has d={model.d}, the world has d={world.d}")
        schedule = None
        model.c = args.c1
    else:
        model = TwoLayerReLU.for_world(world, m=args.width, threshold=args.threshold,
                                       c=args.c0, seed=args.seed, dtype=np.dtype(args.dtype))
        ramp = args.ramp if args.ramp is not None else max(1, args.steps // 2)
        schedule = ThresholdSchedule(args.c0, args.c1, ramp)
    try:
        hist = train(model, world, steps=args.steps, lr=args.lr, batch_size=args.batch_size,
                     adversarial=args.adversarial, eps=args.eps, norm=args.norm,
                     schedule=schedule, seed=args.seed, progress=not args.quiet)
    except TrainingDiverged as exc:
        # The message names the step and lr; the model is not saved half-trained.
        unsaved = f"; --save {args.save} not written" if args.save else ""
        raise ValueError(f"training diverged: {exc}; {exc.step} of {args.steps} steps ran"
                         f"{unsaved}") from exc
    model.metadata["world"] = world.spec()
    if args.save:
        model.save(args.save)
    if hist.converged is False:
        # One line on stderr (stdout keeps the result, or the JSON, clean); under --quiet
        # too: it says the numbers describe a transient, not where training goes.
        print(f"theorylab train: warning: training has not converged: "
              f"{hist.convergence['reason']}", file=sys.stderr, flush=True)
    if args.json:
        print(_dumps(hist.to_dict()))
    else:
        f = hist.final
        print(f"steps {f['step']}  loss {f['loss']:.4g}  clean accuracy {f['clean_accuracy']:.4f}"
              f"  dense ratio {f['dense_ratio']:.3f}  dense alignment {f['dense_alignment']:.3f}"
              f"  sign correct {f['sign_correct']:.3f}  coverage {f['coverage']}")
        if args.save:
            print(f"saved {args.save}")
    return 0


# -- attack and verify ---------------------------------------------------------------------

def _world_from_spec(spec, path):
    from theorylab.worlds import RobustNonRobustPatches, SparseCoding

    worlds = {"SparseCoding": SparseCoding, "RobustNonRobustPatches": RobustNonRobustPatches}
    try:
        return worlds[spec.get("kind", "SparseCoding")].from_spec(spec)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: metadata 'world' is not a world spec "
                         f"({type(exc).__name__}: {exc})") from None


def _model_world(args, model, *, need=True):
    """The world of the points: the model file's, unless world flags are given.

    Returns ``(world, known)``; ``known`` is False when neither the file nor the
    flags say which world it is (the default flags' world), and the world is
    None when it is not needed and not known.
    """
    from theorylab.worlds import SparseCoding

    spec = model.metadata.get("world")
    if spec is not None and not isinstance(spec, dict):
        raise ValueError(f"{args.model}: metadata 'world' must be a world spec (a JSON "
                         f"object), got {spec!r}")
    if spec and not args.world_flags_given:
        world, known = _world_from_spec(spec, args.model), True
    elif need or args.world_flags_given:
        world = SparseCoding(args.d, args.k, noise=args.noise, codes=args.codes,
                             dictionary=args.dictionary, seed=args.world_seed)
        known = args.world_flags_given
    else:
        return None, False
    if world.d != model.d:
        raise ValueError(f"model has d={model.d}, the world has d={world.d}")
    return world, known


def _default_grid(p):
    return ([0.05, 0.1, 0.2, 0.4, 0.8] if p == 2.0 else
            [0.005, 0.01, 0.02, 0.04, 0.08, 0.16] if p == float("inf") else
            [0.1, 0.2, 0.4, 0.8, 1.6])


def _add_attack(sub):
    p = sub.add_parser("attack", help="robustness curve of a saved model",
                       description="Attack a saved model on fresh test points of its world "
                                   "(read from the model file, or given by the world flags). "
                                   "With --certify (or --exact) also the certified side of "
                                   "the curve and the points neither broken nor proven "
                                   "robust (theorylab.evaluate.robustness).")
    p.add_argument("model", metavar="MODEL.npz")
    _world_args(p)
    p.add_argument("--norm", type=_norm_type(), default="2",
                   help="threat norm: 2, inf or 1 (default 2)")
    p.add_argument("--eps", type=_RADIUS, nargs="+", default=None,
                   help="radii (default: a grid suited to the norm)")
    p.add_argument("--attack", default="pgd", choices=_AttackNames(),
                   help="a registered attack (theorylab.attacks.names(); default pgd)")
    p.add_argument("--steps", type=_POSITIVE_INT, default=20, help="PGD steps (default 20)")
    p.add_argument("--n", type=_POSITIVE_INT, default=1000, help="test points (default 1000)")
    p.add_argument("--seed", type=int, default=12345, help="seed of the test points")
    p.add_argument("--certify", action="store_true",
                   help="also the certified accuracy and the unresolved points per radius "
                        "(norms 2 and inf)")
    p.add_argument("--exact", action="store_true",
                   help="also solve exactly what stays unresolved, at every radius "
                        "(implies --certify)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_attack)


def _cmd_attack(args):
    from theorylab import attacks
    from theorylab._validation import check_norm
    from theorylab.models import load

    model = load(args.model)
    world, _ = _model_world(args, model)
    p = check_norm(args.norm)
    grid = args.eps or _default_grid(p)
    test = world.sample(args.n, args.seed)
    _compiling_notice(args)
    if args.certify or args.exact:
        return _attack_sandwich(args, model, world, test, grid, p)
    kw = {"steps": args.steps} if args.attack == "pgd" else {}
    curve = attacks.robustness_curve(model, test.X, test.y, grid, p, args.attack, world=world,
                                     **kw)
    if args.json:
        print(_dumps(curve.to_dict()))
    else:
        print(f"{args.attack} ({curve.norm}) on {args.n} points of {world!r}")
        print(f"  eps 0 (clean): {curve.clean_accuracy:.3f}")
        for e, a in zip(curve.eps, curve.accuracy):
            print(f"  eps {e:g}: {a:.3f}")
        print(f"  tau50: {curve.tau50:.4g}")
    return 0


def _attack_sandwich(args, model, world, test, grid, p):
    from theorylab.evaluate import Budget, robustness

    res = robustness(model, test.X, test.y, grid, p, attacks=(args.attack,), certify=True,
                     exact=args.exact, world=world, budget=Budget(pgd_steps=args.steps))
    if args.json:
        print(_dumps({**res.to_dict(), "attack": args.attack,
                      "accuracy": res.attack_accuracy, "tau50": res.tau50_attack}))
        return 0
    print(f"{args.attack} ({res.norm}) on {args.n} points of {world!r}, with the certificate"
          f"{' and exact solves' if args.exact else ''}")
    print(f"  eps 0 (clean): {res.clean_accuracy:.3f}")
    for i, e in enumerate(res.eps):
        print(f"  eps {e:g}: attack {res.attack_accuracy[i]:.3f}  certified "
              f"{res.certified_accuracy[i]:.3f}  exact {_fmt_acc(res.exact_accuracy[i])}  "
              f"unresolved {int(res.unresolved[i])}")
    print(f"  tau50: attack {res.tau50_attack:.4g}, certified {res.tau50_certified:.4g}")
    return 0


def _fmt_acc(a):
    return "-" if math.isnan(a) else f"{a:.3f}"


def _add_verify(sub):
    p = sub.add_parser("verify", help="attacks, certificates and exact answers over a grid",
                       description="The robustness sandwich of a saved model "
                                   "(theorylab.evaluate.robustness): per radius the attack "
                                   "accuracy (no witness found by the attack suite fmn, fgm, "
                                   "pgd, apgd, square, plus dense when the world is known), "
                                   "the certified accuracy (a sound bound), the exact "
                                   "accuracy where nothing is unresolved, the unresolved "
                                   "points and the gradient-masking flags (points only the "
                                   "gradient-free attack broke). Points: --data, or fresh "
                                   "test points of the model's world (as attack).")
    p.add_argument("model", metavar="MODEL.npz")
    _world_args(p)
    p.add_argument("--norm", type=_norm_type(("2", "inf")), default="2",
                   help="threat norm: 2 or inf (default 2)")
    p.add_argument("--eps", type=_RADIUS, nargs="+", required=True,
                   help="radii, strictly increasing")
    p.add_argument("--data", metavar="FILE.npz",
                   help="points to verify: arrays X and y (default: fresh test points)")
    p.add_argument("--n", type=_POSITIVE_INT, default=None,
                   help="points (default 1000 fresh ones; with --data all of them, or the "
                        "first N)")
    p.add_argument("--seed", type=int, default=12345,
                   help="seed of the fresh test points and of the attacks (default 12345)")
    p.add_argument("--exact", action="store_true",
                   help="solve exactly what stays unresolved, at every radius")
    p.add_argument("--attribution", action="store_true",
                   help="run every attack on every standing point (per-attack counts)")
    p.add_argument("--json", action="store_true", help="print Robustness.to_dict() as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_verify)


def _read_points(path, model, n):
    """Arrays X and y of ``path``, validated for ``model`` (the first ``n`` points)."""
    import numpy as np

    from theorylab.models.io import read_npz

    try:
        data = read_npz(path)
    except ValueError as exc:
        raise ValueError(f"--data {exc}") from None
    missing = [k for k in ("X", "y") if k not in data]
    if missing:
        raise ValueError(f"--data {path}: missing entry {missing[0]!r} (the file needs arrays "
                         f"X and y; it has {sorted(data)})")
    X, y = data["X"][:n], data["y"][:n]
    X = model.check_X(X, name=f"--data {path}: entry 'X'")
    if y.dtype.kind not in "fiub":
        raise ValueError(f"--data {path}: entry 'y' must be numeric, got dtype {y.dtype}")
    if not np.isfinite(y).all():
        raise ValueError(f"--data {path}: entry 'y' contains NaN or infinite values")
    return X, model.check_y(y, X.shape[0], name=f"--data {path}: entry 'y'")


def _cmd_verify(args):
    from theorylab.evaluate import robustness
    from theorylab.models import load

    model = load(args.model)
    world, known = _model_world(args, model, need=args.data is None)
    if args.data:
        X, y = _read_points(args.data, model, args.n)
        where = f"of {args.data}"
    else:
        n = 1000 if args.n is None else args.n
        test = world.sample(n, args.seed)
        X, y = test.X, test.y
        where = f"of {world!r}"
    _compiling_notice(args)
    res = robustness(model, X, y, args.eps, args.norm, certify=True, exact=args.exact,
                     world=world if known else None, seed=args.seed,
                     attribution=args.attribution, progress=not args.quiet)
    if args.json:
        print(_dumps(res.to_dict()))
        return 0
    m = res.methods
    exact = (f"exact solves at {', '.join(f'{e:g}' for e in m['exact'])}" if m["exact"]
             else "no exact solves")
    print(f"robustness ({res.norm}) of {model!r} on {X.shape[0]} points {where}")
    print(f"  attacks {', '.join(m['attacks'])}; certificate {'yes' if m['certificate'] else 'no'}"
          f"; {exact}")
    print(f"  clean accuracy {res.clean_accuracy:.3f}")
    print(f"  {'eps':>8}  {'attack':>7}  {'certified':>9}  {'exact':>7}  {'unresolved':>10}  "
          f"{'masking':>7}")
    for i, e in enumerate(res.eps):
        print(f"  {e:>8g}  {res.attack_accuracy[i]:>7.3f}  {res.certified_accuracy[i]:>9.3f}  "
              f"{_fmt_acc(res.exact_accuracy[i]):>7}  {int(res.unresolved[i]):>10d}  "
              f"{int(res.masking[i]):>7d}")
    if args.attribution:
        print("  broken by each attack (points per radius):")
        for name, hits in res.broken_by.items():
            print(f"    {name}: {' '.join(str(int(c)) for c in hits.sum(axis=1))}")
    print(f"  tau50: attack {res.tau50_attack:.4g}, certified {res.tau50_certified:.4g}")
    return 0


# -- check, bench, plot ----------------------------------------------------------------------

def _add_check(sub):
    from proofs_check.__main__ import build_parser as check_parser

    p = sub.add_parser("check", help="run the theorem checks (python -m proofs_check)",
                       description="Run every claim as a check with a verdict; exit 1 on FAIL.")
    check_parser(p)
    p.set_defaults(func=_cmd_check)


def _cmd_check(args):
    from proofs_check import load_all, select
    from proofs_check.__main__ import main as check_main
    from proofs_check.__main__ import scaling_args
    from theorylab.sweep.cli import check_output_dir

    if args.seeds < 1 or args.jobs < 1:
        raise ValueError(f"--seeds and --jobs must be >= 1, got {args.seeds} and {args.jobs}")
    scaling = scaling_args(args)  # a bad scaling option: one line, exit 2, before any work
    if scaling is not None:
        from proofs_check.scaling.__main__ import command

        return command(scaling)
    for spec in args.module:
        if not spec.strip():
            raise ValueError("--module: empty path or module name")
    try:
        load_all(args.module)
    except ValueError as exc:
        raise ValueError(f"--{exc}" if str(exc).startswith("module ") else str(exc)) from exc
    if not args.list:
        _check_output_file(args.report, "--report", make_parents=True)
        _check_output_file(args.json, "--json", make_parents=True)
        _check_output_file(args.timings, "--timings", make_parents=True)
        check_output_dir(args.figures, "--figures")
        if args.only:
            try:
                select(args.only)
            except ValueError as exc:
                raise ValueError(f"{exc}; see theorylab check --list") from exc
        _compiling_notice(args)
    return check_main(args=args)


# theorylab bench --quick: the workloads with size parameters at tiny sizes, one round
# (a smoke run of the harness, not a measurement); the end-to-end wall-time workloads
# (check: the whole `make check`; two_layer: subprocess latency and a 0.5 GB memory run)
# have no small form and are left out.
_QUICK_BENCH = {"cnn": dict(repeats=1),
                "ntk": dict(N=256, d=32, m=64, square=128, rounds=1),
                "sweep": dict(rounds=1, seeds=1, backends=("serial",))}


def _add_bench(sub):
    p = sub.add_parser("bench", help="run the performance harness (python -m benchmarks)",
                       description="Time theorylab's workloads against NumPy, PyTorch CPU (when "
                                   "installed) and this machine's GEMM throughput.")
    from benchmarks.__main__ import build_parser as bench_parser

    bench_parser(p)
    p.add_argument("--quick", action="store_true",
                   help=f"a smoke run: {', '.join(sorted(_QUICK_BENCH))} at tiny sizes, one "
                        "round (the wall-time workloads check and two_layer are left out)")
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args):
    import importlib
    import pkgutil
    import traceback

    import benchmarks
    from benchmarks.__main__ import main as bench_main

    names = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules(benchmarks.__path__)
                   if m.name.startswith("bench_"))
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown:
        raise ValueError(f"unknown benchmarks {unknown}; known: {names}")
    chosen = [n for n in names if not args.only or n in args.only]
    if args.quick:
        left_out = [n for n in chosen if n not in _QUICK_BENCH]
        if args.only and left_out:
            raise ValueError(f"--quick has no small form of {left_out}; quick: "
                             f"{sorted(_QUICK_BENCH)}")
        chosen = [n for n in chosen if n in _QUICK_BENCH]
    json_path = args.json
    _check_output_file(json_path, "--json")
    # The harness (benchmarks.__main__) calls each module's run(): wrapped here to pass the
    # quick sizes and to keep the results, written as JSON through theorylab._json.
    results, originals = {}, {}
    for name in chosen:
        try:
            mod = importlib.import_module(f"benchmarks.bench_{name}")
        except Exception:  # the harness reports it in its table
            results[name] = {"error": traceback.format_exc()}
            continue
        originals[mod] = mod.run
        mod.run = _keeping(mod.run, name, _QUICK_BENCH[name] if args.quick else {}, results)
    args.only, args.json = chosen, None
    try:
        status = bench_main(args=args)
    finally:
        for mod, fn in originals.items():
            mod.run = fn
        args.json = json_path
    if json_path:
        with open(json_path, "w") as fh:
            fh.write(_dumps(results) + "\n")
        print(f"wrote {json_path}")
    return status


def _keeping(run, name, kwargs, results):
    # run(**kwargs), its result (or the traceback of its error) kept in results[name].
    import traceback

    def wrapped():
        try:
            results[name] = run(**kwargs)
        except Exception:
            results[name] = {"error": traceback.format_exc()}
            raise  # to the harness, which reports it and goes on with the others
        return results[name]
    return wrapped


def _add_plot(sub):
    p = sub.add_parser("plot", help="regenerate figures",
                       description="Regenerate a family of figures into a directory "
                                   "(default figures/).")
    plots = p.add_subparsers(dest="plot_command", required=True)
    for name, help_text in (("lower-bounds", "robust accuracy of every family vs the "
                                             "adversarially trained network; tau50 vs d"),
                            ("li-li", "Li & Li feature-learning curves, robustness, "
                                      "threshold scaling (runs the ll quick checks)"),
                            ("images", "first-layer tiles, low-rank curve, D_R / D_NR curves "
                                       "on the shipped digits")):
        q = plots.add_parser(name, help=help_text, description=help_text)
        q.add_argument("outdir", nargs="?", default="figures")
        q.add_argument("--quick", action="store_true",
                       help="small sizes for a smoke run (lower-bounds; the others already "
                            "run the quick regimes)")
        q.set_defaults(func=_cmd_plot)
    from theorylab.sweep.cli import add_plot_parser

    add_plot_parser(plots, phase_only=True)


def _cmd_plot(args):
    from proofs_check.figures import regenerate
    from theorylab.sweep.cli import check_output_dir

    check_output_dir(args.outdir, "OUTDIR")
    _compiling_notice(args)
    for path in regenerate(args.plot_command, args.outdir, quick=args.quick):
        print(path)
    return 0


# -- the parser and the entry point ------------------------------------------------------------

def build_parser():
    """The top-level parser with every subcommand."""
    from theorylab import __version__

    parser = _Parser(prog="theorylab",
                     description="Check the theory of adversarial training by computation.")
    parser.add_argument("--version", action="version", version=f"theorylab {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of its one-line message")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_attack(sub)
    _add_verify(sub)
    _add_check(sub)
    from theorylab.sweep.cli import add_parser as add_sweep

    add_sweep(sub)
    _add_plot(sub)
    _add_bench(sub)
    return parser


_WORLD_FLAGS = {"--d", "--k", "--noise", "--codes", "--dictionary", "--world-seed"}


def main(argv=None):
    """Entry point of the ``theorylab`` console script; returns the exit status."""
    from theorylab.sweep.cli import run_command

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args, extra = build_parser().parse_known_args(argv)
    except _UsageError as exc:
        print(f"{exc.prog}: error: {exc.message} (see {exc.prog} --help)", file=sys.stderr)
        return 2
    name = " ".join(n for n in (args.command, getattr(args, "sweep_command", None),
                                getattr(args, "plot_command", None)) if n)
    if extra:  # named after the subcommand they were given to
        print(f"theorylab {name}: error: unrecognized arguments: {' '.join(extra)} (see "
              f"theorylab {name} --help)", file=sys.stderr)
        return 2
    # World flags given explicitly override the world stored in a model file.
    args.world_flags_given = any(a.split("=")[0] in _WORLD_FLAGS for a in argv)
    return run_command(args.func, args, name, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
