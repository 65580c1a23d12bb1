from __future__ import annotations

import json

import pytest

from genreslice.pipeline.journal import JournalWriter, load_journal, record_problem


def record(path: str, status: str = "ok", **fields) -> dict:
    """A well-formed journal record, as the build writes them."""
    return {"path": path, "track_id": "t" + str(abs(hash(path)) % 10_000), "status": status, "reason": "",
            "duration_s": "3.00", "n_slices": 1 if status == "ok" else 0, "size": 100, "mtime_ns": 5,
            "stage": "audio", **fields}


def test_torn_last_line_is_dropped_and_cut(tmp_path):
    path = tmp_path / "journal.jsonl"
    with JournalWriter(path) as journal:
        journal.append(record("a.mp3"))
        journal.append(record("b é.mp3", "failed"))
    with open(path, "ab") as handle:
        handle.write(b'{"path": "c.mp3", "sta')  # killed mid-write
    records = load_journal(path)
    assert sorted(records) == ["a.mp3", "b é.mp3"]
    with JournalWriter(path) as journal:
        journal.append(record("c.mp3"))
    lines = path.read_text().splitlines()
    assert [json.loads(line)["path"] for line in lines] == ["a.mp3", "b é.mp3", "c.mp3"]


def test_last_record_for_a_path_wins_and_missing_file_is_empty(tmp_path):
    assert load_journal(tmp_path / "none.jsonl") == {}
    path = tmp_path / "journal.jsonl"
    with JournalWriter(path) as journal:
        journal.append(record("a.mp3", "failed"))
        journal.append(record("a.mp3"))
    assert load_journal(path)["a.mp3"]["status"] == "ok"


def test_undecodable_path_round_trips(tmp_path):
    path = tmp_path / "journal.jsonl"
    odd = b"caf\xe9.mp3".decode("utf-8", errors="surrogateescape")
    with JournalWriter(path) as journal:
        journal.append(record(odd))
    assert list(load_journal(path)) == [odd]


@pytest.mark.parametrize("change, problem", [
    ({"status": None}, "status is None, not text"),
    ({"status": "done"}, "status is 'done', not one of ok, failed, skipped, too_short"),
    ({"track_id": None}, "track_id is None, not text"),
    ({"track_id": "../../etc"}, "track_id '../../etc' cannot name a folder"),
    ({"n_slices": "eleven"}, "n_slices is 'eleven', not a whole number"),
    ({"n_slices": True}, "n_slices is True, not a whole number"),
    ({"n_slices": 0}, "n_slices is 0 for status ok"),
    ({"size": 1.5}, "size is 1.5, not a whole number"),
    ({"slice_bytes": [10, 0]}, "slice_bytes is not 1 positive sizes"),
    ({"path": ""}, "path is empty"),
])
def test_a_damaged_record_is_named_and_dropped_with_earlier_records_of_its_track(tmp_path, change, problem, caplog):
    assert record_problem(record("a.mp3")) == ""
    assert record_problem({**record("a.mp3"), **change}) == problem
    path = tmp_path / "journal.jsonl"
    with JournalWriter(path) as journal:
        journal.append(record("a.mp3"))
        journal.append(record("b.mp3"))
        journal.append({**record("a.mp3"), **change})
    assert list(load_journal(path)) == ["b.mp3"]  # a.mp3's track is not trusted any more: it is rendered again
    assert f"ignoring line 3 of {path} ({problem}); its track will be built again" in caplog.text


def test_a_line_that_is_not_json_is_skipped_and_later_lines_count(tmp_path):
    path = tmp_path / "journal.jsonl"
    with JournalWriter(path) as journal:
        journal.append(record("a.mp3"))
    with open(path, "ab") as handle:
        handle.write(b"\x00\xff not json\n")
    with JournalWriter(path) as journal:
        journal.append(record("b.mp3"))
    assert list(load_journal(path)) == ["a.mp3", "b.mp3"]


def test_a_journal_with_damaged_lines_is_rewritten_once_they_are_reported(tmp_path, caplog):
    path = tmp_path / "journal.jsonl"
    with JournalWriter(path) as journal:
        journal.append(record("a.mp3"))
        journal.append({**record("b.mp3"), "status": None})
        journal.append(record("c.mp3"))
    assert list(load_journal(path)) == ["a.mp3", "c.mp3"] and len(path.read_bytes().splitlines()) == 3
    assert list(load_journal(path, rewrite_damaged=True)) == ["a.mp3", "c.mp3"]
    assert [json.loads(line) for line in path.read_bytes().splitlines()] == [record("a.mp3"), record("c.mp3")]
    caplog.clear()
    assert list(load_journal(path)) == ["a.mp3", "c.mp3"] and "ignoring" not in caplog.text


def test_a_damaged_digest_or_fingerprint_is_ignored_not_a_reason_to_build_again(tmp_path):
    """They are caches of what the file and its slices give: the record stands without them (the build computes the
    fingerprint again from the slices), where a damaged status would make the track be rendered again."""
    from genreslice.pipeline.journal import JournalRecord

    path = tmp_path / "journal.jsonl"
    lines = [record("a.mp3", sha256="NOT-A-DIGEST", fingerprint="text"),
             record("b.mp3", sha256="ab" * 32, fingerprint={"version": 1})]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    records = {key: JournalRecord.from_json(value) for key, value in load_journal(path).items()}  # none dropped
    assert sorted(records) == ["a.mp3", "b.mp3"]
    assert (records["a.mp3"].sha256, records["a.mp3"].fingerprint) == (None, None)
    assert (records["b.mp3"].sha256, records["b.mp3"].fingerprint) == ("ab" * 32, {"version": 1})
    assert "sha256" not in records["a.mp3"].to_json() and records["b.mp3"].to_json()["sha256"] == "ab" * 32
