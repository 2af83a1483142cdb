"""Command line interface: ``atomseg <command> ...`` (also ``python -m atomseg``).

Each command is a thin wrapper around one public function; heavy imports happen inside the
command so that ``atomseg --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from atomseg import __version__
from atomseg.models.registry import PADDINGS


def _cmd_simulate(args: argparse.Namespace) -> int:
    from atomseg.sim import load_config, save_sample_grid, write_library

    config = load_config(args.config) if args.config else None
    write_library(
        args.output,
        n=args.n,
        seed=args.seed,
        shape=(args.size, args.size),
        config=config,
        workers=args.workers,
        progress=True,
    )
    if args.figure:
        save_sample_grid(args.output, args.figure)
        print(f"sample grid saved to {args.figure}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from atomseg.train import train

    train(
        args.library,
        args.output,
        n_steps=args.steps,
        batch_size=args.batch_size,
        width=args.width,
        seed=args.seed,
        learning_rate=args.learning_rate,
        resume=not args.no_resume,
        device=args.device,
        init=args.init,
        border_fraction=args.border_fraction,
        padding=args.padding,
        resample=args.resample,
        border_columns=args.border_columns,
        scale_jitter=args.scale_jitter,
    )
    return 0


def _smooth_arg(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        sigma = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'auto' or a sigma in pixels, got {text!r}") from None
    if not sigma >= 0 or sigma == float("inf"):
        raise argparse.ArgumentTypeError(f"the sigma must be finite and >= 0, got {text!r}")
    return sigma


def _cmd_detect(args: argparse.Namespace) -> int:
    from atomseg.infer import detect_files

    detect_files(
        args.inputs,
        output=args.output,
        pixel_size_angstrom=args.pixel_size,
        model=args.model,
        overlay=args.overlay,
        axis=args.axis,
        guess_scale=not args.no_guess_scale,
        atoms=args.atoms,
        invert=args.invert,
        overlay_smooth=args.overlay_smooth,
        resume=args.resume,
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from atomseg.demo import run_demo

    run_demo(args.figure, size=args.size, dose_e_per_A2=args.dose, seed=args.seed,
             structure=args.structure, zone_axis=args.zone_axis, model=args.model)  # fmt: skip
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from atomseg.models import list_models

    for name, info in list_models().items():
        print(f"{name}\t{info}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the ``atomseg`` argument parser.

    Examples
    --------
    >>> from atomseg.cli import build_parser
    >>> build_parser().parse_args(["models"]).command
    'models'
    """
    parser = argparse.ArgumentParser(
        prog="atomseg", description="Find atomic columns in ADF/HAADF-STEM images."
    )
    parser.add_argument("--version", action="version", version=f"atomseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("demo", help="simulate a nanoparticle image, find its columns, score them")
    p.add_argument("--figure", default="atomseg_demo.png", help="PNG of the detections")
    p.add_argument("--size", type=int, default=512, help="image side in pixels (default 512)")
    p.add_argument("--dose", type=float, default=1e4, help="e/Å² (default 1e4)")
    p.add_argument("--seed", type=int, default=0, help="image seed (default 0)")
    p.add_argument("--structure", default="Au", help="crystal (default Au)")
    p.add_argument("--zone-axis", default="110", help="zone axis (default 110)")
    p.add_argument("--model", default="default", help="model name or folder (default: default)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("simulate", help="write a synthetic image library with ground truth (HDF5)")
    p.add_argument("--n", type=int, default=1000, help="number of images (default 1000)")
    p.add_argument("-o", "--output", required=True, help="output HDF5 file; resumed if it exists")
    p.add_argument("--seed", type=int, default=0, help="library seed (default 0)")
    p.add_argument("--size", type=int, default=256, help="image size in pixels (default 256)")
    p.add_argument("--config", help="JSON file overriding the generator's parameter ranges")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: cores)")
    p.add_argument("--figure", help="also save a PNG grid of samples with ground truth overlaid")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("train", help="train the U-net on a simulated library (resumable)")
    p.add_argument("library", help="HDF5 library written by 'atomseg simulate'")
    p.add_argument("-o", "--output", required=True, help="model folder (model.json + weights.pt)")
    p.add_argument("--steps", type=int, default=20000, help="optimiser steps (default 20000)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--width", type=int, default=16, help="channels of the first U-net level")
    p.add_argument("--learning-rate", type=float, default=2e-3, help="peak (default 2e-3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
    p.add_argument("--no-resume", action="store_true", help="start afresh, ignore checkpoints")
    p.add_argument(
        "--init",
        metavar="MODEL",
        help="fine-tune: start from this model's weights (name or folder)",
    )
    p.add_argument(
        "--border-fraction",
        type=float,
        default=0.0,
        help="share of patches reaching across the image border, padded as at inference "
        "(default 0; columns-v4: 0.3)",
    )
    p.add_argument(
        "--padding",
        default="reflect",
        choices=PADDINGS,
        help="how images are padded beyond their border, in training and at inference "
        "(default reflect; columns-v4: edge)",
    )
    p.add_argument(
        "--resample",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of patches resampled to the model's pixel size, as inference resamples "
        "calibrated images; the others at the library images' own pixel sizes (default 0)",
    )
    p.add_argument(
        "--border-columns",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of the resampled border patches whose border runs through a column "
        "centre (half columns on edges, quarter columns in corners; default 0)",
    )
    p.add_argument(
        "--scale-jitter",
        type=float,
        default=0.0,
        metavar="S",
        help="resampled patches at a pixel size off the model's by a factor drawn "
        "log-uniformly in [1/(1+S), 1+S], labels following (default 0: exactly the model's)",
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("detect", help="find atomic columns in images (CSV + optional overlay PNG)")
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help=".npy, .tif/.tiff, .png, file.h5:/dataset, .dm3/.dm4/.emd/.ser, .mrc/.rec",
    )
    p.add_argument("--pixel-size", type=float, help="pixel size in Å (overrides the file's)")
    p.add_argument("-o", "--output", help="CSV file, or a folder for one CSV per input")
    p.add_argument("--overlay", help="PNG file (or folder) with detections drawn on the image")
    p.add_argument(
        "--overlay-smooth",
        type=_smooth_arg,
        default="auto",
        metavar="SIGMA",
        help="Gaussian sigma (px) the overlay shows the image smoothed by, 0 for its raw pixels "
        "(default auto: noisy low-dose images by half a column radius, clean ones not at all)",
    )
    p.add_argument("--model", default="default", help="model name or folder (default: default)")
    p.add_argument("--axis", type=int, default=0, help="frame axis of a stack (default 0)")
    p.add_argument(
        "--atoms",
        action="store_true",
        help="a 3-D input is a tomogram: link its slices into one row per atom "
        "(plane, row, col; atomseg.locate_atoms); the overlay is its maximum projection",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="an interrupted batch: skip the inputs whose CSV is in the output already",
    )
    p.add_argument(
        "--invert",
        action="store_true",
        help="columns dark (a BF/ABF image): detect on the image's negative (its maximum minus "
        "it); the CSV's intensity is of the negative, the overlay shows the image as it is",
    )
    p.add_argument(
        "--no-guess-scale",
        action="store_true",
        help="uncalibrated images: run them as they are, without searching for the pixel size "
        "to resample them by (atomseg.infer.search_pixel_size)",
    )
    p.set_defaults(func=_cmd_detect)

    p = sub.add_parser("models", help="list the shipped models")
    p.set_defaults(func=_cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``atomseg`` command line; return the exit status.

    Examples
    --------
    >>> from atomseg.cli import main
    >>> main(["models"]) == 0  # doctest: +SKIP
    True
    """
    args = build_parser().parse_args(argv)

    said = set()

    def say(message, category, filename, lineno, file=None, line=None):
        if str(message) not in said:  # each warning once, as the command's own line
            said.add(str(message))
            print(f"atomseg {args.command}: warning: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", UserWarning)
            warnings.showwarning = say
            return args.func(args)
    except (ValueError, KeyError, FileNotFoundError, OSError, TypeError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"atomseg {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"atomseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
