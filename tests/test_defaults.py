"""ProcessDefault: one instance per process, even when first use is a race."""

from __future__ import annotations

import threading
import time

from coordination._defaults import ProcessDefault


def test_racing_threads_get_one_instance() -> None:
    made: list[object] = []

    def slow_factory() -> object:
        time.sleep(0.01)  # widen the race window on purpose
        instance = object()
        made.append(instance)
        return instance

    default = ProcessDefault(slow_factory)
    barrier = threading.Barrier(8)
    seen: list[object] = []

    def worker() -> None:
        barrier.wait()
        seen.append(default.get())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1
    assert all(instance is made[0] for instance in seen)


def test_reset_makes_a_new_instance() -> None:
    default = ProcessDefault(list)
    first = default.get()
    default.reset()
    assert default.get() is not first
