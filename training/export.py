"""``genreslice export``: a trained network in a portable format, with the card that says how to use it.

An export folder holds::

    model.onnx | model.tflite | saved_model/    the network, in the format asked for
    genreslice-model.json                       its card (:mod:`genreslice.training.model_card`) and the export's
                                                format, file, input name and check
    classify.py                                 a script that classifies songs with the two above, numpy, SoX
                                                and the format's runtime alone (no genreslice)

Formats:

- ``savedmodel``: TensorFlow's SavedModel, Keras's ``model.export(format="tf_saved_model")``; its ``serve``
  endpoint takes the slices. Run by TensorFlow (Serving, ``tf.saved_model.load``).
- ``tflite``: LiteRT (TensorFlow Lite) flat buffer, converted from a SavedModel by TensorFlow's converter;
  recurrent layers are unrolled first (same weights, same outputs), since the converter cannot lower their loop
  with a batch of any size. Run by ``ai-edge-litert`` (or ``tf.lite.Interpreter``).
- ``onnx``: ONNX (opset of tf2onnx's choosing), Keras's ``model.export(format="onnx")``, which uses tf2onnx. Run by
  ``onnxruntime``.

Every export is checked before it is kept: the exported network and the Keras one classify the same slices (up to
32 slices of the model's data set when it is still where it was built, and 8 made-up ones: black, white, noise and
ramps), and each probability must agree within :data:`DEFAULT_TOLERANCE`, else :class:`ExportError` and nothing is
written. The folder is built beside ``OUT_DIR`` and moved into place at the end, so an interrupted or failed export
leaves ``OUT_DIR`` as it was.
"""
from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from genreslice.pipeline import layout
from genreslice.pipeline.png import to_model_input
from genreslice.training.data_source import load_gray
from genreslice.training.errors import ModelDirError, TrainingError
from genreslice.training.model_card import CARD_FORMAT, model_card
from genreslice.training.model_dir import TrainedModel, load_trained_model, unfinished_training_note
from genreslice.training.tf_modules import keras

logger = logging.getLogger(__name__)

#: Formats, each with the name of the file (or folder) it writes and the packages it needs.
FORMATS = {
    "savedmodel": ("saved_model", ("tensorflow",)),
    "tflite": ("model.tflite", ("tensorflow", "ai_edge_litert")),
    "onnx": ("model.onnx", ("tf2onnx", "onnx", "onnxruntime")),
}
CARD_FILE = "genreslice-model.json"
SCRIPT_FILE = "classify.py"
#: The largest difference allowed between a probability of the exported network and the Keras one's. Float32
#: networks converted faithfully differ by a few 1e-7; a wrong conversion by far more.
DEFAULT_TOLERANCE = 1e-4
#: Slices of the data set the check classifies, and made-up ones.
CHECK_DATASET_SLICES = 32
CHECK_MADE_UP_SLICES = 8
#: What an export folder may hold and still be replaced by a new export.
_EXPORT_NAMES = {CARD_FILE, SCRIPT_FILE, *(name for name, _ in FORMATS.values())}


class ExportError(TrainingError):
    """The network could not be exported, or the exported one does not classify as the Keras one does."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote.

    Attributes
    ----------
    out_dir : Path
        The export folder.
    model_path : Path
        The exported network (a file, or the SavedModel's folder).
    card : dict
        The card written to ``genreslice-model.json``.
    max_difference : float
        The largest difference between a probability of the exported network and the Keras one's, over the check.
    checked_slices : int
        Slices the check classified.
    notes : tuple of str
        Cautions: an unfinished training run, a check without the data set's slices.
    """

    out_dir: Path
    model_path: Path
    card: dict
    max_difference: float
    checked_slices: int
    notes: tuple[str, ...] = ()


def missing_packages(output_format: str) -> list[str]:
    """The packages ``output_format`` needs that cannot be imported here."""
    import importlib.util

    return [name for name in FORMATS[output_format][1] if importlib.util.find_spec(name) is None]


def export_model(model_dir: str | os.PathLike, out_dir: str | os.PathLike, *, output_format: str = "onnx",
                 tolerance: float = DEFAULT_TOLERANCE) -> ExportResult:
    """Export the network of ``model_dir`` to ``out_dir`` in ``output_format``, with its card and ``classify.py``.

    Parameters
    ----------
    model_dir : str or os.PathLike
        A folder made by ``genreslice train``.
    out_dir : str or os.PathLike
        The export folder: new, empty, or an earlier export (replaced). A folder holding anything else is refused.
    output_format : {"savedmodel", "tflite", "onnx"}
        The format.
    tolerance : float
        The largest difference allowed between a probability of the exported network and the Keras one's.

    Raises
    ------
    ParameterError
        An unknown format, or a tolerance that is not a positive number.
    ExportError
        The format's packages are missing (the message names the install command), the conversion failed, or the
        exported network's outputs differ from the Keras one's by more than ``tolerance``.
    ModelDirError
        ``model_dir`` is not a usable model folder; ``out_dir`` holds other files.
    """
    from genreslice.errors import ParameterError

    if output_format not in FORMATS:
        raise ParameterError(f"format={output_format!r} must be one of {', '.join(FORMATS)}")
    if isinstance(tolerance, bool) or not (isinstance(tolerance, (int, float)) and 0 < tolerance < 1):
        raise ParameterError(f"tolerance={tolerance!r} must be a number above 0 and below 1")
    missing = missing_packages(output_format)
    if missing:
        raise ExportError(f"the {output_format} format needs {', '.join(missing)}, which cannot be imported here; "
                          "install them with: pip install 'genreslice[export]'")
    out = Path(os.path.abspath(out_dir))  # "." and "sub/.." name the folder itself, which is then renamed
    _check_out_dir(out, Path(model_dir))
    trained = load_trained_model(model_dir)
    slices, from_dataset = sample_slices(trained)
    expected = np.asarray(trained.model.predict_on_batch(to_model_input(slices[..., None])))
    out.parent.mkdir(parents=True, exist_ok=True)
    with _scratch_folder(out) as scratch:
        file_name = FORMATS[output_format][0]
        with _quiet_converters():
            _CONVERTERS[output_format](trained.model, scratch / file_name)
            network = load_exported(scratch / file_name, output_format)
            got = network(to_model_input(slices[..., None]))
            input_name = getattr(network, "input_name", None) or _input_name(trained.model)
        difference = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else float("inf")
        if not difference <= tolerance:
            raise ExportError(
                f"the {output_format} network does not classify as the Keras model does: a probability differs by "
                f"{difference:.3g} on {len(slices)} check slices (tolerance {tolerance:g}); nothing was written. "
                "Report it with the model's preset (model.json's training.model), or try another --format")
        card = model_card(trained)
        card["export"] = {
            "format": output_format, "file": file_name, "input_name": input_name,
            "check": {"slices": len(slices), "dataset_slices": from_dataset, "max_abs_difference": difference,
                      "tolerance": tolerance},
            "runtime": {"savedmodel": "tensorflow (tf.saved_model.load(path).serve(slices))",
                        "tflite": "ai-edge-litert (ai_edge_litert.interpreter.Interpreter) or tf.lite.Interpreter",
                        "onnx": "onnxruntime (InferenceSession)"}[output_format],
        }
        (scratch / CARD_FILE).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        script = resources.files("genreslice.scripts").joinpath("classify_exported.py").read_bytes()
        (scratch / SCRIPT_FILE).write_bytes(script)
        layout.fsync_path(scratch / CARD_FILE)
        os.chmod(scratch, 0o777 & ~layout.current_umask())  # mkdtemp makes 0700; give the usual mode
        _check_out_dir(out, Path(model_dir))  # again: files put there during the conversion would be lost
        layout.replace_folder(scratch, out)
    notes = [unfinished_training_note(trained.record)]
    if not from_dataset:
        notes.append("the model's data set was not found where it was built: the check classified made-up slices "
                     "only")
    return ExportResult(out_dir=out, model_path=out / file_name, card=card, max_difference=difference,
                        checked_slices=len(slices), notes=tuple(note for note in notes if note))


def sample_slices(trained: TrainedModel) -> tuple[np.ndarray, int]:
    """Slices for the check, ``uint8`` ``(n, size, size)``, and how many came from the data set.

    Up to :data:`CHECK_DATASET_SLICES` slices spread evenly over the data set's ``slices.csv`` when the data set is
    still at the path ``model.json`` records (a damaged or missing one is passed over), then
    :data:`CHECK_MADE_UP_SLICES` made-up ones: black, white, two kinds of noise and ramps.
    """
    size = int(trained.model.input_shape[1])
    made_up = _made_up_slices(size)
    dataset = trained.record.get("dataset", {}).get("path") if isinstance(trained.record.get("dataset"), dict) else None
    if not isinstance(dataset, str):
        return made_up, 0
    try:
        with open(Path(dataset) / layout.SLICES_CSV, newline="", encoding="utf-8") as stream:
            paths = [row["path"] for row in csv.DictReader(stream) if row.get("path")]
        if not paths:
            return made_up, 0
        chosen = [paths[int(k)] for k in np.unique(np.linspace(0, len(paths) - 1, CHECK_DATASET_SLICES).round())]
        real = load_gray([Path(dataset) / path for path in chosen], size)
    except (OSError, UnicodeDecodeError, KeyError, csv.Error, TrainingError) as err:
        logger.info("export check: the data set's slices cannot be read (%s); made-up slices only", err)
        return made_up, 0
    return np.concatenate([real, made_up]), len(real)


def _made_up_slices(size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, size).round().astype(np.uint8)
    return np.stack([np.zeros((size, size), np.uint8), np.full((size, size), 255, np.uint8),
                     rng.integers(0, 256, (size, size), dtype=np.uint8),
                     rng.integers(0, 64, (size, size), dtype=np.uint8),
                     np.tile(ramp, (size, 1)), np.tile(ramp[:, None], (1, size)),
                     np.tile(ramp[::-1], (size, 1)), (rng.random((size, size)) ** 3 * 255).astype(np.uint8)])


def load_exported(path: str | os.PathLike, output_format: str):
    """A function from float32 slices ``(n, size, size, 1)`` to probabilities, running the exported network with
    its format's runtime (as ``classify.py`` does).

    Raises
    ------
    ExportError
        The runtime cannot load the file.
    """
    path = os.fspath(path)
    try:
        if output_format == "onnx":
            import onnxruntime

            session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            return _Network(lambda x: np.asarray(session.run(None, {name: np.ascontiguousarray(x, np.float32)})[0]),
                            name)
        if output_format == "tflite":
            interpreter = _tflite_interpreter(path)

            def run(x: np.ndarray) -> np.ndarray:
                given, wanted = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
                interpreter.resize_tensor_input(given["index"], list(x.shape))
                interpreter.allocate_tensors()
                interpreter.set_tensor(given["index"], np.ascontiguousarray(x, np.float32))
                interpreter.invoke()
                return interpreter.get_tensor(wanted["index"]).copy()

            return _Network(run, interpreter.get_input_details()[0]["name"])
        from genreslice.training.tf_modules import tf

        loaded = tf.saved_model.load(path)  # kept by the function: its variables live as long as it does
        signature = loaded.signatures.get("serving_default")
        name = next(iter(signature.structured_input_signature[1]), None) if signature is not None else None
        return _Network(lambda x: np.asarray(loaded.serve(np.ascontiguousarray(x, np.float32))), name)
    except Exception as err:  # each runtime raises its own kinds for a file it cannot load
        raise ExportError(f"{path}: the {output_format} runtime cannot load it ({type(err).__name__}: "
                          f"{' '.join(str(err).split())[:300]})") from err


@dataclass(frozen=True)
class _Network:
    """An exported network run by its runtime: called with float32 slices, it gives their probabilities."""

    run: object
    input_name: str | None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.run(x)


def _tflite_interpreter(path: str):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from genreslice.training.tf_modules import tf

        Interpreter = tf.lite.Interpreter
    return Interpreter(model_path=path)


def _input_name(model: keras.Model) -> str:
    return model.inputs[0].name if model.inputs else "slice"


def _to_savedmodel(model: keras.Model, path: Path) -> None:
    _converting("savedmodel", lambda: model.export(os.fspath(path), format="tf_saved_model", verbose=False))


def _to_tflite(model: keras.Model, path: Path) -> None:
    from genreslice.training.tf_modules import tf

    with tempfile.TemporaryDirectory(prefix=".saved-model-", dir=path.parent) as folder:
        _converting("tflite", lambda: unrolled(model).export(folder, format="tf_saved_model", verbose=False))
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        flat_buffer = _converting("tflite", converter.convert)
    path.write_bytes(flat_buffer)


def _to_onnx(model: keras.Model, path: Path) -> None:
    _converting("onnx", lambda: model.export(os.fspath(path), format="onnx", verbose=False))


def _converting(output_format: str, convert):
    """``convert()``, its failure an :class:`ExportError` naming the format and the converter's reason."""
    try:
        return convert()
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as err:  # converters raise anything from ValueError to their own ConverterError
        lines = [line for line in str(err).splitlines() if line.strip()]
        reason = next((line for line in lines if "error" in line.lower()), lines[0] if lines else type(err).__name__)
        raise ExportError(f"the {output_format} converter failed ({type(err).__name__}: {reason.strip()[:300]}); "
                          "nothing was written. Try another --format") from err


_CONVERTERS = {"savedmodel": _to_savedmodel, "tflite": _to_tflite, "onnx": _to_onnx}


def unrolled(model: keras.Model) -> keras.Model:
    """``model`` with its recurrent layers unrolled: the same weights and outputs, and no loop over time steps,
    which TensorFlow's LiteRT converter cannot lower for a batch of any size. ``model`` itself when it has none."""
    if not any("unroll" in layer.get_config() for layer in _all_layers(model)):
        return model

    def clone(layer):
        config = layer.get_config()
        if "unroll" in config:
            config["unroll"] = True
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def _all_layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def _check_out_dir(out: Path, model_dir: Path) -> None:
    """Refuse an ``OUT_DIR`` that could not be replaced without loss: a file or a link, a folder that is not empty
    and not an earlier export (whose card says so), the model folder or a folder around it, or one whose parent
    cannot take the scratch folder."""
    if out.is_symlink():
        raise ModelDirError(f"{out} is a symbolic link; give the folder it points to, or a new folder")
    if out.exists() and not out.is_dir():
        raise ModelDirError(f"{out} exists and is not a folder; choose a new folder for the export")
    model = model_dir.resolve()
    if out.resolve() == model or out.resolve() in model.parents:
        raise ModelDirError(f"{out} holds the model folder {model_dir}; choose another folder for the export")
    if out.is_dir() and any(out.iterdir()) and not _is_export(out):
        names = sorted(path.name for path in out.iterdir())
        raise ModelDirError(f"{out} is not empty and holds no export of genreslice (it has {', '.join(names[:5])}"
                            f"{', ...' if len(names) > 5 else ''}); choose a new or empty folder")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ModelDirError(f"{out}: its folder {parent} is not writable; choose a folder you can write to")


def _is_export(folder: Path) -> bool:
    """Whether ``folder`` holds only what an export writes, with an export's card."""
    try:
        card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
        names = {path.name for path in folder.iterdir()}
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return (isinstance(card, dict) and card.get("format") == CARD_FORMAT and isinstance(card.get("export"), dict)
            and names <= _EXPORT_NAMES)


@contextlib.contextmanager
def _scratch_folder(out: Path) -> Iterator[Path]:
    """A new folder beside ``out`` for the block to fill; removed unless the block moved it into place."""
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def _quiet_converters() -> Iterator[None]:
    """Silence what the converters print for every export (tf2onnx's INFO lines, TensorFlow's and NumPy's
    deprecation warnings); their errors still raise."""
    loggers = [logging.getLogger(name) for name in ("tf2onnx", "tensorflow", "absl")]
    levels = [item.level for item in loggers]
    for item in loggers:
        item.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for item, level in zip(loggers, levels):
            item.setLevel(level)
