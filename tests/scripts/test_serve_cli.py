"""``genreslice serve`` as a client sees it: the command runs in a process of its own, started here, and a real HTTP
client (httpx) talks to it; every answer is compared with what ``genreslice predict --format json`` says of the
same file."""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from genreslice.scripts.cli import main  # noqa: E402
from tests.helpers import ends_within, genreslice, help_of, stalling_sox, synth, toy_song, wait_for_pid  # noqa: E402

ROOT = Path(__file__).parents[2]
TRUTH = {"a jazz song.mp3": "Jazz", "b 'electro' song.mp3": "Electronic", "c rock song.mp3": "Rock"}
#: A name that a shell, an option parser or an ASCII-only path would trip on.
HOSTILE = "-x $(touch pwned) 'café' ü.mp3"
START = re.compile(r"genreslice serve: listening on (http://\S+) \(model: .*; uploads in (.+)\); Ctrl-C stops$")
MB = 1 << 20


class Server:
    """``genreslice serve`` in a process group of its own; its standard error is read as it comes."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.lines: list[str] = []
        self.url = ""
        self.uploads = Path()
        self._started = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)
            match = START.match(line.rstrip("\n"))
            if match:
                self.url, self.uploads = match[1], Path(match[2])
                self._started.set()
        self._started.set()  # ended before it started

    def wait_started(self, seconds: float = 120) -> Server:
        self._started.wait(seconds)
        if not self.url:
            self.kill()
            raise AssertionError(f"genreslice serve did not start:\n{self.stderr}")
        return self

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def stop(self, signum: int, seconds: float = 20) -> float:
        """Send ``signum``; the seconds until the process ended."""
        sent = time.monotonic()
        os.kill(self.process.pid, signum)
        try:
            self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"genreslice serve did not end within {seconds} s of "
                                 f"{signal.Signals(signum).name}:\n{self.stderr}") from None
        return time.monotonic() - sent

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start_server(model_dir: Path, *options: str, env: dict | None = None) -> Server:
    process = subprocess.Popen([sys.executable, "-m", "genreslice", "serve", str(model_dir), "--port", "0",
                                *options], cwd=ROOT, env=env, text=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    return Server(process).wait_started()


def no_traceback(response: httpx.Response) -> None:
    response.read()
    assert "Traceback" not in response.text and 'File "' not in response.text, response.text


@pytest.fixture(scope="module")
def server(toy_model):
    """The toy model served with a 1 MB upload limit, two decoding threads."""
    running = start_server(toy_model / "model", "--max-upload-mb", "1", "--workers", "2", "--timeout", "60")
    yield running
    running.kill()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60, event_hooks={"response": [no_traceback]}) as session:
        yield session


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    """Three new 10-second songs of the toy genres."""
    root = tmp_path_factory.mktemp("served songs")
    for (name, genre), pitch in zip(TRUTH.items(), (345, 456, 567)):
        toy_song(root / name, genre, pitch, seconds=10.0)
    return root


def predicted(model_dir: Path, paths: list[Path], *options: str) -> dict[str, dict]:
    """What ``genreslice predict --format json`` prints for ``paths``, by file name."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["predict", str(model_dir), *map(str, paths), "--format", "json", "--no-progress", *options])
    return {Path(record["path"]).name: record for record in map(json.loads, out.getvalue().splitlines())}


@pytest.fixture(scope="module")
def expected(toy_model, songs):
    return predicted(toy_model / "model", sorted(songs.iterdir()))


def as_uploaded(record: dict, name: str) -> dict:
    return {**record, "path": name}


def uploads_left(server: Server) -> list[str]:
    return sorted(path.name for path in server.uploads.iterdir())


def test_help_explains_every_option():
    text = " ".join(help_of("serve", 8).split())
    assert "POST /classify" in text and "genreslice[serve]" in text and "413" in text


def test_a_folder_that_is_not_a_model_is_refused_in_one_line(tmp_path):
    result = genreslice("serve", str(tmp_path), "--port", "0")
    assert result.returncode == 1
    assert result.stderr == (f"genreslice serve: error: MODEL_DIR {str(tmp_path)!r} is not a model folder (no "
                             "model.json); give the folder 'genreslice train' made. usage: genreslice serve "
                             "[OPTIONS] MODEL_DIR\n")


def test_without_the_web_packages_it_says_what_to_install(toy_model):
    code = ("import sys; sys.modules['fastapi'] = None; from genreslice.scripts.cli import main; "
            f"sys.exit(main(['serve', {str(toy_model / 'model')!r}, '--port', '0']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 1
    assert result.stderr == ("genreslice serve: error: the HTTP server needs FastAPI, uvicorn and python-multipart "
                             "(fastapi is missing): pip install 'genreslice[serve]'\n")


def test_health_and_model_card(server, client, toy_model):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"] == "model" and health["classes"] == 3
    card = client.get("/model").json()
    record = json.loads((toy_model / "model/model.json").read_text())
    assert card["classes"] == record["classes"] == sorted(TRUTH.values())
    assert card["task"] == "single" and card["spectrogram"] == record["spectrogram"]
    assert card["server"] == {"max_upload_mb": 1.0, "max_upload_bytes": MB, "timeout_s": 60.0, "workers": 2,
                              "batch_size": 256, "max_concurrent": 32}
    assert server.uploads.stat().st_mode & 0o777 == 0o700
    assert server.url.startswith("http://127.0.0.1:")  # this machine only, unless told otherwise


def test_a_song_as_a_form_or_as_the_body_gets_predicts_record(client, songs, expected):
    for name in TRUTH:
        data = (songs / name).read_bytes()
        form = client.post("/classify", files={"file": (name, data, "audio/mpeg")})
        assert form.status_code == 200 and form.json() == as_uploaded(expected[name], name)
        assert form.json()["genre"] == TRUTH[name]
        raw = client.post("/classify", content=data, params={"filename": name},
                          headers={"Content-Type": "application/octet-stream"})
        assert raw.status_code == 200 and raw.json() == as_uploaded(expected[name], name)
    # No name: the Content-Type gives the format.
    unnamed = client.post("/classify", content=(songs / "c rock song.mp3").read_bytes(),
                          headers={"Content-Type": "audio/mpeg"})
    assert unnamed.json() == as_uploaded(expected["c rock song.mp3"], "upload.mp3")


def test_vote_and_min_share_are_predicts(client, toy_model, songs):
    wanted = predicted(toy_model / "model", sorted(songs.iterdir()), "--vote", "mean", "--min-share", "0.99")
    assert any(record["unsure"] for record in wanted.values())  # the threshold shows
    for name in TRUTH:
        answer = client.post("/classify", params={"vote": "mean", "min_share": "0.99"},
                             files={"file": (name, (songs / name).read_bytes())})
        assert answer.json() == as_uploaded(wanted[name], name)


def test_names_are_shown_without_folders_and_never_reach_a_shell(client, server, songs, expected):
    data = (songs / "a jazz song.mp3").read_bytes()
    for sent, shown in ((HOSTILE, HOSTILE), ("../../etc/passwd.mp3", "passwd.mp3"),
                        ("C:\\music\\song.mp3", "song.mp3")):
        answer = client.post("/classify", files={"file": (sent, data, "audio/mpeg")})
        assert answer.status_code == 200 and answer.json() == as_uploaded(expected["a jazz song.mp3"], shown)
    answer = client.post("/classify", content=data, params={"filename": "../a\tb\x07.mp3"},
                         headers={"Content-Type": "application/octet-stream"})
    assert answer.json() == as_uploaded(expected["a jazz song.mp3"], "a?b?.mp3")
    assert not (ROOT / "pwned").exists() and not (server.uploads.parent / "pwned").exists()


def test_bad_audio_is_422_with_its_record(client, server, tmp_path):
    # Random bytes, but no 0xFF: an MP3 frame starts with one, and SoX decodes a stray frame of noise as audio.
    noise = np.random.default_rng(0).integers(0, 255, 50_000, dtype=np.uint8).tobytes()
    answer = client.post("/classify", files={"file": ("noise.mp3", noise, "audio/mpeg")})
    assert answer.status_code == 422
    body = answer.json()
    assert body["record"]["status"] == "failed" and body["record"]["path"] == "noise.mp3"
    assert body["record"]["genre"] is None and "SoX" in body["record"]["reason"]
    assert body["error"].startswith("noise.mp3: cannot be classified: SoX") and "\n" not in body["error"]
    assert str(server.uploads) not in answer.text  # the server's folders stay its own

    short = synth(tmp_path / "short.wav", "1s")  # one sample: not one spectrogram column
    answer = client.post("/classify", files={"file": ("short.wav", short.read_bytes())})
    assert answer.status_code == 422 and answer.json()["record"]["status"] == "too_short"
    assert "too short" in answer.json()["error"]

    answer = client.post("/classify", files={"file": ("notes.txt", b"la la la", "text/plain")})
    assert answer.status_code == 422 and "unknown audio type" in answer.json()["error"]
    assert answer.json()["record"]["path"] == "notes.txt"
    answer = client.post("/classify", content=b"\xff\xfb" * 100, headers={"Content-Type": "application/octet-stream"})
    assert answer.status_code == 422 and "filename query parameter" in answer.json()["error"]
    assert uploads_left(server) == []


@pytest.mark.parametrize("request_options, status, words", [
    ({"content": b"", "headers": {"Content-Type": "audio/mpeg"}}, 400, "empty"),
    ({"files": {"file": ("empty.mp3", b"")}}, 400, "empty"),
    ({"files": {"song": ("a.mp3", b"ID3")}}, 400, "no 'file' field"),
    ({"content": b"--xx\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\n\r\nID3",
      "headers": {"Content-Type": "multipart/form-data; boundary=xx"}}, 400, "ends before its closing boundary"),
    ({"content": b"hello", "headers": {"Content-Type": "text/plain"}}, 415, "Content-Type 'text/plain'"),
    ({"content": b"hello", "headers": {"Content-Type": ""}}, 415, "no Content-Type"),
    ({"files": {"file": ("a.mp3", b"ID3")}, "params": {"vote": "loudest"}}, 400, "vote='loudest'"),
    ({"files": {"file": ("a.mp3", b"ID3")}, "params": {"min_share": "2"}}, 400, "min_share"),
    ({"files": {"file": ("a.mp3", b"ID3")}, "params": {"top": "many"}}, 400, "top"),
])
def test_bad_requests_get_a_clear_4xx(client, server, request_options, status, words):
    answer = client.post("/classify", **request_options)
    assert answer.status_code == status and words in answer.json()["error"], answer.text
    assert uploads_left(server) == []


def test_unknown_paths_and_methods_answer_json(client):
    assert client.get("/nothing").json() == {"error": "Not Found"}
    assert client.get("/classify").status_code == 405 and "error" in client.get("/classify").json()


def test_an_upload_over_the_limit_is_413_by_its_length_or_as_it_streams(client, server, songs, expected):
    big = os.urandom(2 * MB)
    answer = client.post("/classify", content=big, headers={"Content-Type": "audio/mpeg"})
    assert answer.status_code == 413 and "1 MB (--max-upload-mb)" in answer.json()["error"]

    # Refused by its Content-Length before a byte of it is read: the client sends the headers alone.
    with contextlib.closing(http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=30)) as connection:
        connection.putrequest("POST", "/classify")
        connection.putheader("Content-Type", "audio/mpeg")
        connection.putheader("Content-Length", str(2 * MB))
        connection.endheaders()
        refused = connection.getresponse()
        assert refused.status == 413 and "larger than" in json.loads(refused.read())["error"]

    def chunks():  # no Content-Length: the server counts the bytes
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    answer = client.post("/classify", content=chunks(), headers={"Content-Type": "audio/mpeg"})
    assert answer.status_code == 413 and "larger than" in answer.json()["error"]
    form = client.post("/classify", files={"file": ("big.mp3", big)})
    assert form.status_code == 413
    assert uploads_left(server) == []
    name = "a jazz song.mp3"  # the server goes on
    answer = client.post("/classify", files={"file": (name, (songs / name).read_bytes())})
    assert answer.json() == as_uploaded(expected[name], name)


def test_concurrent_requests_are_all_answered_right(client, server, songs, expected):
    names = [list(TRUTH)[index % 3] for index in range(8)]
    before = client.get("/health").json()

    def post(name: str) -> httpx.Response:
        return client.post("/classify", files={"file": (name, (songs / name).read_bytes())})

    with cf.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, names))
    assert [answer.status_code for answer in answers] == [200] * 8
    assert [answer.json() for answer in answers] == [as_uploaded(expected[name], name) for name in names]
    after = client.get("/health").json()
    assert after["requests_classified"] - before["requests_classified"] == 8
    assert after["slices_classified"] - before["slices_classified"] == 8 * 3
    assert uploads_left(server) == []


def test_a_request_past_its_timeout_is_504_and_ctrl_c_stops_the_server(toy_model, songs, tmp_path):
    """A SoX that never ends (as on a very long file): the request is answered when its time is up and its SoX
    killed; Ctrl-C then stops the server promptly even with a request stuck in SoX, and removes the uploads."""
    env, pid_file = stalling_sox(tmp_path / "bin")
    temporary = tmp_path / "tmp ZZSTALLZZ"  # the uploads' path holds the stalling SoX's marker
    temporary.mkdir()
    stalling = start_server(toy_model / "model", "--timeout", "2", "--workers", "1", "--max-concurrent", "1",
                            env={**env, "TMPDIR": str(temporary)})
    try:
        assert stalling.uploads.parent == temporary
        data = (songs / "a jazz song.mp3").read_bytes()
        pool = cf.ThreadPoolExecutor(1)
        with httpx.Client(base_url=stalling.url, timeout=60,
                          event_hooks={"response": [no_traceback]}) as stalled_client:
            started = time.monotonic()
            answer = stalled_client.post("/classify", files={"file": ("long.mp3", data)})
            assert answer.status_code == 504 and "within 2 s" in answer.json()["error"]
            assert time.monotonic() - started < 10
            # Killed by the request's end, not by SoX's own time limit (10 s later).
            assert ends_within(wait_for_pid(pid_file), 3), "the timed-out request's SoX kept running"
            assert uploads_left(stalling) == []
            pid_file.unlink()
            stuck = pool.submit(stalled_client.post, "/classify", files={"file": ("long.mp3", data)})
            sox = wait_for_pid(pid_file)
            # --max-concurrent 1: another upload is refused at once, in JSON; idle connections do not count.
            address = urllib.parse.urlsplit(stalling.url)
            idle = [socket.create_connection((address.hostname, address.port)) for _ in range(3)]
            with httpx.Client(base_url=stalling.url, timeout=30) as other:
                busy = other.post("/classify", files={"file": ("other.mp3", data)})
                assert busy.status_code == 503 and "--max-concurrent" in busy.json()["error"]
                assert other.get("/health").status_code == 200
            for connection in idle:
                connection.close()
            seconds = stalling.stop(signal.SIGINT)
            with contextlib.suppress(httpx.HTTPError):  # answered or cut off, as the server stopped
                stuck.result(30)
        pool.shutdown()
        assert stalling.process.returncode == 130 and seconds < 12, stalling.stderr
        assert ends_within(sox, 5), "SoX outlived the server"
        assert not stalling.uploads.exists()
        assert "genreslice serve: interrupted." in stalling.stderr and "Traceback" not in stalling.stderr
    finally:
        stalling.kill()


def test_a_removed_upload_folder_is_replaced_by_a_new_private_one(server, client, songs, expected):
    """A cleaner of the temporary folder removes the upload folder of a long-running server: the next upload gets a
    new folder of its own (never one someone else could have made at the old name)."""
    server.uploads.rmdir()
    answer = client.post("/classify", files={"file": ("a jazz song.mp3", (songs / "a jazz song.mp3").read_bytes())})
    assert answer.status_code == 200, answer.text
    assert answer.json() == as_uploaded(expected["a jazz song.mp3"], "a jazz song.mp3")
    match = re.search(r"uploads now go to (\S+)", server.stderr)
    assert match and Path(match[1]) != server.uploads and not server.uploads.exists()
    server.uploads = Path(match[1])
    assert server.uploads.is_dir() and server.uploads.stat().st_mode & 0o777 == 0o700
    assert uploads_left(server) == []


def test_sigterm_stops_the_server_and_removes_its_uploads(server, client):
    """Last: after every request above, nothing was left in the upload folder; stopping removes it."""
    assert client.get("/health").status_code == 200
    assert server.uploads.is_dir() and uploads_left(server) == []
    seconds = server.stop(signal.SIGTERM)
    assert server.process.returncode == 128 + signal.SIGTERM and seconds < 10, server.stderr
    assert not server.uploads.exists()
    assert "stopped by SIGTERM" in server.stderr and "Traceback" not in server.stderr, server.stderr
