"""The ``isospike`` command line.

Exit status (the same for every command, see docs/cli.md): 0 success; 1 an error found while
running (a missing or unreadable file, a model that does not fit, an unknown dataset or hardware
preset, a grid that does not suit the swept parameter), printed as one line ``isospike: error:
...``; 2 a usage error rejected by the argument parser before any work starts (unknown command or
option, a malformed or out-of-range option value), printed as argparse's usage line plus
``isospike <command>: error: ...``; 3 ``verify`` only: some guarantee does not hold; 130
interrupted.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from isospike import __version__
from isospike.errors import IsospikeError, one_line

EXIT_STATUS = ("exit status: 0 done; 1 error found while running (missing or unreadable file, model that does not "
               "fit, unknown dataset or hardware), one line 'isospike: error: ...'; 2 usage error (unknown command or "
               "option, malformed or out-of-range option value), usage line + error; 130 interrupted.")
VERIFY_EXIT_STATUS = ("exit status: 0 every guarantee holds; 3 some fail; 1 error found while running (missing or "
                      "unreadable file, not an isospike network), one line 'isospike: error: ...'; 2 usage error "
                      "(unknown option, malformed or out-of-range option value), usage line + error; 130 interrupted.")


def _positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def _nonnegative_int(text: str) -> int:
    """An argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _coding(text: str) -> str:
    """An argparse type: ``exact`` or a coding registered with :func:`isospike.codings`."""
    from isospike.conversion import codings

    if text not in codings():
        raise argparse.ArgumentTypeError(f"unknown coding {text!r}; choose one of {', '.join(codings())}")
    return text


def _out_folder(text: str) -> str:
    """An argparse type: a folder the command can write its results to, checked before the run
    (an existing file, or a parent that is not a writable folder, is a usage error)."""
    import os
    from pathlib import Path

    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; --out takes a folder for the results")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write to {text}: {parent} is not a writable folder")
    return text


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
        epilog=EXIT_STATUS,
    )
    parser.add_argument("--version", action="version", version=f"isospike {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="train a small CNN on the embedded digits data, convert it under every coding and to exact gate "
        "circuits, verify, estimate energy, report",
        description="Train a small CNN on scikit-learn's digits (shipped with the package); convert it under every "
        "coding (rate, TTFS, M-TTFS with and without a dead zone, sigma-delta) and to exact gate circuits; verify "
        "each with isospike.verify, estimate its energy on two hardware presets, measure the rate SNN's accuracy and "
        "spikes over --timesteps, and write report.html + report.md with plots, and results.json.",
        epilog=EXIT_STATUS,
    )
    demo.add_argument("--out", type=_out_folder, default="runs/demo", help="output folder (default: runs/demo)")
    demo.add_argument("--timesteps", type=_positive_ints, default=[1, 2, 4, 8, 16, 32],
                      help="comma-separated numbers of time steps (default: 1,2,4,8,16,32)")
    demo.add_argument("--epochs", type=_positive_int, default=30, help="ANN training epochs (default: 30)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")

    train = sub.add_parser(
        "train",
        help="train for low-latency rate conversion (noise-aware QCFS) or a SpikingGamma network",
        description="--method nq (default): train a ReLU ANN (or load one), fine-tune it with noise-aware quantized "
        "activations (lambda * clip(floor(z L / lambda + 1/2) / L, 0, 1) + residual noise), and report the converted "
        "rate SNN's accuracy. Checkpoints are written after every epoch; rerunning the same command resumes an "
        "interrupted run. --method spiking-gamma: train sigma-delta neurons with gamma memory on images read row by "
        "row (no surrogate gradient), offline (BPTT) or online, and evaluate at several time steps. Writes "
        "report.html + report.md and results.json.",
        epilog=EXIT_STATUS,
    )
    train.add_argument("--method", default="nq", choices=["nq", "spiking-gamma"],
                       help="nq: noise-aware rate conversion (default); spiking-gamma: SpikingGamma on row sequences")
    train.add_argument("--dataset", default="digits", help="digits (default), fashion-mnist, cifar10, cifar100")
    train.add_argument("--model", default="small-cnn", help="small-cnn (default), vgg-small, vgg11, vgg16, resnet20")
    train.add_argument("--out", type=_out_folder, default=None, help="output folder (default: runs/train-<dataset>-<model>)")
    train.add_argument("--ann-epochs", type=_nonnegative_int, default=10,
                       help="epochs of plain ReLU training first (0: start from --init or random)")
    train.add_argument("--init", default=None,
                       help="state dict of a trained ReLU --model to fine-tune (.safetensors, or a weights-only .pt)")
    train.add_argument("--epochs", type=_positive_int, default=4, help="noise-aware epochs (default: 4)")
    train.add_argument("--levels", type=_positive_int, default=4, help="quantization levels L (default: 4)")
    train.add_argument("--noise", default="gaussian", choices=["gaussian", "uniform", "none"],
                       help="residual-noise model (none: plain QCFS)")
    train.add_argument("--timesteps", type=_positive_ints, default=[1, 2, 4, 8, 16, 32],
                       help="time steps to evaluate the converted SNN at (default: 1,2,4,8,16,32)")
    train.add_argument("--train-samples", type=_positive_int, default=None, help="use a random subset of the training split")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint in --out")
    train.add_argument("--no-progress", action="store_true", help="hide progress bars")
    gamma = train.add_argument_group("spiking-gamma options")
    gamma.add_argument("--mode", default="offline", choices=["offline", "online"], help="BPTT or online (per-step) gradients")
    gamma.add_argument("--hidden", type=_positive_ints, default=[64, 64], help="hidden layer sizes (default: 64,64)")
    gamma.add_argument("--buckets", type=_positive_int, default=4, help="gamma buckets K per synapse (default: 4)")
    gamma.add_argument("--theta", type=_positive_float, default=0.2, help="sigma-delta spike size (default: 0.2)")
    gamma.add_argument("--frame-ms", type=_positive_float, default=4.0,
                       help="how long each image row is held, ms (default: 4)")
    gamma.add_argument("--dt", type=_positive_float, default=1.0, help="training time step, ms (default: 1)")

    model_help = ("the network: a folder written by `isospike train` or `isospike demo` (runs/demo/model), a spiking "
                  "network saved by `isospike demo`/`convert` (runs/demo/snn/rate.safetensors: used as it is), or a "
                  ".safetensors/.pt state dict with --arch (default: runs/demo/model when `isospike demo` has saved it "
                  "there, else the demo CNN trained on --dataset now)")
    arch_help = "architecture of a state-dict --model: small-cnn, vgg-small, vgg11, vgg16, resnet20"
    energy = sub.add_parser(
        "energy",
        help="estimate the energy per inference of a converted network on hardware models",
        description="Convert a network (a folder written by `isospike train`, a state dict with --arch, or the demo "
        "CNN trained on the spot) with the chosen coding, run it on test images, and estimate its energy per "
        "inference -- compute, data movement and communication -- on one or more hardware presets, next to the short "
        "E_MAC*MACs + E_AC*ACs formula and the ANN on the same hardware. Writes report.html + report.md, energy.json "
        "and one stacked-bar PNG per preset.",
        epilog=EXIT_STATUS,
    )
    energy.add_argument("--model", default=None, help=model_help)
    energy.add_argument("--arch", default=None, help=arch_help)
    energy.add_argument("--dataset", default=None, help="dataset for inputs and calibration (default: the model's, else digits)")
    energy.add_argument("--coding", type=_coding, default=None,
                        help="rate (default; a saved network's own with --model FILE), ttfs, mttfs, sigma_delta, or "
                        "exact (gate circuits)")
    energy.add_argument("--timesteps", type=_positive_int, default=None,
                        help="time steps T (default: the coding's: rate 8, ttfs/mttfs 15, sigma_delta and exact 1)")
    energy.add_argument("--hardware", default="horowitz45,loihi,truenorth,cim-memristor",
                        help="comma-separated presets (default: horowitz45,loihi,truenorth,cim-memristor)")
    energy.add_argument("--samples", type=_positive_int, default=256, help="test images to run (default: 256)")
    energy.add_argument("--out", type=_out_folder, default="runs/energy", help="output folder (default: runs/energy)")

    conv = sub.add_parser(
        "convert",
        help="convert a network with any coding, certify it, estimate its energy and save it",
        description="Convert a trained network with a coding (rate, ttfs, mttfs, sigma_delta, or exact gate circuits), "
        "measure its accuracy and spikes on the test split, certify each layer with isospike.verify, estimate its "
        "energy on two hardware presets, save the SNN (snn.safetensors, reload with isospike.load) and write "
        "report.html + report.md.",
        epilog=EXIT_STATUS,
    )
    conv.add_argument("--model", default=None, help=model_help + "; or a Hugging Face model folder (--coding exact)")
    conv.add_argument("--hf", default=None, metavar="FOLDER",
                      help="a local Hugging Face model folder (config.json, model.safetensors, tokenizer): an encoder "
                      "(BERT, MiniLM) or a decoder LLM (Llama, Qwen, GPT-2), run through the gate circuits (implies "
                      "--coding exact)")
    conv.add_argument("--max-new-tokens", type=_nonnegative_int, default=0,
                      help="decoder --hf models: tokens to generate greedily through the gates (default: 0)")
    conv.add_argument("--arch", default=None, help=arch_help)
    conv.add_argument("--dataset", default=None, help="digits (default), fashion-mnist, cifar10, cifar100")
    conv.add_argument("--coding", type=_coding, default=None,
                      help="rate (default; a saved network's own with --model FILE), ttfs, mttfs, sigma_delta, exact")
    conv.add_argument("--timesteps", type=_positive_int, default=None,
                      help="time steps T (default: rate 8, ttfs/mttfs 15, sigma_delta 1)")
    conv.add_argument("--dead-zone", type=_nonnegative_int, default=0,
                      help="mttfs: levels around the silent one sent as silence (default: 0)")
    conv.add_argument("--levels", type=_positive_int, default=16,
                      help="sigma_delta: spike size = percentile / levels (default: 16)")
    conv.add_argument("--synapse", "--device", dest="synapse", default="ideal", choices=["ideal", "in2o3"],
                      help="ttfs: synapse model the spikes are read through (default: ideal; --device is its old name)")
    conv.add_argument("--samples", type=_positive_int, default=500,
                      help="test samples to evaluate (default: 500; sentences for BERT)")
    conv.add_argument("--text", action="append", default=None,
                      help="a sentence for a Hugging Face model (repeatable; default: two built-in sentences)")
    conv.add_argument("--out", type=_out_folder, default=None, help="output folder (default: runs/convert-<dataset>-<coding>)")

    ver = sub.add_parser(
        "verify",
        help="certify a saved SNN layer by layer against the network it provably equals",
        description="Load a network saved by `isospike convert` (or isospike.save) and check, on test data, each layer's "
        "guarantee: bit-exact, QNN-equivalent or bounded error. Writes report.html + report.md and "
        "certificate.json.",
        epilog=VERIFY_EXIT_STATUS,
    )
    ver.add_argument("snn", nargs="?", default=None,
                     help="a .safetensors file written by isospike.save, `isospike convert` or `isospike demo` "
                     "(runs/demo/snn/<coding>.safetensors)")
    ver.add_argument("--model", default=None, metavar="SNN", help="the same file, named like the other commands' --model")
    ver.add_argument("--dataset", default="digits", help="test data to verify on (default: digits)")
    ver.add_argument("--samples", type=_positive_int, default=256, help="test samples (default: 256)")
    ver.add_argument("--out", type=_out_folder, default=None, help="output folder (default: next to the file, <name>-verify)")

    dep = sub.add_parser(
        "deploy",
        help="quantize a rate network for a neuromorphic chip (xylo, speck) and check it in the vendor's simulator",
        description="Convert (rate coding) and quantize a network to the chip's integer formats -- Xylo v1 through "
        "rockpool's XyloSim (xylosim core), Speck through sinabs' DynapcnnNetwork (its core mapping and memory "
        "constraints) -- refuse what does not fit naming the layer and the constraint, and compare the vendor "
        "simulator with isospike's simulation of the same integer network and with the float SNN. Writes "
        "report.html + report.md and deploy.json.",
        epilog=EXIT_STATUS,
    )
    dep.add_argument("--target", required=True, choices=["xylo", "speck"], help="the chip")
    dep.add_argument("--model", default=None, help=model_help)
    dep.add_argument("--arch", default=None, help=arch_help)
    dep.add_argument("--dataset", default=None, help="test data and calibration (default: digits)")
    dep.add_argument("--timesteps", type=_positive_int, default=None,
                     help="time steps (default: the network's T, 16 for an ANN, plus one per layer)")
    dep.add_argument("--samples", type=_positive_int, default=64, help="test samples to run in both simulators (default: 64)")
    dep.add_argument("--out", type=_out_folder, default=None, help="output folder (default: runs/deploy-<target>)")

    sw = sub.add_parser(
        "sweep",
        help="sweep time steps, the M-TTFS dead zone, or the membrane leak / synaptic noise of exact circuits",
        description="Run one parameter over a grid and write a table, a plot and a report: timesteps (rate SNN accuracy "
        "and spikes), dead-zone (M-TTFS), leak or noise (bit-exact float32 multiplication by IF-neuron gates with a "
        "leaky membrane or noisy weights: fraction still bit-identical to IEEE-754). Writes report.html + report.md "
        "and sweep.json. --values are checked against --param while running (exit status 1).",
        epilog=EXIT_STATUS,
    )
    sw.add_argument("--param", required=True, choices=["timesteps", "dead-zone", "leak", "noise"], help="what to sweep")
    sw.add_argument("--values", default=None, help="comma-separated grid (default: a sensible one per parameter)")
    sw.add_argument("--model", default=None, help=model_help + " (timesteps, dead-zone)")
    sw.add_argument("--arch", default=None, help=arch_help)
    sw.add_argument("--dataset", default=None, help="dataset (timesteps, dead-zone; default: digits)")
    sw.add_argument("--samples", type=_positive_int, default=500,
                    help="test samples, or operand pairs for leak/noise (default: 500)")
    sw.add_argument("--out", type=_out_folder, default=None, help="output folder (default: runs/sweep-<param>)")
    sw.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring). Usage errors
    exit through argparse (``SystemExit(2)``) before any work starts."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "verify":
        if (args.snn is None) == (args.model is None):
            parser.error("verify takes one saved network: `isospike verify FILE` or `isospike verify --model FILE` "
                         "(e.g. runs/demo/snn/rate.safetensors, written by `isospike demo`)")
        args.snn = args.snn or args.model
    args.command_line = "isospike " + shlex.join(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("isospike: interrupted; files already written are complete (rerun the same command to resume"
              " training from the last completed epoch)", file=sys.stderr)
        return 130
    except (IsospikeError, ValueError, TypeError, OSError) as exc:
        print(f"isospike: error: {one_line(exc)}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    """Dispatch a parsed command line; 0 when done, 3 when `verify` finds a failed guarantee."""
    if args.command == "demo":
        from isospike.report.demo import run_demo

        run_demo(args.out, timesteps=args.timesteps, epochs=args.epochs, seed=args.seed,
                 progress=not args.no_progress, command=args.command_line)
    elif args.command == "train":
        if args.method == "spiking-gamma":
            from isospike.report.gamma_job import run_train_gamma

            run_train_gamma(args)
        else:
            from isospike.report.train_job import run_train

            run_train(args)
    elif args.command == "energy":
        from isospike.report.energy_job import run_energy

        run_energy(args)
    elif args.command == "convert":
        from isospike.report.convert_job import run_convert

        if args.hf:
            args.coding = "exact"
        run_convert(args)
    elif args.command == "verify":
        from isospike.report.convert_job import run_verify

        if not run_verify(args):
            print("isospike: some guarantees do not hold (see the table above; 'bounded:' rows are rate neurons outside "
                  "their 1/T bound, a statistical certificate)", file=sys.stderr)
            return 3
    elif args.command == "deploy":
        from isospike.report.deploy_job import run_deploy

        run_deploy(args)
    elif args.command == "sweep":
        from isospike.report.sweep_job import run_sweep

        run_sweep(args)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
