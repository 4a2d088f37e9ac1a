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
        help="train for low-latency rate conversion (noise-aware QCFS) or a SpikingGamma network",
        description="--method nq (default): train a ReLU ANN (or load one), fine-tune it with noise-aware quantized "
        "activations (lambda * clip(floor(z L / lambda + 1/2) / L, 0, 1) + residual noise), and report the converted "
        "rate SNN's accuracy. Checkpoints are written after every epoch; rerunning the same command resumes an "
        "interrupted run. --method spiking-gamma: train sigma-delta neurons with gamma memory on images read row by "
        "row (no surrogate gradient), offline (BPTT) or online, and evaluate at several time steps.",
    )
    train.add_argument("--method", default="nq", choices=["nq", "spiking-gamma"],
                       help="nq: noise-aware rate conversion (default); spiking-gamma: SpikingGamma on row sequences")
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
    gamma = train.add_argument_group("spiking-gamma options")
    gamma.add_argument("--mode", default="offline", choices=["offline", "online"], help="BPTT or online (per-step) gradients")
    gamma.add_argument("--hidden", type=_positive_ints, default=[64, 64], help="hidden layer sizes (default: 64,64)")
    gamma.add_argument("--buckets", type=int, default=4, help="gamma buckets K per synapse (default: 4)")
    gamma.add_argument("--theta", type=float, default=0.2, help="sigma-delta spike size (default: 0.2)")
    gamma.add_argument("--frame-ms", type=float, default=4.0, help="how long each image row is held, ms (default: 4)")
    gamma.add_argument("--dt", type=float, default=1.0, help="training time step, ms (default: 1)")

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

    model_help = ("the network: a folder written by `isospike train`, or a .safetensors/.pt state dict with --arch "
                  "(default: train the demo CNN on --dataset now)")
    conv = sub.add_parser(
        "convert",
        help="convert a network with any coding, certify it, estimate its energy and save it",
        description="Convert a trained network with a coding (rate, ttfs, mttfs, sigma_delta, or exact gate circuits), "
        "measure its accuracy and spikes on the test split, certify each layer with isospike.verify, estimate its "
        "energy on two hardware presets, save the SNN (snn.safetensors, reload with isospike.load) and write "
        "report.html + report.md.",
    )
    conv.add_argument("--model", default=None, help=model_help + "; or a Hugging Face BERT-style folder (--coding exact)")
    conv.add_argument("--arch", default=None, help="architecture of a state-dict --model: small-cnn, vgg-small, vgg11, vgg16, resnet20")
    conv.add_argument("--dataset", default=None, help="digits (default), fashion-mnist, cifar10, cifar100")
    conv.add_argument("--coding", default="rate", help="rate (default), ttfs, mttfs, sigma_delta, exact")
    conv.add_argument("--timesteps", type=int, default=None, help="time steps T (default: rate 8, ttfs/mttfs 15, sigma_delta 1)")
    conv.add_argument("--dead-zone", type=int, default=0, help="mttfs: levels around the silent one sent as silence (default: 0)")
    conv.add_argument("--levels", type=int, default=16, help="sigma_delta: spike size = percentile / levels (default: 16)")
    conv.add_argument("--device", default="ideal", choices=["ideal", "in2o3"], help="ttfs: synapse read device (default: ideal)")
    conv.add_argument("--samples", type=int, default=500, help="test samples to evaluate (default: 500; sentences for BERT)")
    conv.add_argument("--text", action="append", default=None,
                      help="a sentence for a BERT-style --model (repeatable; default: two built-in sentences)")
    conv.add_argument("--out", default=None, help="output folder (default: runs/convert-<dataset>-<coding>)")

    ver = sub.add_parser(
        "verify",
        help="certify a saved SNN layer by layer against the network it provably equals",
        description="Load a network saved by `isospike convert` (or isospike.save) and check, on test data, each layer's "
        "guarantee: bit-exact, QNN-equivalent or bounded error. Exit status 0 when every guarantee holds, 3 when some "
        "fail, 1 on bad input.",
    )
    ver.add_argument("snn", help="a .safetensors file written by isospike.save / `isospike convert`")
    ver.add_argument("--dataset", default="digits", help="test data to verify on (default: digits)")
    ver.add_argument("--samples", type=int, default=256, help="test samples (default: 256)")
    ver.add_argument("--out", default=None, help="output folder (default: next to the file, <name>-verify)")

    sw = sub.add_parser(
        "sweep",
        help="sweep time steps, the M-TTFS dead zone, or the membrane leak / synaptic noise of exact circuits",
        description="Run one parameter over a grid and write a table, a plot and a report: timesteps (rate SNN accuracy "
        "and spikes), dead-zone (M-TTFS), leak or noise (bit-exact float32 multiplication by IF-neuron gates with a "
        "leaky membrane or noisy weights: fraction still bit-identical to IEEE-754).",
    )
    sw.add_argument("--param", required=True, choices=["timesteps", "dead-zone", "leak", "noise"], help="what to sweep")
    sw.add_argument("--values", default=None, help="comma-separated grid (default: a sensible one per parameter)")
    sw.add_argument("--model", default=None, help=model_help + " (timesteps, dead-zone)")
    sw.add_argument("--arch", default=None, help="architecture of a state-dict --model")
    sw.add_argument("--dataset", default=None, help="dataset (timesteps, dead-zone; default: digits)")
    sw.add_argument("--samples", type=int, default=500, help="test samples, or operand pairs for leak/noise (default: 500)")
    sw.add_argument("--out", default=None, help="output folder (default: runs/sweep-<param>)")
    sw.add_argument("--no-progress", action="store_true", help="hide progress bars")
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
            if args.method == "spiking-gamma":
                if args.buckets < 1 or not args.theta > 0 or not args.dt > 0 or not args.frame_ms > 0:
                    parser.error("--buckets must be >= 1; --theta, --dt and --frame-ms must be > 0")
                from isospike.report.gamma_job import run_train_gamma

                run_train_gamma(args)
            else:
                from isospike.report.train_job import run_train

                run_train(args)
        elif args.command == "energy":
            if args.timesteps < 1 or args.samples < 1:
                parser.error("--timesteps and --samples must be >= 1")
            from isospike.report.energy_job import run_energy

            run_energy(args)
        elif args.command == "convert":
            if args.samples < 1 or (args.timesteps is not None and args.timesteps < 1) or args.dead_zone < 0 or args.levels < 1:
                parser.error("--samples, --timesteps and --levels must be >= 1, --dead-zone >= 0")
            if args.coding != "exact" and args.coding not in __import__("isospike").codings():
                parser.error(f"unknown --coding {args.coding!r}; choose exact or one of {', '.join(__import__('isospike').codings())}")
            from isospike.report.convert_job import run_convert

            run_convert(args)
        elif args.command == "verify":
            if args.samples < 1:
                parser.error("--samples must be >= 1")
            from isospike.report.convert_job import run_verify

            if not run_verify(args):
                print("isospike: some guarantees do not hold (see the table above)", file=sys.stderr)
                return 3
        elif args.command == "sweep":
            if args.samples < 1:
                parser.error("--samples must be >= 1")
            from isospike.report.sweep_job import run_sweep

            run_sweep(args)
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
