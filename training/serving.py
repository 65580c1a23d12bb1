"""``genreslice serve``: a trained model behind an HTTP API, on FastAPI and uvicorn.

``POST /classify`` takes one audio file (a ``multipart/form-data`` field named ``file``, or the raw body with an
``audio/*`` or ``application/octet-stream`` Content-Type) and answers the JSON record ``genreslice predict --format
json`` prints for it; ``GET /health`` says the server is up; ``GET /model`` answers the model's card
(:func:`~genreslice.training.model_card.model_card`) and the server's limits.

How a request goes: its body is streamed, byte-counted, into a file of its own (mode 0600) in a private folder
(0700) made at start-up, so an upload over the limit is refused before it is all written; SoX decodes it into
slices in a pool of ``workers`` threads, several uploads at once; its slices then wait for the one thread that
makes every model call (:class:`ModelBatcher`), which classifies the slices of all the requests waiting in one call.
The upload is removed when its request ends, however it ends; a request still running after ``timeout_s`` is
answered 504 and its SoX killed. Every error is answered as JSON ``{"error": "..."}``, never with a traceback (that
goes to the server's log).

FastAPI, uvicorn and python-multipart are the optional extra ``genreslice[serve]``; importing this module without
them raises :class:`ServingUnavailableError`. TensorFlow is imported only where a model is used, so the command can
check the packages first.
"""
from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import dataclasses
import logging
import os
import queue
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from genreslice import __version__
from genreslice.errors import GenresliceError, ParameterError
from genreslice.pipeline.discovery import AUDIO_EXTENSIONS
from genreslice.pipeline.spectrogram import AudioSlices


class ServingUnavailableError(GenresliceError):
    """FastAPI, uvicorn or python-multipart is not installed: ``pip install 'genreslice[serve]'``."""


class ServeError(GenresliceError):
    """The server cannot start: the address cannot be listened on, or a setting is out of range."""


try:
    import uvicorn
    from fastapi import FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect
except ImportError as err:  # the optional extra is missing
    raise ServingUnavailableError(
        f"the HTTP server needs FastAPI, uvicorn and python-multipart ({err.name or err} is missing): "
        "pip install 'genreslice[serve]'") from err

if TYPE_CHECKING:
    from genreslice.training.predict import Classifier

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_UPLOAD_MB = 100.0
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_CONCURRENT = 32
#: The bytes of one MB of ``--max-upload-mb``.
MB = 1 << 20
#: How long the model thread holds a call that is not full, for requests about to join it.
BATCH_WAIT_S = 0.005
#: Seconds a stopping server lets requests in flight finish before it cancels them.
SHUTDOWN_GRACE_S = 5.0
#: How much longer than a request SoX may run on its upload, should the request's end not have killed it.
SOX_BACKSTOP_S = 10.0
#: The form field that carries the file in a multipart upload.
UPLOAD_FIELD = "file"
#: Hosts reachable from this machine only.
LOCAL_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
#: Content-Types of an upload -> the extension that tells SoX (or FFmpeg) its format.
AUDIO_CONTENT_TYPES = {
    "audio/mpeg": ".mp3", "audio/mp3": ".mp3", "audio/mpeg3": ".mp3", "audio/x-mpeg-3": ".mp3",
    "audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/vnd.wave": ".wav",
    "audio/flac": ".flac", "audio/x-flac": ".flac",
    "audio/ogg": ".ogg", "audio/vorbis": ".ogg", "audio/x-vorbis+ogg": ".ogg",
    "audio/aiff": ".aiff", "audio/x-aiff": ".aiff", "audio/basic": ".au",
    "audio/mp4": ".m4a", "audio/x-m4a": ".m4a", "audio/m4a": ".m4a", "audio/aac": ".aac", "audio/x-aac": ".aac",
    "audio/opus": ".opus", "audio/x-ms-wma": ".wma",
}
RAW_TYPES = "audio/* or application/octet-stream"
INTERNAL_ERROR = "internal error: the request failed on the server; its log has the details"
#: A record's reason shown in a one-line error, at most this long.
_ERROR_CHARS = 500
#: The longest file name a record shows.
_NAME_CHARS = 255


@dataclass(frozen=True)
class ServeSettings:
    """The limits of a server.

    Attributes
    ----------
    max_upload_mb : float
        The largest request body accepted, in MB of 2**20 bytes; larger ones are answered 413.
    timeout_s : float
        Seconds a request may take, upload included; then 408 (the upload was still arriving) or 504.
    workers : int
        Uploads SoX decodes at once.
    batch_size : int
        Most slices per model call; the slices of several requests share a call.
    max_concurrent : int
        Connections and requests at once; uvicorn answers 503 beyond.
    """

    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    timeout_s: float = DEFAULT_TIMEOUT_S
    workers: int = 1
    batch_size: int = 256
    max_concurrent: int = DEFAULT_MAX_CONCURRENT

    def __post_init__(self) -> None:
        for name in ("max_upload_mb", "timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise ParameterError(f"{name}={value!r} must be a number above 0")
        for name in ("workers", "batch_size", "max_concurrent"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"{name}={value!r} must be a whole number, at least 1")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MB)

    @property
    def sox_timeout_s(self) -> float:
        """SoX's own time limit per file: a backstop, past the request's, which kills its SoX first."""
        return self.timeout_s + SOX_BACKSTOP_S

    def to_dict(self) -> dict:
        """The settings as ``GET /model`` shows them."""
        return {"max_upload_mb": self.max_upload_mb, "max_upload_bytes": self.max_upload_bytes,
                "timeout_s": self.timeout_s, "workers": self.workers, "batch_size": self.batch_size,
                "max_concurrent": self.max_concurrent}


class ModelBatcher:
    """The one thread that makes every model call: requests hand it their slices and get their probabilities.

    A request's :meth:`submit` queues its slices and returns a :class:`concurrent.futures.Future`. The thread takes
    what is waiting, in order, while it fits in ``batch_size`` slices (a request larger than that makes a call of
    its own), waits up to ``wait_s`` for more when the call is not full, and classifies them all in one call of
    ``predict``; each future then gets its own rows. A future cancelled before its call (a request past its time
    limit) is left out.

    Parameters
    ----------
    predict : callable
        ``uint8`` slices ``(n, size, size)`` -> probabilities ``(n, classes)``; only ever called from the thread.
    batch_size : int
        Most slices per call, at least 1.
    wait_s : float
        Seconds a call that is not full waits for more requests, at least 0.
    """

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], *, batch_size: int,
                 wait_s: float = BATCH_WAIT_S) -> None:
        if batch_size < 1:
            raise ParameterError(f"batch_size={batch_size} must be at least 1")
        if not wait_s >= 0:
            raise ParameterError(f"wait_s={wait_s} must be 0 or more")
        self._predict = predict
        self.batch_size = int(batch_size)
        self.wait_s = float(wait_s)
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._calls = self._requests = self._slices = 0
        self._thread = threading.Thread(target=self._run, name="genreslice-model", daemon=True)
        self._thread.start()

    def submit(self, slices: np.ndarray) -> cf.Future:
        """Queue one request's slices ``(n, size, size)``, n >= 1; the future's result is their probabilities.

        Raises
        ------
        RuntimeError
            The batcher is closed.
        """
        future: cf.Future = cf.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the model thread has stopped")
            self._queue.put((slices, future))
        return future

    def stats(self) -> dict:
        """Model calls made, requests and slices classified, and the mean requests and slices per call."""
        with self._lock:
            calls, requests, slices = self._calls, self._requests, self._slices
        return {"model_calls": calls, "requests_classified": requests, "slices_classified": slices,
                "mean_requests_per_call": round(requests / calls, 3) if calls else None,
                "mean_slices_per_call": round(slices / calls, 1) if calls else None}

    def close(self) -> None:
        """Stop the thread once the call in progress ends; requests still waiting are cancelled."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[1].cancel()

    def _run(self) -> None:
        carried = None
        while True:
            item = carried if carried is not None else self._queue.get()
            carried = None
            if item is None:
                return
            batch, count, stop = [], 0, False
            deadline = time.monotonic() + self.wait_s
            while True:
                slices, future = item
                if future.set_running_or_notify_cancel():
                    batch.append(item)
                    count += len(slices)
                if count >= self.batch_size:
                    break
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                if batch and count + len(item[0]) > self.batch_size:
                    carried = item  # first in the next call
                    break
            if batch:
                self._call(batch, count)
            if stop:
                if carried is not None:
                    carried[1].cancel()
                return

    def _call(self, batch: list[tuple[np.ndarray, cf.Future]], count: int) -> None:
        try:
            probabilities = np.asarray(self._predict(np.concatenate([slices for slices, _ in batch])))
            if len(probabilities) != count:
                raise RuntimeError(f"the model answered {len(probabilities)} rows for {count} slices")
        except Exception as err:  # each request reports it (a 500, logged with its traceback)
            for _, future in batch:
                future.set_exception(err)
            return
        with self._lock:
            self._calls += 1
            self._requests += len(batch)
            self._slices += count
        start = 0
        for slices, future in batch:
            future.set_result(probabilities[start : start + len(slices)])
            start += len(slices)


class RequestError(GenresliceError):
    """A request that is answered with an error status: ``{"error": message}``, and a record where there is one."""

    def __init__(self, status: int, message: str, record: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.record = record


def error_response(status: int, message: str, **extra) -> JSONResponse:
    """The JSON body of every error: ``{"error": message, ...}``."""
    return JSONResponse({"error": message, **extra}, status_code=status)


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type header, lower case, without its parameters; '' when absent."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def shown_name(filename: str | None, extension: str | None) -> str:
    """The name an upload's record shows: the file name sent, without folders or control characters;
    ``upload.EXT`` when none was sent."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char if char.isprintable() else "?" for char in name).strip()
    if len(name) > _NAME_CHARS:
        stem, ext = os.path.splitext(name)
        name = stem[: _NAME_CHARS - len(ext[:16])] + ext[:16]
    if name in ("", ".", ".."):
        return f"upload{extension or ''}"
    return name


def upload_extension(filename: str | None, content_type: str | None) -> str | None:
    """The extension SoX is to read an upload by: the file name's, when it is an audio extension, else the one of
    its Content-Type (``audio/mpeg`` -> ``.mp3``); None when neither says."""
    if filename:
        extension = os.path.splitext(filename.replace("\\", "/").rsplit("/", 1)[-1])[1].lower()
        if extension in AUDIO_EXTENSIONS:
            return extension
    return AUDIO_CONTENT_TYPES.get(media_type(content_type))


def _one_line(text: str, limit: int = _ERROR_CHARS) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


class _Upload:
    """One request's upload: a file of its own (mode 0600, made by :func:`tempfile.mkstemp`) in the server's
    private folder, written as the body arrives and removed by :meth:`remove`, whatever happened."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path: Path | None = None
        self.size = 0
        self._file = None

    def open(self, extension: str) -> None:
        try:
            descriptor, path = tempfile.mkstemp(prefix="upload-", suffix=extension, dir=self.folder)
        except OSError as err:  # removed since the request began (the next request makes a new one), or a full disk
            logger.error("cannot store an upload in %s: %s", self.folder, err)
            raise RequestError(503, f"the server cannot store the upload now: {err.strerror or err}") from err
        self.path = Path(path)
        self._file = os.fdopen(descriptor, "wb")

    def write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except OSError as err:
            logger.error("cannot store an upload in %s: %s", self.folder, err)
            raise RequestError(503, f"the server cannot store the upload now: {err.strerror or err}") from err
        self.size += len(data)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.close()
        if self.path is not None:
            try:
                self.path.unlink(missing_ok=True)
            except OSError as err:
                logger.error("cannot remove the upload %s: %s", self.path, err)


class _FormUpload:
    """A ``multipart/form-data`` body, parsed as it streams in by python-multipart: the part named
    :data:`UPLOAD_FIELD` goes to the upload, the other parts are read and dropped."""

    def __init__(self, boundary: bytes, begin: Callable[[str | None, str | None], None], upload: _Upload) -> None:
        self._begin = begin
        self._upload = upload
        self._field = bytearray()
        self._value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._writing = False
        self.found = False
        self.ended = False
        self.parser = MultipartParser(boundary, callbacks={
            "on_part_begin": self._part_begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
            "on_part_end": self._part_end, "on_end": self._end})

    def write(self, data: bytes) -> None:
        try:
            self.parser.write(data)
        except FormParserError as err:
            raise RequestError(400, f"the multipart/form-data body is malformed: {err}") from err

    def _part_begin(self) -> None:
        self._headers, self._writing = {}, False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._field).strip().lower()] = bytes(self._value).strip()
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        if options.get(b"name") != UPLOAD_FIELD.encode():
            return
        if self.found:
            raise RequestError(400, f"more than one {UPLOAD_FIELD!r} field: send one file per request")
        self.found = True
        filename = options.get(b"filename")
        content_type = self._headers.get(b"content-type")
        self._begin(None if filename is None else filename.decode("utf-8", errors="replace"),
                    None if content_type is None else content_type.decode("latin-1"))
        self._writing = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._writing:
            self._upload.write(data[start:end])

    def _part_end(self) -> None:
        self._writing = False

    def _end(self) -> None:
        self.ended = True


class ClassifyService:
    """What the requests of one server share: the classifier, the decoding threads, the model thread and the
    private upload folder. :meth:`close` stops them and removes the folder.

    Parameters
    ----------
    classifier : Classifier
        The loaded model; its ``batch_size`` is the model calls'. Its SoX time limit applies to each decoding.
    settings : ServeSettings
        The server's limits.
    record_of : callable
        ``record_of(song, vote=..., top=..., min_share=...)``: the JSON record of a
        :class:`~genreslice.training.predict.SongPrediction`, as ``genreslice predict --format json`` prints it.
    upload_root : path, optional
        Where the private upload folder is made; the system's temporary folder by default (``TMPDIR``).
    """

    def __init__(self, classifier: Classifier, settings: ServeSettings, *, record_of: Callable[..., dict],
                 upload_root: str | os.PathLike | None = None) -> None:
        from genreslice.training.model_card import model_card

        self.classifier = classifier
        self.settings = settings
        self.record_of = record_of
        self.model_name = Path(classifier.trained.model_dir).name
        self.card = model_card(classifier.trained)
        self._upload_root = upload_root
        self.upload_dir = Path(tempfile.mkdtemp(prefix="genreslice-serve-", dir=upload_root))  # mode 0700
        self._running: set = set()  # the SoX registries of requests in flight
        self._lock = threading.Lock()
        self.pool = cf.ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="genreslice-sox")
        self.batcher = ModelBatcher(classifier.predict_slices, batch_size=classifier.batch_size)

    def _private_folder(self) -> Path:
        """The upload folder; a new one (by :func:`tempfile.mkdtemp`, mode 0700, never a folder or link someone
        else made at its name) when a cleaner of the temporary folder removed it."""
        with self._lock:
            if not self.upload_dir.is_dir() or self.upload_dir.is_symlink():
                removed = self.upload_dir
                self.upload_dir = Path(tempfile.mkdtemp(prefix="genreslice-serve-", dir=self._upload_root))
                logger.warning("the upload folder %s was removed; uploads now go to %s", removed, self.upload_dir)
            return self.upload_dir

    def close(self) -> None:
        """Kill the SoX of requests still running, stop the threads, remove the upload folder."""
        with self._lock:
            running = list(self._running)
        for processes in running:
            processes.stop()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.batcher.close()
        shutil.rmtree(self.upload_dir, ignore_errors=True)

    def health(self) -> dict:
        return {"status": "ok", "model": self.model_name, "classes": len(self.classifier.classes),
                **self.batcher.stats()}

    def model(self) -> dict:
        return {**self.card, "server": self.settings.to_dict()}

    async def classify(self, request: Request, *, vote: str, min_share: float, top: int,
                       filename: str | None) -> JSONResponse:
        """Answer one ``POST /classify``; the upload is removed and its SoX stopped however it ends."""
        from genreslice.training.predict import SoxProcesses

        upload = _Upload(self._private_folder())
        processes = SoxProcesses()
        with self._lock:
            busy = len(self._running) >= self.settings.max_concurrent
            if not busy:
                self._running.add(processes)
        if busy:  # counted here, not by the server's connections, which idle clients could hold
            return error_response(503, f"the server is busy: {self.settings.max_concurrent} files are being received "
                                       "or classified (its --max-concurrent); try again shortly")
        stage = ["upload"]
        timer = asyncio.timeout(self.settings.timeout_s)
        try:
            try:
                async with timer:
                    return await self._classify(request, upload, processes, stage, vote=vote,
                                                min_share=min_share, top=top, filename=filename)
            except TimeoutError:
                if not timer.expired():
                    raise
                limit = f"{self.settings.timeout_s:g} s (the server's --timeout)"
                if stage[0] == "upload":
                    return error_response(408, f"the upload did not arrive within {limit}")
                return error_response(504, f"the file was not classified within {limit}; a shorter file, or a "
                                           "server started with a longer --timeout, may do")
        except RequestError as err:
            extra = {} if err.record is None else {"record": err.record}
            return error_response(err.status, err.message, **extra)
        except ClientDisconnect:
            logger.info("a client disconnected during its upload")
            return error_response(400, "the client disconnected before the upload ended")
        except Exception:
            logger.exception("POST /classify failed")
            return error_response(500, INTERNAL_ERROR)
        finally:
            processes.stop()  # a request that timed out or was cancelled leaves no SoX behind
            with self._lock:
                self._running.discard(processes)
            upload.remove()

    async def _classify(self, request: Request, upload: _Upload, processes, stage: list[str], *, vote: str,
                        min_share: float, top: int, filename: str | None) -> JSONResponse:
        from genreslice.training.predict import AudioInput

        try:
            min_share = self.classifier.check_options(vote=vote, min_share=min_share)
        except ParameterError as err:
            raise RequestError(400, f"bad query parameter: {err}") from err
        options = {"vote": vote, "min_share": min_share, "top": top}
        shown, extension = await self._receive(request, upload, filename, options)
        stage[0] = "decode"
        item = AudioInput(upload.path, shown)
        outcome = await asyncio.wrap_future(self.pool.submit(self.classifier.decode, item, vote=vote,
                                                             processes=processes))
        if not isinstance(outcome, AudioSlices):
            # SoX names the file it was given: show the upload's name, not the server's folder.
            reason = outcome.reason.replace(os.fspath(upload.path), shown)
            record = self.record_of(dataclasses.replace(outcome, reason=reason), **options)
            what = "too short to classify" if outcome.status == "too_short" else "cannot be classified"
            raise RequestError(422, _one_line(f"{shown}: {what}: {reason}"), record)
        stage[0] = "classify"
        probabilities = await asyncio.wrap_future(self.batcher.submit(outcome.slices))
        [song] = self.classifier.predictions([(item, outcome)], probabilities, vote=vote, min_share=min_share)
        return JSONResponse(self.record_of(song, **options))

    async def _receive(self, request: Request, upload: _Upload, filename: str | None,
                       options: dict) -> tuple[str, str]:
        """Stream the body into ``upload``; returns the name to show and the extension."""
        kind = media_type(request.headers.get("content-type"))
        limit = self.settings.max_upload_bytes
        too_large = (f"the upload is larger than the server's limit of {self.settings.max_upload_mb:g} MB "
                     "(--max-upload-mb)")
        if kind != "multipart/form-data" and not (kind.startswith("audio/") or kind == "application/octet-stream"):
            given = f"Content-Type {kind!r}" if kind else "no Content-Type"
            raise RequestError(415, f"{given}: send multipart/form-data with the file in a field named "
                                    f"{UPLOAD_FIELD!r}, or the audio as the body with Content-Type {RAW_TYPES}")
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise RequestError(413, too_large)
        named: dict[str, str] = {}

        def begin(name: str | None, content_type: str | None) -> None:
            name = filename if name is None else name
            extension = upload_extension(name, content_type)
            shown = shown_name(name, extension)
            if extension is None:
                self._refuse_type(shown, name, content_type, options)
            upload.open(extension)
            named.update(shown=shown, extension=extension)

        form = None
        if kind == "multipart/form-data":
            boundary = parse_options_header(request.headers["content-type"])[1].get(b"boundary")
            if not boundary:
                raise RequestError(400, "the multipart/form-data Content-Type has no boundary")
            form = _FormUpload(boundary, begin, upload)
        else:
            begin(filename, request.headers.get("content-type"))
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:  # a chunked body has no Content-Length to refuse it by
                raise RequestError(413, too_large)
            if form is not None:
                form.write(chunk)
            else:
                upload.write(chunk)
        upload.close()
        if form is not None and not form.found:
            raise RequestError(400, f"no {UPLOAD_FIELD!r} field in the form: send the audio as "
                                    f"-F {UPLOAD_FIELD}=@song.mp3")
        if form is not None and not form.ended:
            raise RequestError(400, "the multipart/form-data body ends before its closing boundary")
        if upload.size == 0:
            raise RequestError(400, "the upload is empty: send the audio file's bytes")
        return named["shown"], named["extension"]

    def _refuse_type(self, shown: str, name: str | None, content_type: str | None, options: dict) -> None:
        from genreslice.training.predict import AudioInput

        extensions = ", ".join(sorted(AUDIO_EXTENSIONS))
        said = []
        if name:
            said.append(f"the file name {shown!r} has no audio extension ({extensions})")
        said.append(f"the Content-Type {media_type(content_type)!r} names no audio format" if content_type
                    else "there is no Content-Type")
        reason = (f"unknown audio type: {' and '.join(said)}; name the file (the filename query parameter, for a "
                  "raw body) or send a Content-Type such as audio/mpeg or audio/wav")
        record = self.record_of(self.classifier.decode(AudioInput(Path(shown), shown, problem=reason),
                                                       vote=options["vote"]), **options)
        raise RequestError(422, f"{shown}: {reason}", record)


def make_app(service: ClassifyService) -> FastAPI:
    """The FastAPI application answering ``POST /classify``, ``GET /health`` and ``GET /model`` for ``service``."""
    app = FastAPI(title="genreslice", version=__version__,
                  description="Music genre recognition: classify an audio file by voting over its spectrogram "
                              "slices, as `genreslice predict --format json` does.")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:  # 404, 405
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(part) for part in problem.get('loc', ())[1:]) or 'request'}: "
                    f"{problem.get('msg', 'invalid')} (received {problem.get('input')!r})"
                    for problem in err.errors()]
        return error_response(400, "bad query parameter: " + "; ".join(problems))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, err: Exception) -> JSONResponse:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=err)
        return error_response(500, INTERNAL_ERROR)

    @app.get("/health", summary="the server is up: the model's name, its number of classes, model calls so far")
    async def health() -> dict:
        return service.health()

    @app.get("/model", summary="the model's card (classes, task, spectrogram settings) and the server's limits")
    async def model() -> dict:
        return service.model()

    @app.post("/classify", summary="the genre of one audio file: the record of `genreslice predict --format json`")
    async def classify(
        request: Request,
        vote: str = Query("majority", description="majority or mean, as predict's --vote"),
        min_share: float = Query(0.0, ge=0.0, le=1.0, description="answer unsure below this score (0: never)"),
        top: int = Query(3, ge=1, le=1000, description="a multi-label model's top N tags in the record"),
        filename: str | None = Query(None, max_length=4096,
                                     description="the file's name, for a raw body: its extension gives the format"),
    ) -> JSONResponse:
        return await service.classify(request, vote=vote, min_share=min_share, top=top, filename=filename)

    return app


def listening_socket(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> socket.socket:
    """A TCP socket bound to ``host`` and ``port`` (0: a free port) and listening.

    Raises
    ------
    ServeError
        The address cannot be resolved or is in use.
    """
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as err:
        raise ServeError(f"--host {host!r} is not an address of this machine: {err}") from err
    sock = socket.socket(family, kind, protocol)
    try:
        if os.name == "posix":  # a restarted server may take the port its predecessor left in TIME_WAIT
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        hint = "; choose another --port (0 picks a free one)" if port else ""
        raise ServeError(f"cannot listen on {host} port {port}: {err.strerror or err}{hint}") from err
    return sock


def socket_url(sock: socket.socket) -> str:
    """``http://HOST:PORT`` of a listening socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(service: ClassifyService, sock: socket.socket) -> None:
    """Answer requests on ``sock`` until a stop signal (SIGINT, SIGTERM) or KeyboardInterrupt.

    uvicorn catches SIGINT and SIGTERM while it runs: it stops taking requests, gives those in flight
    :data:`SHUTDOWN_GRACE_S` to finish, then raises the signal again for the caller's handler (a second Ctrl-C
    stops it at once). The caller closes ``service`` and ``sock``.
    """
    config = uvicorn.Config(make_app(service), log_config=None, lifespan="off", ws="none",
                            server_header=False,
                            timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
    uvicorn.Server(config).run(sockets=[sock])
