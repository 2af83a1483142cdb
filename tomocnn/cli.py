"""Command line interface: ``tomocnn <command> ...`` (also ``python -m tomocnn``).

Angles on the command line are in degrees (as in Data Exchange files); the Python API takes
radians. Each command is a thin wrapper around one public function; heavy imports happen
inside the command so that ``tomocnn --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys

from tomocnn import __version__


def _cmd_simulate(args: argparse.Namespace) -> int:
    from tomocnn.sim import write_pairs

    write_pairs(
        args.output,
        n=args.n,
        size=args.size,
        seed=args.seed,
        tilt_ranges_deg=args.tilt_range,
        algorithms=args.algorithm,
        progress=True,
    )
    return 0


def _cmd_recon(args: argparse.Namespace) -> int:
    from tomocnn.recon import reconstruct_file

    reconstruct_file(
        args.input,
        args.output,
        algorithm=args.algorithm,
        n_iter=args.n_iter,
        center=args.center,
        backend=args.backend,
        progress=True,
    )
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from tomocnn.train import train

    train(
        args.pairs,
        args.output,
        n_steps=args.steps,
        batch_size=args.batch_size,
        width=args.width,
        seed=args.seed,
        resume=not args.no_resume,
        device=args.device,
        nonnegative=not args.signed,
    )
    return 0


def _cmd_denoise(args: argparse.Namespace) -> int:
    from tomocnn.infer import denoise_file

    denoise_file(
        args.input,
        args.output,
        theta_file=args.theta,
        tilt_range_deg=tuple(args.tilt_range) if args.tilt_range else None,
        model=args.model,
        progress=True,
        nonnegative=False if args.signed else None,
    )
    return 0


def _cmd_pipeline(args: argparse.Namespace) -> int:
    from tomocnn.infer import pipeline_file

    pipeline_file(
        args.input,
        args.output,
        algorithm=args.algorithm,
        n_iter=args.n_iter,
        center=args.center,
        model=args.model,
        progress=True,
        nonnegative=False if args.signed else None,
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from tomocnn.demo import run_demo

    run_demo(figure=args.figure, size=args.size, seed=args.seed, model=args.model)
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from tomocnn.models import list_models

    for name, info in list_models().items():
        print(f"{name}\t{info}")
    return 0


def _add_recon_options(p: argparse.ArgumentParser, default="sirt") -> None:
    p.add_argument(
        "--algorithm",
        default=default,
        choices=["sirt", "fbp", "sart", "cgls", "mlem"],
        help="reconstruction algorithm (default "
        + (default or "the model's recommended input, e.g. mlem for wedge-v3")
        + ")",
    )
    p.add_argument("--n-iter", type=int, default=None, help="iterations (default per algorithm)")
    p.add_argument("--center", type=float, default=None, help="rotation centre in pixels")


def build_parser() -> argparse.ArgumentParser:
    """Return the ``tomocnn`` argument parser.

    Examples
    --------
    >>> from tomocnn.cli import build_parser
    >>> argv = ["denoise", "r.h5", "--tilt-range", "-60", "60", "-o", "o.h5"]
    >>> args = build_parser().parse_args(argv)
    >>> args.tilt_range
    [-60.0, 60.0]
    """
    parser = argparse.ArgumentParser(
        prog="tomocnn",
        description="Remove noise and missing-wedge artefacts from limited-angle tomography.",
    )
    parser.add_argument("--version", action="version", version=f"tomocnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("demo", help="simulate, reconstruct and clean a nanoparticle (±60°)")
    p.add_argument("--figure", default="tomocnn_demo.png", help="before/after orthoslice PNG")
    p.add_argument("--size", type=int, default=64, help="volume edge in voxels (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="default")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("simulate", help="write (limited-angle reconstruction, truth) pairs")
    p.add_argument("--n", type=int, default=100, help="number of pairs (default 100)")
    p.add_argument("-o", "--output", required=True, help="output HDF5 file; resumed if it exists")
    p.add_argument("--size", type=int, default=64, help="volume edge in voxels (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--tilt-range",
        type=float,
        nargs="+",
        default=None,
        metavar="DEG",
        help="maximum tilt angles to draw from, degrees (default: 45 to 75)",
    )
    p.add_argument(
        "--algorithm", nargs="+", default=None, help="reconstruction algorithms to draw from"
    )
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("recon", help="reconstruct a Data Exchange tilt series")
    p.add_argument("input", help="tilt series: Data Exchange HDF5, or file.h5:/dataset")
    p.add_argument("-o", "--output", required=True, help="output HDF5 volume")
    _add_recon_options(p)
    p.add_argument("--backend", default="auto", help="auto, astra, tomopy or torch")
    p.set_defaults(func=_cmd_recon)

    p = sub.add_parser("train", help="train the wedge-removal CNN on simulated pairs (resumable)")
    p.add_argument("pairs", help="HDF5 file written by 'tomocnn simulate'")
    p.add_argument("-o", "--output", required=True, help="model folder (model.json + weights.pt)")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--width", type=int, default=8, help="channels of the first level")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
    p.add_argument("--no-resume", action="store_true", help="start afresh, ignore checkpoints")
    p.add_argument(
        "--signed",
        action="store_true",
        help="volumes may be negative: no non-negativity in the loss or at inference",
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("denoise", help="remove the missing wedge from a reconstruction")
    p.add_argument("input", help="volume: HDF5 (file.h5 or file.h5:/dataset), .tif, .mrc, .npy")
    p.add_argument("-o", "--output", required=True, help="output HDF5 volume")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--theta", help="Data Exchange file whose /exchange/theta gives the angles")
    g.add_argument(
        "--tilt-range", type=float, nargs=2, metavar=("MIN", "MAX"), help="tilt range, degrees"
    )
    p.add_argument("--model", default="default")
    p.add_argument(
        "--signed", action="store_true", help="values may be negative: do not clip at zero"
    )
    p.set_defaults(func=_cmd_denoise)

    p = sub.add_parser("pipeline", help="reconstruct a tilt series, then remove the wedge")
    p.add_argument("input", help="tilt series: Data Exchange HDF5")
    p.add_argument("-o", "--output", required=True, help="output HDF5 volume")
    _add_recon_options(p, default=None)
    p.add_argument("--model", default="default")
    p.add_argument(
        "--signed", action="store_true", help="values may be negative: do not clip at zero"
    )
    p.set_defaults(func=_cmd_pipeline)

    p = sub.add_parser("models", help="list the shipped models")
    p.set_defaults(func=_cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``tomocnn`` command line; return the exit status.

    Examples
    --------
    >>> from tomocnn.cli import main
    >>> main(["models"]) == 0  # doctest: +SKIP
    True
    """
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, FileNotFoundError, OSError, TypeError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"tomocnn {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tomocnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
