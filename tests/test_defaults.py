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


def test_reset_returns_the_forgotten_instance_and_peek_never_makes_one() -> None:
    default = ProcessDefault(list)
    assert default.peek() is None
    assert default.reset() is None  # nothing made yet, nothing forgotten
    first = default.get()
    assert default.peek() is first
    assert default.reset() is first
    assert default.peek() is None


def test_reset_process_defaults_forgets_every_default_together() -> None:
    from coordination._defaults import process_config, reset_process_defaults
    from coordination.error_handling import default_error_handler

    config, handler = process_config(), default_error_handler()
    forgotten = reset_process_defaults()
    assert any(o is config for o in forgotten)
    assert any(o is handler for o in forgotten)
    assert process_config() is not config
    assert default_error_handler() is not handler
    assert default_error_handler().config is process_config()
    handler.close()
