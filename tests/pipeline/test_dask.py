"""Builds on a real Dask ``LocalCluster`` of 2 single-threaded worker processes: same outputs as the process pool,
worker deaths survived, a track that kills its workers recorded as failed."""
from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from genreslice.genre_getters import Id3LabelSource
from genreslice.pipeline import layout
from genreslice.pipeline.build import BuildConfig, build_dataset
from genreslice.pipeline.errors import ExecutorError, SoxUnavailableError
from genreslice.pipeline.executors import DaskExecutor, dask_cluster
from genreslice.pipeline.sox import SoxInfo
from tests.helpers import LABELS, read_csv, tagged_mp3, tree_digest

pytest.importorskip("distributed", reason="the Dask tests need genreslice[dask] (make test installs it)")


@pytest.fixture(scope="module")
def cluster():
    with dask_cluster(workers=2) as connected:
        yield connected


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sox_info):
    """Twelve 6-s tracks of three genres by six artists, one with a hostile name, plus one too short and one
    random-byte file."""
    root = tmp_path_factory.mktemp("dask-corpus")
    for index in range(12):
        genre = ("Rock", "Jazz", "Electronic")[index % 3]
        name = f"{genre}/it's $(touch pwned) {index:02d}.mp3" if index == 5 else f"{genre}/track {index:02d}.mp3"
        tagged_mp3(root / name, 6.0, genre, f"Artist {index % 6}", "sine", f"{220 + 45 * index}")
    tagged_mp3(root / "Rock/short.mp3", 1.0, "Rock", "Artist 0")
    (root / "Rock/noise.mp3").write_bytes(os.urandom(4096))
    return root


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory, sox_info):
    """The same corpus built on the default process pool."""
    out = tmp_path_factory.mktemp("pool") / "out"
    build_dataset(corpus, out, LABELS, BuildConfig(workers=2), sox=sox_info)
    return out


def wrapped_sox(folder: Path, sox_info, body: str) -> SoxInfo:
    """A SoX wrapper script that runs ``body`` (shell, with ``$@`` the SoX arguments) before the real SoX."""
    wrapper = folder / "bin" / "sox"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text(f"#!/bin/sh\n{body}\nexec {sox_info.path} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return SoxInfo(path=os.fspath(wrapper), version=sox_info.version, formats=sox_info.formats)


def test_dask_build_is_byte_identical_to_the_process_pool(cluster, corpus, reference, tmp_path, sox_info):
    out = tmp_path / "out"
    summary = build_dataset(corpus, out, LABELS, BuildConfig(workers=cluster.threads),
                            executor_factory=cluster.executor, sox=sox_info)
    assert summary.status_counts == {"ok": 12, "failed": 1, "skipped": 0, "too_short": 1}  # random bytes: failed
    assert tree_digest(out) == tree_digest(reference)
    assert len(tree_digest(out)) == 4 + summary.n_slices  # the four tables and every slice
    journals = [sorted((folder / layout.STATE_DIR / "journal.jsonl").read_text().splitlines())
                for folder in (out, reference)]
    assert len(journals[0]) == 13 and journals[0] == journals[1]  # the same resume journal, in completion order
    assert not (corpus.parent / "pwned").exists() and not Path("pwned").exists()


def test_dask_build_resumes_a_process_pool_build(cluster, corpus, reference, tmp_path, sox_info):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    victims = [row for row in read_csv(out / "tracks.csv") if row["status"] == "ok"][:3]
    for row in victims:  # as if the pool build had been killed before these tracks
        shutil.rmtree(out / layout.track_slice_dir(row["track_id"]))
    summary = build_dataset(corpus, out, LABELS, BuildConfig(workers=cluster.threads),
                            executor_factory=cluster.executor, sox=sox_info)
    assert summary.processed == 3
    assert tree_digest(out) == tree_digest(reference)


def test_worker_killed_mid_track_is_rescheduled_and_the_build_completes(cluster, corpus, reference, tmp_path,
                                                                       sox_info):
    # The wrapper records which worker process runs SoX on track 07, then holds it there for a few seconds; the
    # test kills that worker process mid-track. Dask reschedules the track on a (restarted) worker.
    marker = tmp_path / "running"
    sox = wrapped_sox(tmp_path, sox_info, (
        'for arg in "$@"; do case "$arg" in *"track 07"*)\n'
        f'  echo $PPID >> "{marker}"; sleep 2;;\n'
        "esac; done"
    ))
    pids_before = set(cluster.client.run(os.getpid).values())
    killed = []

    def kill_the_worker_running_track_07() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (marker.exists() and marker.read_text().strip()):
            time.sleep(0.01)
        pid = int(marker.read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_the_worker_running_track_07)
    killer.start()
    out = tmp_path / "out"
    try:
        summary = build_dataset(corpus, out, LABELS, BuildConfig(workers=cluster.threads),
                                executor_factory=cluster.executor, sox=sox)
    finally:
        killer.join()
    assert killed and killed[0] in pids_before, "the test did not kill a worker of the cluster"
    assert len(marker.read_text().split()) == 2, "track 07 was not run again after its worker died"
    assert summary.status_counts == {"ok": 12, "failed": 1, "skipped": 0, "too_short": 1}  # random bytes: failed
    assert tree_digest(out) == tree_digest(reference)
    cluster.client.wait_for_workers(2, timeout=60)  # the nanny restarted it, for the tests that follow


def test_track_that_kills_its_workers_is_recorded_failed(cluster, corpus, tmp_path, sox_info):
    sox = wrapped_sox(tmp_path, sox_info,
                      'for arg in "$@"; do case "$arg" in *killer*) kill -9 $PPID; exit 1;; esac; done')
    audio = tmp_path / "audio"
    shutil.copytree(corpus, audio)
    tagged_mp3(audio / "killer.mp3", 3.0, "Rock", "Bad Actor")
    out = tmp_path / "out"
    summary = build_dataset(audio, out, LABELS, BuildConfig(workers=cluster.threads),
                            executor_factory=cluster.executor, sox=sox)
    rows = {row["path"]: row for row in read_csv(out / "tracks.csv")}
    assert rows["killer.mp3"]["status"] == "failed"
    assert rows["killer.mp3"]["reason"] == "the worker process died 2 times on this track"
    assert summary.status_counts == {"ok": 12, "failed": 2, "skipped": 0, "too_short": 1}
    cluster.client.wait_for_workers(2, timeout=60)


class LabelsWithReaderPid(Id3LabelSource):
    """Labels like id3, and appends the id of the process that read each file to ``log``."""

    def __init__(self, log: Path) -> None:
        super().__init__()
        self.log = log

    def label(self, path, rel_path):
        with open(self.log, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        return LABELS.label(path, rel_path)


def test_labels_are_read_on_the_cluster(cluster, corpus, reference, tmp_path, sox_info):
    log = tmp_path / "readers"
    out = tmp_path / "out"
    build_dataset(corpus, out, LabelsWithReaderPid(log), BuildConfig(workers=cluster.threads),
                  executor_factory=cluster.executor, sox=sox_info)
    readers = [int(pid) for pid in log.read_text().split()]
    assert len(readers) == 14 and set(readers) <= set(cluster.client.run(os.getpid).values())
    assert tree_digest(out) == tree_digest(reference)


def test_cancelling_dask_futures_on_shutdown(cluster):
    executor = DaskExecutor(cluster.client)
    slow = [executor.submit(time.sleep, 5) for _ in range(6)]
    started = time.monotonic()
    executor.shutdown(wait=True, cancel_futures=True)
    assert time.monotonic() - started < 5
    assert all(future.cancelled() for future in slow[2:])  # those not yet running at least
    assert executor is not None and cluster.client.submit(sum, [1, 2]).result() == 3  # the cluster stays up


def test_workers_must_have_the_same_sox(cluster, sox_info):
    cluster.check_sox(sox_info)
    with pytest.raises(SoxUnavailableError, match=rf"tcp://[^:]+:\d+: SoX {re.escape(sox_info.version)}, "
                                                   r"but this machine has SoX 0\.0\.0"):
        cluster.check_sox(SoxInfo(path=sox_info.path, version="0.0.0", formats=sox_info.formats))
    with pytest.raises(SoxUnavailableError, match="no-such-sox"):
        cluster.check_sox(SoxInfo(path="/no-such-sox", version=sox_info.version, formats=sox_info.formats))


def test_missing_dask_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ExecutorError, match=r"pip install 'genreslice\[dask\]'"):
        with dask_cluster(workers=1):
            pass


def test_unreachable_scheduler_is_a_clear_error(monkeypatch):
    monkeypatch.setattr("genreslice.pipeline.executors.DASK_CONNECT_TIMEOUT_S", 2)
    started = time.monotonic()
    with pytest.raises(ExecutorError, match="cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"):
        with dask_cluster(scheduler="tcp://127.0.0.1:9"):
            pass
    assert time.monotonic() - started < 30


def test_near_copies_on_dask_give_the_pool_build(cluster, tmp_path, sox_info):
    """Fingerprints made on the cluster's workers find the copies the process pool's find: the same groups, splits
    and files."""
    from genreslice.genre_getters import make_label_source
    from tests.helpers import music, near_copy

    audio = tmp_path / "music"
    for seed in range(3):
        music(audio / "Rock" / f"song {seed}.wav", seed)
    near_copy(audio / "Rock" / "song 0.wav", audio / "Rock" / "copy.mp3", "gain", "-3", "trim", "1", bitrate=96)
    outs = {}
    for name, factory in (("pool", None), ("dask", cluster.executor)):
        options = {"executor_factory": factory} if factory else {}
        build_dataset(audio, tmp_path / name, make_label_source("folders", audio_dir=audio),
                      BuildConfig(workers=2), sox=sox_info, **options)
        outs[name] = tmp_path / name
    groups = read_csv(outs["dask"] / "duplicates.csv")
    assert {row["path"] for row in groups} == {"Rock/song 0.wav", "Rock/copy.mp3"} and groups[0]["kind"] == "near"
    assert tree_digest(outs["dask"]) == tree_digest(outs["pool"])
