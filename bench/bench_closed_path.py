"""The closed-breaker success path: this tree beside the commit before issue 15, in one run.

    .venv/bin/python bench/bench_closed_path.py [--quick] [--baseline REV] [--now REV]
                                                [--pairs N] [--rounds N]
    .venv/bin/python -m bench closed_path [--quick]

Issue 15 (trip_on, breaker modes, wait/on_retry hooks, multi-window rate limits, ...) may
cost the closed-breaker success path at most 20 ns per call, all of it together. This
script measures that path — ``handle_errors`` / ``decorate`` and the spec's
``execute_with_error_handling(operation=..., args=..., max_retries=3,
error_severity="HIGH")``, sync and async — for two trees in the same run:

- **now**: the ``src/`` beside this script (or of ``--now REV``, to measure a branch);
- **before**: ``src/`` of ``--baseline`` (default ``3015f66``, the commit before issue 15),
  extracted with ``git archive`` into a temporary folder.

Each tree is measured by its own worker processes (8 per tree, 6 with ``--quick``), each
with only that tree's ``src`` first on ``PYTHONPATH`` (a worker checks which
``coordination`` it imported) and no ``COORDINATION_*`` variables. All workers stay alive
for the whole run and every round visits each of them in turn, *now* and *before*
alternating which goes first, so drift of a shared machine hits both trees alike and
several processes per tree spread the luck of memory layout. In a round a worker times
each row as the best of 5 short loops of 2 000 calls, minus the bare call timed the same
way; a worker's figure is its best round (this machine's speed flips between a fast and a
slow mode as its neighbours come and go: the best of many short loops is the undisturbed
one); the figure printed is the **median over the workers** (wall time, no callgrind).
The noise column is the half-width of a bootstrap 95 % interval of the difference of the
two medians (resampling workers); the verdict is "yes" when the whole interval is within
the target, "likely" when only the median is, "no" when the median is over it.

Rows of this tree only, measured in the same processes:

- **every new option set, not triggered**: the decorator given every option of issue 15
  this tree accepts (``trip_on``, ``breaker_ignores``, ``trip_if_result``,
  ``half_open_max_wait``, ``open_backoff_multiplier``, ``max_open_seconds``,
  ``breaker_mode="normal"``, ``wait``, ``on_retry``, ``retry_time_budget``,
  ``rate_limit_wait``), with a process-wide ``on_retry`` hook installed; the spec's call
  on a handler whose configuration holds the data forms of the same options. Compared
  with the *before* tree's plain rows: this is what a user who sets them pays.
- **each option alone** (not with ``--quick``), and the two other breaker modes: the sync
  decorator with one option, as the difference from this tree's plain row in the same
  process.

Rows of both trees (not with ``--quick``): options that were there before issue 15 as
well (``retry_if_result``, a one-window ``rate_limit`` never reached, ``retry_time_budget``,
whose start moved to the call's start), so a change to what they cost shows too.

The *now* workers install a process-wide ``on_retry`` hook (when the tree has
``set_on_retry_hooks``) before they build their rows, so every row of *now*, the plain
ones included, runs with it: hooks are read on the retry path only, and the plain rows
keep that honest.

An option this tree does not accept yet is listed as such, not silently dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from itertools import repeat
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "3015f66"
TARGET_NS = 20.0

# (key, label) of the rows both trees measure, in the order they are printed
PLAIN_ROWS = (
    ("decorate", "handle_errors, sync"),
    ("execute", "execute_with_error_handling (spec's call)"),
    ("adecorate", "handle_errors, async"),
    ("aexecute", "aexecute_with_error_handling"),
)
# ... and the rows with every new option configured (this tree only)
ALL_ROWS = (
    ("decorate+all", "handle_errors, sync"),
    ("execute+all", "execute_with_error_handling (config)"),
    ("adecorate+all", "handle_errors, async"),
)


# --- the worker: one process, one tree -------------------------------------------------


def work() -> int:
    return 1


async def awork() -> int:
    return 1


def _on_retry_hook(details: Any) -> None:
    return None


def _wait(details: Any) -> float:
    return 0.5


def _not_a_failure(result: Any) -> bool:
    return result is None


NOT_PER_CALL: Any = object()  # an option only the configuration takes

# Each new option of issue 15: (value as a per-call option, candidate values for the
# configuration (data forms; none for code-only options)). Set, none of them is
# triggered by a call that succeeds at once with the result 1.
NEW_OPTIONS: Mapping[str, tuple[Any, tuple[Any, ...]]] = {
    "trip_on": (
        (ConnectionError, TimeoutError),
        (["builtins.ConnectionError", "builtins.TimeoutError"], "builtins.ConnectionError"),
    ),
    "breaker_ignores": ((LookupError,), (["builtins.LookupError"], "builtins.LookupError")),
    "trip_if_result": (_not_a_failure, ()),
    "half_open_max_wait": (5.0, (5.0,)),
    "open_backoff_multiplier": (2.0, (2.0,)),
    "max_open_seconds": (300.0, (300.0,)),
    "breaker_mode": ("normal", ("normal",)),
    "wait": (_wait, ()),
    "on_retry": (_on_retry_hook, ()),
    "retry_time_budget": (30.0, (30.0,)),
    "rate_limit_wait": (0.5, (0.5,)),
    # the per-operation settings of the configuration, for the measured operation itself
    "operations": (NOT_PER_CALL, ({"work": {"max_retries": 3, "base_delay": 0.5}},)),
}
# Rows of one option each that are not "set but not triggered" of the default mode, shown
# for information: the other breaker modes.
EXTRA_ALONE: Mapping[str, tuple[str, Any]] = {
    "breaker_mode=metrics_only": ("breaker_mode", "metrics_only"),
    "breaker_mode=disabled": ("breaker_mode", "disabled"),
    # what a result check cost before issue 15 already (trip_if_result's kin)
    "retry_if_result (not new)": ("retry_if_result", _not_a_failure),
    # counted from the first failure before issue 15, from the call's start after it
    "retry_time_budget (not new)": ("retry_time_budget", 30.0),
    # a rate limit never reached: one window (as before), then two (new)
    "rate_limit 1 window (not new)": ("rate_limit", "1000000/s"),
    "rate_limit 2 windows": ("rate_limit", "1000000/s;100000000/h"),
    # issue 16: a retry budget set, never asked (the call succeeds at once)
    "retry_budget=0.2 (issue 16)": ("retry_budget", 0.2),
    # issue 16: a fixed bulkhead never full (not new), and the adaptive limit in its place
    "max_concurrent=1000 (not new)": ("max_concurrent", 1000),
    "adaptive_concurrency": ("adaptive_concurrency", True),
}


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return text if len(text) <= 90 else text[:87] + "..."


def probe_options(handler_type: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """Which new options this tree accepts: (per-call, configuration, refused with why)."""
    per_call: dict[str, Any] = {}
    config: dict[str, Any] = {}
    refused: dict[str, str] = {}
    for name, (value, config_values) in NEW_OPTIONS.items():
        why = ""
        try:
            if value is not NOT_PER_CALL:
                handler_type({"max_retries": 3}).decorate(work, **{name: value})
                per_call[name] = value
        except Exception as exc:
            why = _short(exc)
        for candidate in config_values:
            try:
                handler_type({"max_retries": 3, name: candidate})
            except Exception as exc:
                why = why or _short(exc)
                continue
            config[name] = candidate
            break
        if name not in per_call and name not in config:
            refused[name] = why
    return per_call, config, refused


def overhead(call: Callable[[], Any], n: int, repeats: int) -> float:
    """ns per call of ``call`` over the bare ``work()``: the best of the repeats of each."""
    best_call = best_bare = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in repeat(None, n):
            work()
        best_bare = min(best_bare, (time.perf_counter_ns() - start) / n)
        start = time.perf_counter_ns()
        for _ in repeat(None, n):
            call()
        best_call = min(best_call, (time.perf_counter_ns() - start) / n)
    return best_call - best_bare


async def aoverhead(call: Callable[[], Awaitable[Any]], n: int, repeats: int) -> float:
    """The async twin of ``overhead``, over the bare ``await awork()``."""
    best_call = best_bare = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in repeat(None, n):
            await awork()
        best_bare = min(best_bare, (time.perf_counter_ns() - start) / n)
        start = time.perf_counter_ns()
        for _ in repeat(None, n):
            await call()
        best_call = min(best_call, (time.perf_counter_ns() - start) / n)
    return best_call - best_bare


def candidates(
    handler_type: Any, error_handling: Any, options: bool, alone: bool
) -> tuple[dict[str, Callable[[], Any]], dict[str, Callable[[], Awaitable[Any]]], dict[str, Any]]:
    """The sync and async rows of this tree, built once, and what was (not) accepted."""
    handler = handler_type({"max_retries": 3})
    execute = handler.execute_with_error_handling
    aexecute = handler.aexecute_with_error_handling
    sync: dict[str, Callable[[], Any]] = {
        "decorate": handler.decorate(work),
        "execute": lambda: execute(operation=work, args=(), max_retries=3, error_severity="HIGH"),
    }
    asynchronous: dict[str, Callable[[], Awaitable[Any]]] = {
        "adecorate": handler.decorate(awork),
        "aexecute": lambda: aexecute(awork),
    }
    accepted: dict[str, Any] = {"per_call": [], "config": [], "refused": {}}
    per_call: dict[str, Any] = {}
    config: dict[str, Any] = {}
    refused: dict[str, str] = {}
    if options:
        per_call, config, refused = probe_options(handler_type)
        accepted.update(per_call=sorted(per_call), config=sorted(config), refused=refused)
        set_hooks = getattr(error_handling, "set_on_retry_hooks", None)
        if set_hooks is not None:  # a process-wide hook as well, as stamina's
            set_hooks([_on_retry_hook])
        configured = handler_type({"max_retries": 3, **config})
        all_execute = configured.execute_with_error_handling
        sync["decorate+all"] = configured.decorate(work, **per_call)
        sync["execute+all"] = lambda: all_execute(
            operation=work, args=(), max_retries=3, error_severity="HIGH"
        )
        asynchronous["adecorate+all"] = configured.decorate(awork, **per_call)
    if alone:
        singles = {name: (name, value) for name, value in per_call.items()}
        singles.update({name: (name, config[name]) for name in config if name not in per_call})
        singles.update(EXTRA_ALONE)
        for label, (name, value) in singles.items():
            try:  # per call where the tree takes it so, else in the configuration
                one = handler_type({"max_retries": 3}).decorate(work, **{name: value})
            except Exception as exc:
                try:
                    one = handler_type({"max_retries": 3, name: value}).decorate(work)
                except Exception:
                    refused.setdefault(label, _short(exc))
                    continue
            sync[f"alone:{label}"] = one
        limiter_type = getattr(error_handling, "InMemoryRateLimiter", None)
        rate_type = getattr(error_handling, "Rate", None)
        if limiter_type is not None and rate_type is not None:  # the limiter by itself
            limiter = limiter_type(rate_type.parse("1000000/s"))
            sync["alone:InMemoryRateLimiter.try_acquire"] = lambda: limiter.try_acquire("k")
    return sync, asynchronous, accepted


def worker(expected_src: Path, n: int, repeats: int, options: bool, alone: bool) -> int:
    """Build the rows once, then measure every row once per line read from stdin (one
    JSON line each), until stdin closes: the conductor takes turns between two workers."""
    import coordination
    from coordination import error_handling
    from coordination.error_handling import CoordinationErrorHandler

    where = Path(coordination.__file__).resolve()
    if expected_src.resolve() not in where.parents:
        print(json.dumps({"error": f"imported {where}, not from {expected_src}"}), flush=True)
        return 1
    sync, asynchronous, accepted = candidates(
        CoordinationErrorHandler, error_handling, options, alone
    )
    loop = asyncio.new_event_loop()
    for call in sync.values():  # warm: plans built, first-call shapes remembered
        overhead(call, 2000, 1)
    for acall in asynchronous.values():
        loop.run_until_complete(aoverhead(acall, 2000, 1))
    print(json.dumps({"ready": str(where), **accepted}), flush=True)
    for _ in sys.stdin:
        gc.disable()  # a collection inside a timed loop would be noise (alike for both)
        try:
            rows = {key: overhead(call, n, repeats) for key, call in sync.items()}
            for key, acall in asynchronous.items():
                rows[key] = loop.run_until_complete(aoverhead(acall, n, repeats))
        finally:
            gc.enable()
        print(json.dumps(rows), flush=True)
    loop.close()
    return 0


# --- the conductor: both trees, taking turns -------------------------------------------


class Worker:
    """One worker process of one tree, fed a line per round."""

    def __init__(self, src: Path, n: int, repeats: int, options: bool, alone: bool) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(src), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        )
        for name in [k for k in env if k.startswith("COORDINATION_")]:
            del env[name]  # the user's settings would configure one tree and not the other
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(src)]
        command += ["--n", str(n), "--repeats", str(repeats)]
        command += ["--options"] * options + ["--alone"] * alone
        self.src = src
        self.process = subprocess.Popen(
            command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.stdin, self.stdout = self.process.stdin, self.process.stdout
        if self.stdin is None or self.stdout is None:
            raise RuntimeError("no pipes to the worker")
        self.ready = self._answer()
        self.rounds: list[dict[str, float]] = []

    def _answer(self) -> dict[str, Any]:
        line = self.stdout.readline() if self.stdout is not None else ""
        answer: dict[str, Any] = json.loads(line) if line.strip() else {}
        if not answer or "error" in answer:
            self.close()
            raise RuntimeError(f"the worker for {self.src} failed: {answer or 'no answer'}")
        return answer

    def measure(self) -> None:
        if self.stdin is not None:
            self.stdin.write("go\n")
            self.stdin.flush()
        self.rounds.append(self._answer())

    def best(self) -> dict[str, float]:
        """Each row's best round: the figure least disturbed by the machine's other work."""
        return {key: min(r[key] for r in self.rounds) for key in self.rounds[0]}

    def close(self) -> None:
        if self.stdin is not None:
            self.stdin.close()
        self.process.wait(timeout=60)


def extract_baseline(rev: str, into: Path) -> Path:
    """``src/`` of ``rev``, by ``git archive``, under ``into``; its path."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "src"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def median_difference(
    now: list[float], before: list[float], draws: int = 2000
) -> tuple[float, float]:
    """median(now) - median(before), and the half-width of its bootstrap 95 % interval."""
    difference = statistics.median(now) - statistics.median(before)
    rng = random.Random(15)
    samples = sorted(
        statistics.median(rng.choices(now, k=len(now)))
        - statistics.median(rng.choices(before, k=len(before)))
        for _ in range(draws)
    )
    low, high = samples[int(0.025 * draws)], samples[int(0.975 * draws) - 1]
    return difference, max(high - difference, difference - low)


def verdict(difference: float, noise: float, target: float = TARGET_NS) -> str:
    if difference + noise <= target:
        return "yes"
    return "likely" if difference <= target else "no"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer pairs, fewer rounds")
    parser.add_argument("--baseline", default=BASELINE, help="the tree before (a git rev)")
    parser.add_argument("--now", help="measure this git rev instead of the working tree")
    parser.add_argument("--pairs", type=int, help="worker processes per tree")
    parser.add_argument("--rounds", type=int, help="rounds per pair of workers")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=5_000, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--options", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--alone", action="store_true", help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args(argv)  # `python -m bench` passes its flags to all
    if args.worker is not None:
        return worker(args.worker, args.n, args.repeats, args.options, args.alone)

    pairs = args.pairs or (6 if args.quick else 8)
    rounds = args.rounds or (10 if args.quick else 16)
    # short timed loops, many of them: the best of many short loops is the one a noisy
    # neighbour did not disturb (this machine's speed flips between two modes)
    n, repeats = 2_000, 5
    alone = not args.quick
    with tempfile.TemporaryDirectory(prefix="coordination-baseline-") as temporary:
        now_src = ROOT / "src"
        try:
            before_src = extract_baseline(args.baseline, Path(temporary) / "before")
            if args.now:
                now_src = extract_baseline(args.now, Path(temporary) / "now")
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = (getattr(exc, "stderr", b"") or b"").decode(errors="replace").strip()
            print(f"cannot extract a tree with git archive ({exc} {detail}): no run")
            return 1
        # every worker alive for the whole run, each round visiting all of them: each
        # worker's rounds are spread over the run, so its best round meets a quiet moment
        # of the machine whatever else runs on it
        results: dict[str, list[Worker]] = {"now": [], "before": []}
        try:
            for _ in range(pairs):
                results["now"].append(Worker(now_src, n, repeats, True, alone))
                results["before"].append(Worker(before_src, n, repeats, False, alone))
            for index in range(rounds):
                for pair, twins in enumerate(zip(results["now"], results["before"], strict=True)):
                    for one in twins if (pair + index) % 2 == 0 else twins[::-1]:
                        one.measure()  # now first in half the turns
        finally:
            for one in results["now"] + results["before"]:
                one.close()
    report(args.now or "this tree", args.baseline, pairs, rounds, n * repeats, results)
    if args.quick:
        print("(--quick: too few workers and rounds to resolve 20 ns here; the full run can)")
    return 0


def report(
    now_name: str,
    baseline: str,
    pairs: int,
    rounds: int,
    calls: int,
    results: dict[str, list[Worker]],
) -> None:
    now = [w.best() for w in results["now"]]
    before = [w.best() for w in results["before"]]
    print(
        f"\nClosed-breaker success path: {now_name} (now) beside {baseline} (before issue 15)."
        f"\n{pairs} worker processes per tree, all alive, {rounds} rounds visiting each in turn, "
        f"{calls:,} calls per row and round.\nOverhead over the bare call, ns per call: "
        "each process's best round, the median over processes;\nnoise = half-width of a "
        "bootstrap 95 % interval of Δ over the processes."
    )
    header = f"  {'':40} {'before':>8} {'now':>8} {'Δ ns':>8} {'noise':>7}  ≤ {TARGET_NS:g} ns?"
    print("\n" + header)
    for key, label in PLAIN_ROWS:
        row(label, [r[key] for r in now], [r[key] for r in before])
    print("\nEvery new option set, not triggered (now), beside the plain rows (before)")
    print(header)
    for (key, label), plain in zip(ALL_ROWS, ("decorate", "execute", "adecorate"), strict=True):
        row(label, [r[key] for r in now], [r[plain] for r in before])
    accepted = results["now"][0].ready
    print("\n  set per call: " + (", ".join(accepted["per_call"]) or "none"))
    print("  set in the configuration (execute row): " + (", ".join(accepted["config"]) or "none"))
    if accepted["refused"]:
        print("  not accepted by this tree, so left out of the rows above:")
        for name, why in accepted["refused"].items():
            print(f"    {name:26} {why}")
    both = sorted(key for key in now[0] if key.startswith("alone:") and key in before[0])
    if both:
        print(
            "\nWhat was there before issue 15 too, alone (sync decorator), both trees"
            "\n(a rate limit's row is noisy: its limiter's own row is the sharper figure)"
        )
        print(header)
        for key in both:
            row(key.removeprefix("alone:"), [r[key] for r in now], [r[key] for r in before])
    alone = sorted(key for key in now[0] if key.startswith("alone:") and key not in both)
    if alone:
        print("\nEach option alone (sync decorator): Δ from this tree's plain row, same processes")
        print(f"  {'':40} {'Δ ns':>8} {'noise':>7}")
        for key in alone:
            paired = [r[key] - r["decorate"] for r in now]  # both from the same process
            middle, noise = median_difference(paired, [0.0] * len(paired))
            print(f"  {key.removeprefix('alone:'):40} {middle:+8.1f} {noise:7.1f}")
    print(
        "\nThe machine is shared: run it with --baseline HEAD (the same tree twice) to see "
        "this machine's noise floor."
    )


def row(label: str, now: list[float], before: list[float]) -> None:
    difference, noise = median_difference(now, before)
    print(
        f"  {label:40} {statistics.median(before):8.1f} {statistics.median(now):8.1f} "
        f"{difference:+8.1f} {noise:7.1f}  {verdict(difference, noise)}"
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
