"""``genreslice export``: a trained network in a portable format (SavedModel, LiteRT/TFLite, ONNX), its card, and a
script that classifies songs with them alone."""
from __future__ import annotations

import argparse
import os
import sys
import time

from genreslice.scripts.argtypes import number
from genreslice.scripts.commands import HelpFormatter
from genreslice.scripts.commands.predict import check_model_dir
from genreslice.scripts.exit_status import EXIT_FATAL, EXIT_USAGE

USAGE = "usage: genreslice export [OPTIONS] MODEL_DIR OUT_DIR"
#: Formats in the order ``--help`` lists them (``genreslice.training.export.FORMATS``, which imports Keras).
FORMAT_NAMES = ("onnx", "tflite", "savedmodel")
#: ``genreslice.training.export.DEFAULT_TOLERANCE``.
TOLERANCE = 1e-4


def register_subcommand(commands: argparse._SubParsersAction) -> None:
    """Add ``export`` and its options to the ``genreslice`` subcommands."""
    export = commands.add_parser(
        "export",
        help="a trained model in a portable format (ONNX, TFLite, SavedModel) with the settings to use it correctly",
        description=(
            "Write the network of MODEL_DIR to OUT_DIR in a portable format, with genreslice-model.json, its card: "
            "the classes (or tags) in output order, the task, the spectrogram settings (representation, sample "
            "rate, columns per second, mel settings), the slice size and seconds, the input scaling, the voting "
            "rule, the tag thresholds, the genreslice version and the data set's fingerprint. A network fed other "
            "spectrograms than it learned from answers wrongly without an error: the card is what prevents that. "
            "OUT_DIR also gets classify.py, a script that classifies songs with the exported file and the card "
            "alone (numpy, SoX and the format's runtime; no genreslice): python OUT_DIR/classify.py OUT_DIR "
            "song.mp3. Before anything is written, the exported network classifies the same slices as the Keras "
            "model (up to 32 of its data set's and 8 made-up ones) and must agree on every probability within "
            "--tolerance; else the export fails and OUT_DIR is left as it was."
        ),
        epilog=(f"Exit status: 0 when the export was written and checked, {EXIT_FATAL} when it could not be (a "
                f"missing package, a failed conversion or check), {EXIT_USAGE} for bad options. Formats and their "
                "runtimes: onnx = model.onnx (onnxruntime); tflite = model.tflite (ai-edge-litert, or "
                "tf.lite.Interpreter); savedmodel = saved_model/ (TensorFlow, TF Serving). onnx and tflite need "
                "pip install 'genreslice[export]'."),
        formatter_class=HelpFormatter,
    )
    export.add_argument("model_dir", metavar="MODEL_DIR", help="a model folder made by 'genreslice train'")
    export.add_argument("out_dir", metavar="OUT_DIR",
                        help="the export folder: new, empty, or an earlier export (replaced whole once the new one "
                             "is checked); a folder holding other files is refused")
    export.add_argument("--format", choices=FORMAT_NAMES, default="onnx",
                        help="onnx = ONNX (model.onnx), for onnxruntime in any language; tflite = LiteRT / "
                             "TensorFlow Lite (model.tflite), for phones and small devices; savedmodel = "
                             "TensorFlow's SavedModel (saved_model/), for TensorFlow Serving")
    export.add_argument("--tolerance", type=lambda text: number(text, maximum=1.0, above_minimum=True), default=TOLERANCE, metavar="T",
                        help="the largest difference allowed between a probability of the exported network and "
                             "the Keras model's in the check")
    export.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """``genreslice export``: :func:`export` with the options."""
    return export(args.model_dir, args.out_dir, output_format=args.format, tolerance=args.tolerance,
                  verbose=args.verbose)


def export(model_dir: str | os.PathLike, out_dir: str | os.PathLike, *, output_format: str = "onnx",
           tolerance: float = TOLERANCE, verbose: bool = False) -> int:
    """Export, check, and say what was written and how to use it; returns the exit status (0)."""
    check_model_dir(model_dir, usage=USAGE)
    from genreslice.training.tensorflow_runtime import load_tensorflow

    load_tensorflow(quiet=not verbose)
    from genreslice.training.export import CARD_FILE, SCRIPT_FILE, export_model

    started = time.monotonic()
    result = export_model(model_dir, out_dir, output_format=output_format, tolerance=tolerance)
    for note in result.notes:
        print(f"genreslice export: note: {note}", file=sys.stderr)
    card, out = result.card, os.fspath(result.out_dir)
    kind = "tags" if card["task"] == "multilabel" else "classes"
    print(f"Exported {os.fspath(model_dir)} as {output_format} to {out} in {time.monotonic() - started:.1f} s:\n"
          f"  {os.fspath(result.model_path)}  the network ({len(card['classes'])} {kind}: "
          f"{', '.join(card['classes'][:8])}{', ...' if len(card['classes']) > 8 else ''})\n"
          f"  {os.path.join(out, CARD_FILE)}  how to use it ({card['spectrogram'].get('features', 'sox')} "
          f"spectrogram at {card['spectrogram'].get('sample_rate')} Hz, {card['slicing']['slice_size']}-pixel "
          f"slices of {card['slicing']['slice_seconds']} s, {card['voting']['rule']} vote)\n"
          f"  {os.path.join(out, SCRIPT_FILE)}  classifies songs with these two alone\n"
          f"Check: {result.checked_slices} slices ({card['export']['check']['dataset_slices']} of the data set), "
          f"largest difference from the Keras model {result.max_difference:.2g} (tolerance {tolerance:g}): "
          "passed.\n"
          f"Try it: python {os.path.join(out, SCRIPT_FILE)} {out} SONG.mp3")
    return 0
