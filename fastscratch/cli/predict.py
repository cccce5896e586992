"""``fastscratch predict MODEL IMAGE...``: the class a saved network sees in each image, and its outputs.

Each image is read as MNIST's digits were made (``fastscratch.images``), then
the whole batch goes through the network saved by ``fastscratch train``
(``SimpleNetwork.load``). The table (or ``--json``) goes to stdout; an image
that cannot be read is named on stderr and the others are still predicted.
"""
import io
import json
import os
import sys

from fastscratch.cli import options
from fastscratch.cli.options import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, PROG
from fastscratch.cli.output import stderr, stdout
from fastscratch.cli.text import finite_or_none

SAY = f"{PROG} predict:"
MODEL_FILE = "model.npz"
STDIN = "-"

EPILOG = (
    "Each image (PNG, JPEG or any format Pillow reads; any size; grey, colour or with transparency) is made into "
    "an MNIST row as the dataset was made: grey levels, a dark-on-light image inverted (found from its border, or "
    "as --background says), the digit's bounding box scaled into 20x20 keeping its aspect, placed in 28x28 by its "
    "centre of mass, X / 255. The outputs are the network's last layer (forward), the class their largest. "
    "Exit codes: 0 every image predicted; 1 the model or an image could not be read (the others are still "
    "predicted); 2 a bad option, or a MODEL or IMAGE that does not exist; 130 Ctrl-C.")


def add_parser(commands):
    """Add ``predict`` to the ``commands`` of ``fastscratch``'s parser."""
    predict = commands.add_parser(
        "predict", help="predict the digit in image files with a network saved by `fastscratch train`",
        description="Predict the class of each IMAGE with the network saved in MODEL, and print the network's outputs "
                    "(ten for MNIST's classes).",
        epilog=EPILOG, formatter_class=options.HelpFormatter)
    predict.add_argument("model", metavar="MODEL",
                         help=f"a {MODEL_FILE} written by `fastscratch train` (or SimpleNetwork.save), or the run "
                              f"directory holding it")
    predict.add_argument("images", metavar="IMAGE", nargs="+", help=f"image files; {STDIN} reads one from stdin")
    predict.add_argument("--background", choices=["auto", "light", "dark"], default="auto",
                         help="the images' background: auto finds it from each image's border; light: dark digits "
                              "on a light background (inverted, as MNIST's are light on dark); dark: as MNIST's")
    predict.add_argument("--json", action="store_true",
                         help="print one JSON document instead of the table: {model, images: [{image, class, "
                              "outputs, background} or {image, error}]}")
    predict.set_defaults(run=run, parser=predict)
    return predict


def run(args, parser):
    """Run ``fastscratch predict`` with the parsed ``args``; return the exit code."""
    model = args.model
    if os.path.isdir(model):
        model = os.path.join(model, MODEL_FILE)
        if not os.path.isfile(model):
            parser.error(f"argument MODEL: the directory {args.model} holds no {MODEL_FILE}")
    elif not os.path.exists(model):
        parser.error(f"argument MODEL: no such file: {model}")
    missing = [path for path in args.images if path != STDIN and not os.path.exists(path)]
    if missing:
        parser.error(f"argument IMAGE: no such file: {', '.join(missing)}")
    if args.images.count(STDIN) > 1:
        parser.error(f"argument IMAGE: {STDIN} (stdin) can be read once")
    try:
        return _predict(args, model)
    except KeyboardInterrupt:
        print(f"{SAY} interrupted", file=stderr())
        return EXIT_INTERRUPTED


def _predict(args, model):
    import numpy as np

    from fastscratch import SimpleNetwork, images
    try:
        network = SimpleNetwork.load(model)
    except (ValueError, TypeError, OSError) as err:
        print(f"{SAY} error: cannot load the model {model}: {err}", file=stderr())
        return EXIT_FAILED
    if network.num_inputs != images.SIDE * images.SIDE:
        print(f"{SAY} error: {model} holds a network of {network.num_inputs} inputs; images make rows of "
              f"{images.SIDE * images.SIDE} (28x28)", file=stderr())
        return EXIT_FAILED
    entries, digits = [], []  # entries in the order given; the digits read, in the same order
    for name in args.images:
        try:
            digit = images.read_digit(_source(name), background=args.background, dtype=network.dtype)
        except (ValueError, OSError) as err:
            entries.append({"image": name, "error": str(err)})
            print(f"{SAY} error: {err}", file=stderr())
            continue
        entries.append({"image": name, "background": digit.background})
        digits.append(digit)
    if digits:
        outputs = iter(network.forward(np.stack([digit.row for digit in digits])))
        for entry in entries:
            if "error" not in entry:
                out = next(outputs)
                entry.update({"class": int(np.argmax(out)), "outputs": [finite_or_none(float(v)) for v in out]})
    if args.json:
        print(json.dumps({"model": model, "images": entries}, indent=2), file=stdout())
    elif digits:
        print(_table([entry for entry in entries if "error" not in entry]), file=stdout())
    return EXIT_FAILED if len(digits) < len(entries) else EXIT_OK


def _source(name):
    """What ``images.read_digit`` reads for the command-line argument ``name``."""
    if name != STDIN:
        return name
    data = io.BytesIO(sys.stdin.buffer.read())
    data.name = "(stdin)"
    return data


def _table(found):
    """The predictions as a plain table: image, class, background, then one column per output."""
    header = ["image", "class", "background"] + [str(i) for i in range(len(found[0]["outputs"]))]
    rows = [[entry["image"], str(entry["class"]), entry["background"]]
            + ["nan" if v is None else f"{v:.3f}" for v in entry["outputs"]] for entry in found]
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    lines = []
    for row in [header] + rows:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
