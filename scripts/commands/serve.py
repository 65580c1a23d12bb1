"""``genreslice serve``: a trained model behind an HTTP API (``POST /classify``, ``GET /health``, ``GET /model``)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from genreslice.pipeline.discovery import AUDIO_EXTENSIONS
from genreslice.scripts.argtypes import positive_float, positive_int, timeout_seconds, whole_number, worker_count
from genreslice.scripts.commands import HelpFormatter
from genreslice.scripts.commands.predict import check_model_dir, prediction_lines
from genreslice.scripts.exit_status import EXIT_FATAL, EXIT_INTERRUPTED, EXIT_USAGE
from genreslice.training.settings import INFERENCE_BATCH_SIZE

USAGE = "usage: genreslice serve [OPTIONS] MODEL_DIR"
# The defaults of genreslice.training.serving, which needs the optional web packages to import.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_UPLOAD_MB = 100.0
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_CONCURRENT = 32


def register_subcommand(commands: argparse._SubParsersAction) -> None:
    """Add ``serve`` and its options to the ``genreslice`` subcommands."""
    serve = commands.add_parser(
        "serve",
        help="an HTTP API that classifies uploaded audio files with a trained model",
        description=(
            "Load the model in MODEL_DIR once and answer HTTP requests until stopped. POST /classify takes one audio "
            "file, as multipart/form-data (the field 'file') or as the raw body (Content-Type audio/... or "
            "application/octet-stream; the format from the query parameter filename's extension or the "
            "Content-Type), and answers the JSON record 'genreslice predict --format json' prints for it; the "
            "query parameters vote, min_share and top are predict's options. GET /health says it is up; GET /model "
            "answers the model's card (classes in output order, task, spectrogram settings) and the server's "
            "limits. Uploads are streamed into a private temporary folder and removed when their request ends; "
            "SoX decodes several at once (--workers) while one thread classifies the slices of all the requests "
            "waiting in one model call. Errors are JSON {\"error\": ...}: 400 a bad request (no file, empty body, "
            "bad query), 408 an upload slower than --timeout, 413 over --max-upload-mb, 415 another Content-Type, "
            "422 a file that is not audio it can read or is too short (with its record), 503 over "
            "--max-concurrent, 504 not classified within --timeout, 500 a fault of the server (logged, never sent). "
            "Audio formats: " + ", ".join(sorted(ext.lstrip(".") for ext in AUDIO_EXTENSIONS)) + ". Needs "
            "pip install 'genreslice[serve]' (FastAPI, uvicorn, python-multipart)."
        ),
        epilog=(f"Exit status: {EXIT_INTERRUPTED} when stopped with Ctrl-C (128 + the signal's number for SIGTERM "
                f"and SIGHUP), {EXIT_FATAL} when it cannot start (no model, no SoX, the port taken, the web "
                f"packages missing), {EXIT_USAGE} for bad options. Example: genreslice serve model/ & curl -F "
                "file=@song.mp3 http://127.0.0.1:8000/classify"),
        formatter_class=HelpFormatter,
    )
    serve.add_argument("model_dir", metavar="MODEL_DIR", help="a model folder made by 'genreslice train'")
    serve.add_argument("--host", default=DEFAULT_HOST,
                       help="the address to listen on; the default answers this machine only. 0.0.0.0 (or ::) "
                            "makes the server reachable from the network, for anyone who can reach it: it has no "
                            "authentication")
    serve.add_argument("--port", type=lambda text: whole_number(text, minimum=0, maximum=65535),
                       default=DEFAULT_PORT, help="the TCP port; 0 picks a free one (the start line shows it)")
    serve.add_argument("--workers", type=worker_count, default=os.cpu_count() or 1,
                       help="uploads SoX decodes at once (default: number of cores)")
    serve.add_argument("--batch-size", type=positive_int, default=INFERENCE_BATCH_SIZE, metavar="N",
                       help="most slices per model call; the slices of several requests share a call")
    serve.add_argument("--max-upload-mb", type=positive_float, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                       help="the largest request body accepted, in MB of 2**20 bytes; a larger one is answered "
                            "413 before it is stored (by its Content-Length, else as its bytes arrive)")
    serve.add_argument("--timeout", type=timeout_seconds, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                       help="seconds one request may take, its upload included: then it is answered 408 (upload "
                            "still arriving) or 504, and its SoX is killed")
    serve.add_argument("--max-concurrent", type=positive_int, default=DEFAULT_MAX_CONCURRENT, metavar="N",
                       help="uploads received or classified at once; beyond them a request is answered 503 (JSON) at "
                            "once. Idle connections do not count")
    serve.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """``genreslice serve``: :func:`serve` with the options."""
    return serve(args.model_dir, host=args.host, port=args.port, workers=args.workers, batch_size=args.batch_size,
                 max_upload_mb=args.max_upload_mb, timeout_s=args.timeout, max_concurrent=args.max_concurrent,
                 verbose=args.verbose)


def serve(model_dir: str | os.PathLike, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, workers: int = 1,
          batch_size: int = INFERENCE_BATCH_SIZE, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
          timeout_s: float = DEFAULT_TIMEOUT_S, max_concurrent: int = DEFAULT_MAX_CONCURRENT,
          verbose: bool = False) -> int:
    """Serve the model in ``model_dir`` until stopped; the start line (with the URL) goes to standard error.

    Ends by a stop signal, reported by the caller as for every command (:class:`KeyboardInterrupt`).

    Raises
    ------
    NotAModelFolderError
        ``model_dir`` is not a model folder.
    ServingUnavailableError
        FastAPI, uvicorn or python-multipart is missing.
    ServeError
        The address cannot be listened on.
    """
    check_model_dir(model_dir, usage=USAGE)
    # Before TensorFlow takes seconds to load: the web packages are there, the port is free.
    from genreslice.training import serving

    settings = serving.ServeSettings(max_upload_mb=max_upload_mb, timeout_s=timeout_s, workers=workers,
                                     batch_size=batch_size, max_concurrent=max_concurrent)
    with serving.listening_socket(host, port) as sock:
        if host not in serving.LOCAL_HOSTS:
            print(f"genreslice serve: warning: listening on {host}: reachable from the network by anyone who can "
                  "reach this machine, with no authentication; --host 127.0.0.1 keeps it to this machine",
                  file=sys.stderr)
        from genreslice.training.tensorflow_runtime import load_tensorflow

        load_tensorflow(quiet=not verbose)
        from genreslice.training.predict import Classifier

        classifier = Classifier(model_dir, batch_size=batch_size, timeout_s=settings.sox_timeout_s)
        for note in classifier.notes:
            print(f"genreslice serve: note: {note}", file=sys.stderr)
        # The first model call builds the network's graph: here, not in the first request.
        classifier.predict_slices(_blank_slices(classifier))
        service = serving.ClassifyService(classifier, settings, record_of=json_record(classifier))
        try:
            print(f"genreslice serve: listening on {serving.socket_url(sock)} (model: {Path(model_dir).name}, "
                  f"{len(classifier.classes)} classes; uploads in {service.upload_dir}); Ctrl-C stops",
                  file=sys.stderr, flush=True)
            serving.serve(service, sock)
        finally:
            service.close()
    return 0


def json_record(classifier):
    """``record_of(song, vote=, top=, min_share=)``: the record ``genreslice predict --format json`` prints for
    ``song`` with those options (a multi-label model's adds its ``top`` tags)."""

    def record_of(song, *, vote: str, top: int, min_share: float) -> dict:
        _, line_of = prediction_lines("json", classifier.classes, vote=vote, top=top, min_share=min_share,
                                      multilabel=classifier.multilabel)
        return json.loads(line_of(song))

    return record_of


def _blank_slices(classifier):
    import numpy as np

    size = classifier.spec.slice_size
    return np.zeros((1, size, size), dtype=np.uint8)
