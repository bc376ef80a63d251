"""The ``theorylab`` command line: thin argparse front-end over the library.

Heavy imports happen inside subcommands so ``theorylab --help`` is instant.
Subcommands: train, attack, check, sweep, plot, bench.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main", "build_parser"]


def _world_args(p):
    g = p.add_argument_group("world (sparse coding x = M z + xi)")
    g.add_argument("--d", type=int, default=64, help="dimension (default 64)")
    g.add_argument("--k", type=float, default=3, help="expected non-zeros of z (default 3)")
    g.add_argument("--noise", type=float, default=0.05, help="noise level sigma (default 0.05)")
    g.add_argument("--codes", default="pm1", choices=["pm1", "continuous"])
    g.add_argument("--dictionary", default="identity",
                   choices=["identity", "orthogonal", "hadamard"])
    g.add_argument("--world-seed", type=int, default=0, help="seed of M and w* (default 0)")


def _add_train(sub):
    p = sub.add_parser("train", help="train a TwoLayerReLU, clean or adversarially",
                       description="Train the two-layer threshold network on a sparse-coding "
                                   "world. With --init, continue from a saved model (e.g. "
                                   "adversarial training from clean weights).")
    _world_args(p)
    g = p.add_argument_group("model")
    g.add_argument("--width", type=int, default=None, help="neurons m (default 2d)")
    g.add_argument("--threshold", default="max", choices=["max", "norm", "fixed"])
    g.add_argument("--c0", type=float, default=1.0, help="threshold coefficient at step 0")
    g.add_argument("--c1", type=float, default=0.5, help="threshold coefficient after the ramp")
    g.add_argument("--ramp", type=int, default=None, help="ramp steps (default steps/2)")
    g.add_argument("--init", metavar="MODEL.npz", help="start from a saved model")
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int, default=1000)
    g.add_argument("--lr", type=float, default=0.5)
    g.add_argument("--batch-size", type=int, default=1024)
    g.add_argument("--adversarial", choices=["fgm", "pgd"], default=None)
    g.add_argument("--norm", default="2", help="threat norm: 2, inf or 1 (default 2)")
    g.add_argument("--eps", type=float, default=0.0, help="adversarial radius")
    g.add_argument("--seed", type=int, default=0, help="seed of init, data and attacks")
    g.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--save", metavar="PATH", help="write the trained model (.npz)")
    p.add_argument("--json", action="store_true", help="print the history as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args):
    import numpy as np

    from theorylab.models import TwoLayerReLU, load
    from theorylab.training import ThresholdSchedule, train
    from theorylab.worlds import SparseCoding

    world = SparseCoding(args.d, args.k, noise=args.noise, codes=args.codes,
                         dictionary=args.dictionary, seed=args.world_seed)
    if args.init:
        model = load(args.init)
        if model.d != world.d:
            raise ValueError(f"--init model has d={model.d}, the world has d={world.d}")
        schedule = None
        model.c = args.c1
    else:
        model = TwoLayerReLU.for_world(world, m=args.width, threshold=args.threshold,
                                       c=args.c0, seed=args.seed, dtype=np.dtype(args.dtype))
        ramp = args.ramp or max(1, args.steps // 2)
        schedule = ThresholdSchedule(args.c0, args.c1, ramp)
    hist = train(model, world, steps=args.steps, lr=args.lr, batch_size=args.batch_size,
                 adversarial=args.adversarial, eps=args.eps, norm=args.norm,
                 schedule=schedule, seed=args.seed, progress=not args.quiet)
    model.metadata["world"] = world.spec()
    if args.save:
        model.save(args.save)
    if args.json:
        print(json.dumps(hist.to_dict(), indent=1))
    else:
        f = hist.final
        print(f"steps {f['step']}  loss {f['loss']:.4g}  clean accuracy {f['clean_accuracy']:.4f}"
              f"  dense ratio {f['dense_ratio']:.3f}  dense alignment {f['dense_alignment']:.3f}"
              f"  sign correct {f['sign_correct']:.3f}  coverage {f['coverage']}")
        if args.save:
            print(f"saved {args.save}")
    return 0


def _add_attack(sub):
    p = sub.add_parser("attack", help="robustness curve of a saved model",
                       description="Attack a saved model on fresh test points of its world "
                                   "(read from the model file, or given by the world flags).")
    p.add_argument("model", metavar="MODEL.npz")
    _world_args(p)
    p.add_argument("--norm", default="2", help="threat norm: 2, inf or 1 (default 2)")
    p.add_argument("--eps", type=float, nargs="+", default=None,
                   help="radii (default: a grid suited to the norm)")
    p.add_argument("--attack", default="pgd", choices=["pgd", "fgm", "dense"])
    p.add_argument("--steps", type=int, default=20, help="PGD steps (default 20)")
    p.add_argument("--n", type=int, default=1000, help="test points (default 1000)")
    p.add_argument("--seed", type=int, default=12345, help="seed of the test points")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_attack)


def _cmd_attack(args):
    from theorylab import attacks
    from theorylab._validation import check_norm
    from theorylab.models import load
    from theorylab.worlds import SparseCoding

    model = load(args.model)
    spec = model.metadata.get("world")
    world = (SparseCoding.from_spec(spec) if spec and not args.world_flags_given else
             SparseCoding(args.d, args.k, noise=args.noise, codes=args.codes,
                          dictionary=args.dictionary, seed=args.world_seed))
    if world.d != model.d:
        raise ValueError(f"model has d={model.d}, the world has d={world.d}")
    p = check_norm(args.norm)
    grid = args.eps or ([0.05, 0.1, 0.2, 0.4, 0.8] if p == 2.0 else
                        [0.005, 0.01, 0.02, 0.04, 0.08, 0.16] if p == float("inf") else
                        [0.1, 0.2, 0.4, 0.8, 1.6])
    test = world.sample(args.n, args.seed)
    kw = {"steps": args.steps} if args.attack == "pgd" else {}
    curve = attacks.robustness_curve(model, test.X, test.y, grid, p, args.attack, world=world,
                                     **kw)
    if args.json:
        print(json.dumps(curve.to_dict(), indent=1))
    else:
        print(f"{args.attack} ({curve.norm}) on {args.n} points of {world!r}")
        print(f"  eps 0 (clean): {curve.clean_accuracy:.3f}")
        for e, a in zip(curve.eps, curve.accuracy):
            print(f"  eps {e:g}: {a:.3f}")
        print(f"  tau50: {curve.tau50:.4g}")
    return 0


def _add_check(sub):
    from proofs_check.__main__ import build_parser as check_parser

    p = sub.add_parser("check", help="run the theorem checks (python -m proofs_check)",
                       description="Run every claim as a check with a verdict; exit 1 on FAIL.")
    check_parser(p)
    p.set_defaults(func=lambda a: __import__("proofs_check.__main__",
                                             fromlist=["main"]).main(args=a))


def _add_bench(sub):
    p = sub.add_parser("bench", help="run the performance harness (python -m benchmarks)",
                       description="Time theorylab's workloads against NumPy, PyTorch CPU (when "
                                   "installed) and this machine's GEMM throughput.")
    from benchmarks.__main__ import build_parser as bench_parser

    bench_parser(p)
    p.set_defaults(func=lambda a: __import__("benchmarks.__main__",
                                             fromlist=["main"]).main(args=a))


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

    for path in regenerate(args.plot_command, args.outdir, quick=args.quick):
        print(path)
    return 0


def build_parser():
    """The top-level parser with every subcommand."""
    from theorylab import __version__

    parser = argparse.ArgumentParser(prog="theorylab",
                                     description="Check the theory of adversarial training "
                                                 "by computation.")
    parser.add_argument("--version", action="version", version=f"theorylab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_attack(sub)
    _add_check(sub)
    from theorylab.sweep.cli import add_parser as add_sweep

    add_sweep(sub)
    _add_plot(sub)
    _add_bench(sub)
    return parser


def main(argv=None):
    """Entry point of the ``theorylab`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    # World flags given explicitly override the world stored in a model file.
    args.world_flags_given = any(a.split("=")[0] in {"--d", "--k", "--noise", "--codes",
                                                     "--dictionary", "--world-seed"}
                                 for a in argv)
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"theorylab {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
