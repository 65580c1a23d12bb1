"""The parts of ``genreslice serve`` below the HTTP server: the model thread that batches requests, the upload files,
and the answer to a fault. (``tests/scripts/test_serve_cli.py`` runs the real server.)"""
from __future__ import annotations

import asyncio
import logging
import stat
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from genreslice.pipeline.spectrogram import AudioSlices  # noqa: E402
from genreslice.training.serving import (  # noqa: E402
    INTERNAL_ERROR,
    ClassifyService,
    ModelBatcher,
    ServeSettings,
    make_app,
    shown_name,
    upload_extension,
)


def slices_of(value: int, count: int) -> np.ndarray:
    """``count`` 4x4 slices filled with ``value``, so a probability row tells whose slice it was."""
    return np.full((count, 4, 4), value, dtype=np.uint8)


class GatedModel:
    """Stands in for the network: records the size of each call, and holds its first call until released, so
    that requests pile up behind it as they do behind a busy model."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.release = threading.Event()

    def __call__(self, slices: np.ndarray) -> np.ndarray:
        self.calls.append([int(value) for value in slices[:, 0, 0]])
        if len(self.calls) == 1:
            self.release.wait(30)
        return np.stack([slices[:, 0, 0].astype(np.float32), np.zeros(len(slices), np.float32)], axis=1)

    def wait_for_calls(self, count: int) -> None:
        deadline = time.monotonic() + 30
        while len(self.calls) < count:
            assert time.monotonic() < deadline, self.calls
            time.sleep(0.005)


@pytest.fixture
def model():
    gated = GatedModel()
    yield gated
    gated.release.set()


def test_the_slices_of_the_waiting_requests_share_one_model_call(model):
    batcher = ModelBatcher(model, batch_size=100, wait_s=0)
    try:
        first = batcher.submit(slices_of(1, 2))
        model.wait_for_calls(1)  # the model is busy with the first request
        waiting = [batcher.submit(slices_of(value, 3)) for value in (2, 3, 4, 5)]
        model.release.set()
        assert first.result(30)[:, 0].tolist() == [1, 1]
        for value, future in zip((2, 3, 4, 5), waiting):
            assert future.result(30)[:, 0].tolist() == [value] * 3  # each request gets its own rows
        assert model.calls == [[1, 1], [2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5]]
        assert batcher.stats() == {"model_calls": 2, "requests_classified": 5, "slices_classified": 14,
                                   "mean_requests_per_call": 2.5, "mean_slices_per_call": 7.0}
    finally:
        batcher.close()


def test_a_call_holds_at_most_batch_size_slices_unless_one_request_has_more(model):
    batcher = ModelBatcher(model, batch_size=5, wait_s=0)
    try:
        batcher.submit(slices_of(1, 1))
        model.wait_for_calls(1)
        futures = [batcher.submit(slices_of(value, count)) for value, count in ((2, 2), (3, 2), (4, 2), (5, 7))]
        model.release.set()
        for future in futures:
            future.result(30)
        assert [len(call) for call in model.calls] == [1, 4, 2, 7]  # 2 + 2, then 2 (2 + 7 is over 5), then 7
        assert [call[0] for call in model.calls] == [1, 2, 4, 5]  # in the order they came
    finally:
        batcher.close()


def test_a_call_waits_briefly_for_requests_about_to_come(model):
    model.release.set()
    batcher = ModelBatcher(model, batch_size=100, wait_s=0.5)
    try:
        first = batcher.submit(slices_of(1, 1))
        time.sleep(0.05)
        second = batcher.submit(slices_of(2, 1))
        first.result(30), second.result(30)
        assert model.calls == [[1, 2]]
    finally:
        batcher.close()


def test_a_cancelled_request_is_left_out_and_a_model_error_reaches_each_request(model):
    batcher = ModelBatcher(model, batch_size=100, wait_s=0)
    try:
        batcher.submit(slices_of(1, 1))
        model.wait_for_calls(1)
        gone, kept = batcher.submit(slices_of(2, 1)), batcher.submit(slices_of(3, 1))
        assert gone.cancel()  # its request ran out of time
        model.release.set()
        assert kept.result(30)[:, 0].tolist() == [3]
        assert model.calls[-1] == [3]
    finally:
        batcher.close()

    def broken(slices):
        raise RuntimeError("out of memory")

    failing = ModelBatcher(broken, batch_size=10)
    try:
        futures = [failing.submit(slices_of(1, 1)) for _ in range(3)]
        for future in futures:
            with pytest.raises(RuntimeError, match="out of memory"):
                future.result(30)
    finally:
        failing.close()
    with pytest.raises(RuntimeError, match="stopped"):
        failing.submit(slices_of(1, 1))


def ask(app, requests: list[tuple[str, str, dict]]) -> list[httpx.Response]:
    """Send ``(method, path, options)`` requests to the application in this process, one after another."""

    async def send() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [await client.request(method, path, **options) for method, path, options in requests]

    return asyncio.run(send())


def test_names_and_formats_of_uploads():
    assert shown_name("../../etc/passwd.mp3", ".mp3") == "passwd.mp3"
    assert shown_name("C:\\music\\song.flac", ".flac") == "song.flac"
    assert shown_name("bell\x07\n.mp3", ".mp3") == "bell??.mp3"
    assert shown_name(None, ".wav") == "upload.wav" and shown_name("..", ".wav") == "upload.wav"
    long = shown_name("x" * 1000 + ".mp3", ".mp3")
    assert len(long) == 255 and long.endswith("x.mp3")
    assert upload_extension("Song.MP3", None) == ".mp3"
    assert upload_extension("song.txt", "audio/x-wav; rate=44100") == ".wav"  # the name says nothing: the type
    assert upload_extension(None, "audio/mp4") == ".m4a" and upload_extension("song", "audio/flac") == ".flac"
    assert upload_extension("notes.txt", "text/plain") is None and upload_extension(None, None) is None


class FakeClassifier:
    """What the service needs of a :class:`~genreslice.training.predict.Classifier`, without a network."""

    classes = ("Jazz", "Rock")
    batch_size = 8
    multilabel = False

    def __init__(self, root: Path, decode) -> None:
        self.trained = SimpleNamespace(model_dir=root / "my model", classes=self.classes,
                                       record={"task": "single", "spectrogram": {"slice_size": 4}})
        self.decode = decode

    def check_options(self, *, vote: str, min_share: float) -> float:
        return float(min_share)

    def predict_slices(self, slices: np.ndarray) -> np.ndarray:
        return np.tile([0.25, 0.75], (len(slices), 1))

    def predictions(self, decoded, probabilities, *, vote, min_share):
        return [SimpleNamespace(path=item.shown, rows=probabilities.tolist()) for item, _ in decoded]


def record_of(song, **options) -> dict:
    return {"path": song.path, "rows": song.rows, **options}


def test_an_upload_is_a_private_file_removed_after_its_request(tmp_path):
    seen = []

    def decode(item, *, vote, processes):
        info = item.path.stat()
        seen.append((item.path, stat.S_IMODE(info.st_mode), stat.S_IMODE(item.path.parent.stat().st_mode),
                     item.path.read_bytes()))
        return AudioSlices(slices=slices_of(0, 2), duration_s=1.0, truncated=False)

    service = ClassifyService(FakeClassifier(tmp_path, decode), ServeSettings(workers=2), record_of=record_of,
                              upload_root=tmp_path)
    try:
        answer, health = ask(make_app(service), [("POST", "/classify", {"files": {"file": ("a song.flac", b"fLaC")}}),
                                                 ("GET", "/health", {})])
        assert answer.status_code == 200
        assert answer.json() == {"path": "a song.flac", "rows": [[0.25, 0.75]] * 2, "vote": "majority",
                                 "min_share": 0.0, "top": 3}
        assert health.json() == {"status": "ok", "model": "my model", "classes": 2, "model_calls": 1,
                                 "requests_classified": 1, "slices_classified": 2, "mean_requests_per_call": 1.0,
                                 "mean_slices_per_call": 2.0}
        [(path, mode, folder_mode, content)] = seen
        assert path.parent == service.upload_dir and path.parent.parent == tmp_path and path.suffix == ".flac"
        assert (mode, folder_mode, content) == (0o600, 0o700, b"fLaC")
        assert not path.exists() and list(service.upload_dir.iterdir()) == []
    finally:
        service.close()
    assert not service.upload_dir.exists()


def test_a_fault_is_a_500_with_no_traceback_and_is_logged(tmp_path, caplog):
    def decode(item, *, vote, processes):
        raise RuntimeError(f"disk on fire under {item.path}")

    service = ClassifyService(FakeClassifier(tmp_path, decode), ServeSettings(), record_of=record_of,
                              upload_root=tmp_path)
    try:
        with caplog.at_level(logging.ERROR, logger="genreslice.training.serving"):
            [answer] = ask(make_app(service), [("POST", "/classify", {"content": b"RIFF",
                                                                      "headers": {"Content-Type": "audio/wav"}})])
        assert answer.status_code == 500 and answer.json() == {"error": INTERNAL_ERROR}
        assert "fire" not in answer.text and "Traceback" not in answer.text
        assert "disk on fire" in caplog.text and "Traceback" in caplog.text
        assert list(service.upload_dir.iterdir()) == []
    finally:
        service.close()
