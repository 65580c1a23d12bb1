from __future__ import annotations

import json

from pipeline.journal import JournalWriter, load_journal


def test_torn_last_line_is_dropped_and_cut(tmp_path):
    path = tmp_path / "journal.jsonl"
    with JournalWriter(path) as journal:
        journal.append({"path": "a.mp3", "status": "ok"})
        journal.append({"path": "b é.mp3", "status": "failed"})
    with open(path, "ab") as handle:
        handle.write(b'{"path": "c.mp3", "sta')  # killed mid-write
    records = load_journal(path)
    assert sorted(records) == ["a.mp3", "b é.mp3"]
    with JournalWriter(path) as journal:
        journal.append({"path": "c.mp3", "status": "ok"})
    lines = path.read_text().splitlines()
    assert [json.loads(line)["path"] for line in lines] == ["a.mp3", "b é.mp3", "c.mp3"]


def test_last_record_for_a_path_wins_and_missing_file_is_empty(tmp_path):
    assert load_journal(tmp_path / "none.jsonl") == {}
    path = tmp_path / "journal.jsonl"
    with JournalWriter(path) as journal:
        journal.append({"path": "a.mp3", "status": "failed"})
        journal.append({"path": "a.mp3", "status": "ok"})
    assert load_journal(path)["a.mp3"]["status"] == "ok"


def test_undecodable_path_round_trips(tmp_path):
    path = tmp_path / "journal.jsonl"
    odd = b"caf\xe9.mp3".decode("utf-8", errors="surrogateescape")
    with JournalWriter(path) as journal:
        journal.append({"path": odd})
    assert list(load_journal(path)) == [odd]
