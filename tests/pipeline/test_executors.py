"""The bounded window of tasks in flight that the build, label reading and predict share."""
from __future__ import annotations

import collections
import concurrent.futures as cf
import threading

import pytest

from genreslice.pipeline.executors import TaskWindow, done_future


def drain(window: TaskWindow, queue: collections.deque, submit) -> list:
    taken = []
    while True:
        window.fill(queue, submit)
        assert len(window) <= window.limit
        if not window:
            return taken
        for item, future in window.finished():
            taken.append((item, future.result()))


def test_ordered_window_keeps_input_order_and_never_exceeds_its_limit():
    submitted = []
    with cf.ThreadPoolExecutor(4) as pool:
        def submit(number):
            submitted.append(number)
            return pool.submit(lambda: number * number)

        taken = drain(TaskWindow(limit=3), collections.deque(range(20)), submit)
    assert taken == [(number, number * number) for number in range(20)]
    assert submitted == list(range(20))


def test_unordered_window_gives_tasks_as_they_finish():
    release_first = threading.Event()
    with cf.ThreadPoolExecutor(2) as pool:
        def submit(number):
            return pool.submit(lambda: release_first.wait(10) if number == 0 else number)

        window = TaskWindow(limit=2, ordered=False)
        queue = collections.deque([0, 1])
        window.fill(queue, submit)
        first = [item for item, _ in window.finished()]
        release_first.set()
        rest = drain(window, queue, submit)
    assert first == [1] and [item for item, _ in rest] == [0]


def test_an_item_whose_submission_fails_stays_in_the_queue():
    calls = []

    def submit(item):
        calls.append(item)
        if item == "b":
            raise cf.BrokenExecutor("pool broke")
        return done_future(item.upper())

    window = TaskWindow(limit=5)
    queue = collections.deque(["a", "b", "c"])
    with pytest.raises(cf.BrokenExecutor):
        window.fill(queue, submit)
    assert list(queue) == ["b", "c"] and window.items() == ["a"]


def test_cancel_stops_tasks_not_started():
    gate = threading.Event()
    with cf.ThreadPoolExecutor(1) as pool:
        window = TaskWindow(limit=3)
        queue = collections.deque(range(3))
        window.fill(queue, lambda number: pool.submit(gate.wait, 10))
        futures = list(window._running)
        window.cancel()
        gate.set()
    assert not window and [future.cancelled() for future in futures] == [False, True, True]


def test_limit_must_be_positive():
    with pytest.raises(ValueError, match="limit=0"):
        TaskWindow(limit=0)
