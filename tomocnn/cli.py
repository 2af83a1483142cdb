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
        tilt_range_deg=_range(args),
        tilt_step_deg=args.tilt_step,
    )
    return 0


def _cmd_align(args: argparse.Namespace) -> int:
    from tomocnn.prep import align_file

    report = align_file(
        args.input,
        args.output,
        tilt_range_deg=_range(args),
        tilt_step_deg=args.tilt_step,
        axis_angle_deg=args.axis_angle,
        search_axis=not args.no_axis_search,
        progress=True,
    )
    print(
        f"tilt axis at {report['axis_angle_deg']:.2f}° from the image rows; axis "
        f"{report['center_offset_px']:+.2f} px from the middle, now centred (TomoPy center "
        f"{report['center']:g}); shifts up to {abs(report['shifts']).max():.1f} px; "
        f"reprojection residual {100 * report['residual_before']:.1f} % -> "
        f"{100 * report['residual_after']:.1f} %"
    )
    return 0


def _cmd_adapt(args: argparse.Namespace) -> int:
    from tomocnn.io import read_tilt_series
    from tomocnn.train import adapt

    proj, theta = read_tilt_series(
        args.input, tilt_range_deg=_range(args), tilt_step_deg=args.tilt_step
    )
    if args.align:
        from tomocnn.prep import align

        proj, theta, _ = align(proj, theta, axis_angle_deg=args.axis_angle, progress=True)
    adapt(
        proj,
        theta,
        model=args.model,
        minutes=args.minutes,
        steps=args.steps,
        rng=args.seed,
        output=args.output,
        progress=True,
    )
    print(f"model folder: {args.output} (use it with --model {args.output})")
    return 0


def _range(args: argparse.Namespace):
    return tuple(args.tilt_range) if args.tilt_range else None


def _print_faithfulness(path) -> None:
    import h5py

    from tomocnn.infer import faithfulness

    with h5py.File(path, "r") as f:
        attrs = dict(f["/exchange/data"].attrs)
    if "output_residual" in attrs:
        print(faithfulness(attrs))


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

    out = denoise_file(
        args.input,
        args.output,
        theta_file=args.theta,
        tilt_range_deg=_range(args),
        projections=args.projections,
        model=args.model,
        progress=True,
        nonnegative=False if args.signed else None,
        consistency_iters=args.consistency_iters,
        consistency_algorithm=args.consistency_algorithm,
        fov=None if args.fov == "none" else "auto",
    )
    _print_faithfulness(out)
    return 0


def _cmd_pipeline(args: argparse.Namespace) -> int:
    from tomocnn.infer import pipeline_file

    out = pipeline_file(
        args.input,
        args.output,
        algorithm=args.algorithm,
        n_iter=args.n_iter,
        center=args.center,
        model=args.model,
        progress=True,
        nonnegative=False if args.signed else None,
        align=args.align,
        axis_angle_deg=args.axis_angle,
        tilt_range_deg=_range(args),
        tilt_step_deg=args.tilt_step,
        consistency_iters=args.consistency_iters,
        consistency_algorithm=args.consistency_algorithm,
        fov=None if args.fov == "none" else "auto",
        adapt_minutes=args.adapt,
    )
    _print_faithfulness(out)
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
    p.add_argument(
        "--center",
        type=float,
        default=None,
        help="rotation centre, TomoPy's convention: pixels from the outer edge of the first "
        "column (default n_cols / 2, the middle for odd and even widths)",
    )


def _add_tilt_options(p: argparse.ArgumentParser, *, required_note: str = "") -> None:
    p.add_argument(
        "--tilt-range",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        help="tilt angles, degrees, when the file has none" + required_note,
    )
    p.add_argument("--tilt-step", type=float, metavar="DEG", help="tilt step, degrees")


def _add_model_options(p: argparse.ArgumentParser, *, consistency_default: int) -> None:
    p.add_argument("--model", default="default")
    p.add_argument(
        "--signed", action="store_true", help="values may be negative: do not clip at zero"
    )
    p.add_argument(
        "--fov",
        choices=["auto", "none"],
        default="auto",
        help="auto: voxels outside the circle of each slice pass through unchanged (default); "
        "none: process every voxel",
    )
    p.add_argument(
        "--consistency-iters",
        type=int,
        default=consistency_default,
        metavar="N",
        help="iterations on the measured angles after the CNN, started from its output "
        f"(default {consistency_default}; 0: off)",
    )
    p.add_argument(
        "--consistency-algorithm",
        choices=["mlem", "sirt"],
        default=None,
        help="(default mlem; sirt with --signed)",
    )


def _add_align_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--axis-angle",
        type=float,
        metavar="DEG",
        help="tilt axis angle, degrees from the image rows towards the columns (90: horizontal); "
        "a first guess searched around, or the value itself with --no-axis-search",
    )
    p.add_argument(
        "--no-axis-search", action="store_true", help="keep --axis-angle (default 0) as it is"
    )


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

    series = (
        "tilt series: Data Exchange HDF5, MRC/IMOD (.mrc .st .ali with .rawtlt/.tlt), .dm3/.dm4, "
        ".hspy, TIFF stack"
    )
    p = sub.add_parser("align", help="align a real tilt series (axis angle, shifts, centre)")
    p.add_argument("input", help=series)
    p.add_argument("-o", "--output", required=True, help="output Data Exchange HDF5 file")
    _add_tilt_options(p)
    _add_align_options(p)
    p.set_defaults(func=_cmd_align)

    p = sub.add_parser("recon", help="reconstruct an aligned tilt series")
    p.add_argument("input", help=series)
    p.add_argument("-o", "--output", required=True, help="output HDF5 volume")
    _add_tilt_options(p)
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
    g.add_argument(
        "--projections",
        metavar="TILTS",
        help="the aligned tilt series behind the volume (angles from it): prints and stores the "
        "reprojection residual, allows --consistency-iters",
    )
    _add_model_options(p, consistency_default=0)
    p.set_defaults(func=_cmd_denoise, tilt_step=None)

    p = sub.add_parser("pipeline", help="(align,) reconstruct a tilt series, remove the wedge")
    p.add_argument("input", help=series)
    p.add_argument("-o", "--output", required=True, help="output HDF5 volume")
    p.add_argument(
        "--align",
        action="store_true",
        help="subtract the vacuum level and align the series first (a series off the microscope)",
    )
    _add_tilt_options(p)
    _add_recon_options(p, default=None)
    p.add_argument("--axis-angle", type=float, metavar="DEG", help="first guess for --align")
    p.add_argument(
        "--adapt",
        type=float,
        default=None,
        metavar="MINUTES",
        help="adapt the model to this series first, self-supervised, for MINUTES of training "
        "(10 is a good start)",
    )
    _add_model_options(p, consistency_default=20)
    p.set_defaults(func=_cmd_pipeline)

    p = sub.add_parser(
        "adapt", help="fit a copy of the model to one tilt series (self-supervised, resumable)"
    )
    p.add_argument("input", help=series)
    p.add_argument("-o", "--output", required=True, help="new model folder")
    p.add_argument("--model", default="default", help="model to start from")
    p.add_argument("--minutes", type=float, default=None, help="training time (default 10)")
    p.add_argument("--steps", type=int, default=None, help="training steps instead")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--align", action="store_true", help="align the series first")
    p.add_argument("--axis-angle", type=float, metavar="DEG", help="first guess for --align")
    _add_tilt_options(p)
    p.set_defaults(func=_cmd_adapt)

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
