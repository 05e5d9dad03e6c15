"""The counters and the async check use public means only, and stay right under threads."""

from __future__ import annotations

import ast
import functools
import inspect
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordination import CoordinationErrorHandler
from coordination._callables import SyncCallCheck, returns_awaitable
from coordination._counting import ReadableCount, count_value

SRC = Path(__file__).resolve().parents[1] / "src" / "coordination"


@given(st.lists(st.sampled_from(["inc", "read"]), max_size=200))
def test_a_count_reads_the_increments_whatever_the_interleaving(steps: list[str]) -> None:
    counter = ReadableCount()
    increments = 0
    for step in steps:
        if step == "inc":
            next(counter)
            increments += 1
        else:
            assert counter.value() == increments
    assert count_value(counter) == increments
    assert repr(counter) == f"ReadableCount(value={increments})"


def test_reads_are_exact_while_threads_increment() -> None:
    counter = ReadableCount()
    per_thread, threads = 20_000, 4
    seen: list[int] = []
    start = threading.Barrier(threads + 1)

    def bump() -> None:
        start.wait()
        for _ in range(per_thread):
            next(counter)

    def read() -> None:
        start.wait()
        for _ in range(2_000):
            seen.append(counter.value())

    workers = [threading.Thread(target=bump) for _ in range(threads)]
    workers.append(threading.Thread(target=read))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    # One reader: its reads never go backwards, and never count themselves.
    assert seen == sorted(seen)
    assert all(0 <= n <= per_thread * threads for n in seen)
    assert counter.value() == per_thread * threads


def test_concurrent_readers_each_see_a_value_between_what_was_done_before_and_after() -> None:
    counter = ReadableCount()
    for _ in range(1000):
        next(counter)
    values: list[int] = []
    readers = [
        threading.Thread(target=lambda: values.extend(counter.value() for _ in range(500)))
        for _ in range(4)
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    assert set(values) == {1000}  # 2000 reads, none of them counted


async def _coroutine_function() -> int:
    return 1


def _sync_function() -> int:
    return 1


async def _async_generator() -> AsyncIterator[int]:
    yield 1


class _AsyncCallable:
    async def __call__(self) -> int:
        return 1

    async def method(self) -> int:
        return 1


class _SyncCallable:
    def __call__(self) -> int:
        return 1


def _marked() -> Any:
    return _coroutine_function()


if hasattr(inspect, "markcoroutinefunction"):  # 3.12+
    _MARKED: Any = inspect.markcoroutinefunction(_marked)
else:
    _MARKED = None

ASYNC_CALLABLES: list[Any] = [
    _coroutine_function,
    _async_generator,
    functools.partial(_coroutine_function),
    functools.partial(functools.partial(_coroutine_function)),
    _AsyncCallable(),
    functools.partial(_AsyncCallable()),
    _AsyncCallable().method,
    _AsyncCallable.method,
]
if _MARKED is not None:
    ASYNC_CALLABLES.append(_MARKED)

SYNC_CALLABLES: list[Any] = [
    _sync_function,
    functools.partial(_sync_function),
    _SyncCallable(),
    functools.partial(_SyncCallable()),
    len,
    dict,
    _SyncCallable().__call__,
    lambda: 1,
]


@pytest.mark.parametrize("operation", ASYNC_CALLABLES)
def test_async_callables_are_recognised(operation: Any) -> None:
    assert returns_awaitable(operation)
    check = SyncCallCheck()
    assert check.returns_awaitable(operation)
    assert check.returns_awaitable(operation)  # and still, once remembered


@pytest.mark.parametrize("operation", SYNC_CALLABLES)
def test_sync_callables_are_not(operation: Any) -> None:
    assert not returns_awaitable(operation)
    check = SyncCallCheck()
    assert not check.returns_awaitable(operation)
    assert not check.returns_awaitable(operation)


def test_a_remembered_code_does_not_hide_a_marked_twin() -> None:
    if not hasattr(inspect, "markcoroutinefunction"):
        pytest.skip("inspect.markcoroutinefunction is new in 3.12")

    def make() -> Any:
        def call() -> Any:
            return _coroutine_function()

        return call

    check = SyncCallCheck()
    plain, marked = make(), inspect.markcoroutinefunction(make())
    assert plain.__code__ is marked.__code__
    assert not check.returns_awaitable(plain)
    assert check.returns_awaitable(marked)


def test_the_remembered_codes_are_bounded() -> None:
    check = SyncCallCheck(limit=8)
    for n in range(50):
        namespace: dict[str, Any] = {}
        exec(f"def f{n}(): return {n}", namespace)
        assert not check.returns_awaitable(namespace[f"f{n}"])
    assert len(check._sync_codes) <= 8


@pytest.mark.parametrize("operation", ASYNC_CALLABLES[:7])
def test_execute_refuses_every_async_callable_with_a_clear_error(operation: Any) -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    with pytest.raises(TypeError, match="aexecute_with_error_handling"):
        handler.execute_with_error_handling(operation)


async def test_aexecute_runs_a_partial_and_an_async_callable_object() -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    assert await handler.aexecute_with_error_handling(functools.partial(_coroutine_function)) == 1
    assert await handler.aexecute_with_error_handling(_AsyncCallable()) == 1


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=0, max_value=300))
def test_handler_counts_stay_exact_when_read_between_calls(calls: int) -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    for n in range(calls):
        handler.execute_with_error_handling(len, args=("x",), operation_name="op")
        if n % 7 == 0:
            handler.get_error_report()
    stats = handler.get_error_report()["operations"].get("op", {})
    assert stats.get("successes", 0) == calls


# --- no CPython-private tricks anywhere in src/ ------------------------------------------

# Attributes that are implementation details of CPython's stdlib objects, or whose use
# here was a shortcut around a public API (issue 13): none may come back.
_FORBIDDEN_ATTRIBUTES = {
    "__reduce__",
    "__reduce_ex__",
    "co_flags",
    "_getframe",
    "_cache",
    "_current_frames",
    "_is_coroutine_marker",
}


def test_no_module_uses_a_private_interpreter_detail() -> None:
    found: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Attribute):
                name = node.attr
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value in _FORBIDDEN_ATTRIBUTES
            ):
                name = node.value  # getattr(obj, "_cache")
            if name in _FORBIDDEN_ATTRIBUTES:
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: {name}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "repr"
                and any(isinstance(p, ast.Subscript) for p in _parents(tree, node))
            ):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: repr() parsed")
    assert found == []


def _parents(tree: ast.AST, target: ast.AST) -> list[ast.AST]:
    """The nodes whose direct child is ``target`` (enough to spot ``repr(x)[6:-1]``)."""
    return [
        node
        for node in ast.walk(tree)
        if any(child is target for child in ast.iter_child_nodes(node))
    ]


# --- the classifiers list exactly the Pythons CI runs ------------------------------------

ROOT = SRC.parents[1]


def test_the_classifiers_name_exactly_the_pythons_ci_runs() -> None:
    import re
    import sys
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    listed = {
        c.rsplit(" :: ", 1)[1]
        for c in project["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    loop = re.search(r"^versions=\(([\d. ]+)\)$", ci, re.MULTILINE)
    assert loop is not None, ".ci/run no longer names the extra Pythons in versions=(...)"
    extra = {v.rsplit(".", 1)[0] for v in loop.group(1).split()}
    default = min(listed, key=lambda v: tuple(map(int, v.split("."))))
    assert listed == {default} | extra
    assert project["requires-python"] == f">={default}"
    assert re.search(r"^make test\b", ci, re.MULTILINE)  # the default python3 runs it all
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" in listed
