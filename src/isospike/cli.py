"""The ``isospike`` command line."""

from __future__ import annotations

import argparse
import sys

from isospike import __version__
from isospike.errors import IsospikeError


def _positive_ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isospike",
        description="Convert neural networks to spiking networks, verify them and estimate their cost.",
    )
    parser.add_argument("--version", action="version", version=f"isospike {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="train a small CNN on the embedded digits data, convert it to a rate-coded SNN, report",
        description="Train a small CNN on scikit-learn's digits (shipped with the package), convert it "
        "to a rate-coded SNN, measure accuracy and spikes for several numbers of time steps, and "
        "write a Markdown report with a plot.",
    )
    demo.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    demo.add_argument("--timesteps", type=_positive_ints, default=[1, 2, 4, 8, 16, 32],
                      help="comma-separated numbers of time steps (default: 1,2,4,8,16,32)")
    demo.add_argument("--epochs", type=int, default=30, help="ANN training epochs (default: 30)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")

    train = sub.add_parser(
        "train",
        help="train a network for low-latency rate conversion (noise-aware QCFS, seed 001)",
        description="Train a ReLU ANN (or load one), fine-tune it with noise-aware quantized activations "
        "(lambda * clip(floor(z L / lambda + 1/2) / L, 0, 1) + residual noise), and report the converted "
        "rate SNN's accuracy. Checkpoints are written after every epoch; rerunning the same command "
        "resumes an interrupted run.",
    )
    train.add_argument("--dataset", default="digits", help="digits (default), fashion-mnist, cifar10, cifar100")
    train.add_argument("--model", default="small-cnn", help="small-cnn (default), vgg-small, vgg11, vgg16, resnet20")
    train.add_argument("--out", default=None, help="output folder (default: runs/train-<dataset>-<model>)")
    train.add_argument("--ann-epochs", type=int, default=10, help="epochs of plain ReLU training first (0: start from --init or random)")
    train.add_argument("--init", default=None, help="safetensors state dict of a trained ReLU model to fine-tune")
    train.add_argument("--epochs", type=int, default=4, help="noise-aware epochs (default: 4)")
    train.add_argument("--levels", type=int, default=4, help="quantization levels L (default: 4)")
    train.add_argument("--noise", default="gaussian", choices=["gaussian", "uniform", "none"],
                       help="residual-noise model (none: plain QCFS)")
    train.add_argument("--timesteps", type=_positive_ints, default=[1, 2, 4, 8, 16, 32],
                       help="time steps to evaluate the converted SNN at (default: 1,2,4,8,16,32)")
    train.add_argument("--train-samples", type=int, default=None, help="use a random subset of the training split")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint in --out")
    train.add_argument("--no-progress", action="store_true", help="hide progress bars")

    energy = sub.add_parser(
        "energy",
        help="estimate the energy per inference of a converted network on hardware models",
        description="Convert a network (a folder written by `isospike train`, or the demo CNN trained on the spot) "
        "with the chosen coding, run it on test images, and estimate its energy per inference -- compute, data "
        "movement and communication -- on one or more hardware presets, next to the short E_MAC*MACs + E_AC*ACs "
        "formula and the ANN on the same hardware. Writes energy.json and one stacked-bar PNG per preset.",
    )
    energy.add_argument("--model", default=None, help="output folder of `isospike train` (default: train the demo CNN)")
    energy.add_argument("--dataset", default=None, help="dataset for inputs and calibration (default: the model's, else digits)")
    energy.add_argument("--coding", default="rate", help="coding to convert with (default: rate; `exact` for gate circuits)")
    energy.add_argument("--timesteps", type=int, default=8, help="time steps T (default: 8)")
    energy.add_argument("--hardware", default="horowitz45,loihi,truenorth,cim-memristor",
                        help="comma-separated presets (default: horowitz45,loihi,truenorth,cim-memristor)")
    energy.add_argument("--samples", type=int, default=256, help="test images to run (default: 256)")
    energy.add_argument("--out", default="runs/energy", help="output folder (default: runs/energy)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "demo":
            if args.epochs < 1:
                parser.error("--epochs must be >= 1")
            from isospike.report.demo import run_demo

            run_demo(args.out, timesteps=args.timesteps, epochs=args.epochs, seed=args.seed,
                     progress=not args.no_progress)
        elif args.command == "train":
            if args.epochs < 1 or args.ann_epochs < 0 or args.levels < 1:
                parser.error("--epochs and --levels must be >= 1, --ann-epochs >= 0")
            from isospike.report.train_job import run_train

            run_train(args)
        elif args.command == "energy":
            if args.timesteps < 1 or args.samples < 1:
                parser.error("--timesteps and --samples must be >= 1")
            from isospike.report.energy_job import run_energy

            run_energy(args)
        return 0
    except KeyboardInterrupt:
        print("isospike: interrupted; files already written are complete (rerun the same command to resume"
              " training from the last completed epoch)", file=sys.stderr)
        return 130
    except (IsospikeError, ValueError, TypeError, FileNotFoundError) as exc:
        print(f"isospike: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
