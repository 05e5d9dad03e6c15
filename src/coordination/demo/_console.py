"""What the demo prints: a live status line, events as they happen, and the closing tables.

On a terminal the status line redraws in place several times a second; into a pipe or a
file (CI, tests) it is printed as a plain line every few seconds instead, so the log stays
readable.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

__all__ = ["Console", "format_table", "metrics_excerpt", "sparkline", "status_line", "surge_line"]

_BAR = 24
_PLAIN_EVERY = 2.0  # seconds between status lines when not on a terminal


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table, the first column left-aligned and the rest right-aligned."""
    cells = [[str(h) for h in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def metrics_excerpt(
    text: str,
    prefixes: Sequence[str],
    limit: int = 18,
    skip: Sequence[str] = (),
    keep: Sequence[str] = (),
) -> str:
    """The exposition lines of the metric families starting with ``prefixes``; of the
    operations (or breakers) named in ``skip``, only the lines of the ``keep`` families."""
    skipped = tuple(f'="{name}"' for name in skip)
    chosen = [
        line
        for line in text.splitlines()
        if line
        and not line.startswith("#")
        and line.startswith(tuple(prefixes))
        and (line.startswith(tuple(keep)) or not any(label in line for label in skipped))
    ]
    more = f"\n… {len(chosen) - limit} more lines at /metrics" if len(chosen) > limit else ""
    return "\n".join(chosen[:limit]) + more


class Console:
    """Prints events and a status line, redrawing in place on a terminal."""

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self._last_plain = -_PLAIN_EVERY
        self._drawn = False

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def _clear(self) -> None:
        if self.live and self._drawn:
            self._write("\r\x1b[2K")
            self._drawn = False

    def say(self, text: str = "") -> None:
        """A line of its own (above the status line on a terminal)."""
        self._clear()
        self._write(text + "\n")

    def wait_for_ctrl_c(self) -> None:
        """Block until Ctrl-C (what ``--serve`` does once the story is told), then say so."""
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            self.say("stopped")

    def event(self, elapsed: float, text: str) -> None:
        self.say(f"  {elapsed:5.1f}s  {text}")

    def status(self, elapsed: float, duration: float, line: str, *, force: bool = False) -> None:
        done = min(1.0, elapsed / duration) if duration > 0 else 1.0
        filled = round(done * _BAR)
        bar = "█" * filled + "░" * (_BAR - filled)
        text = f"  {bar} {elapsed:4.1f}/{duration:g}s  {line}"
        if self.live:
            # A line wider than the terminal would wrap, and \r could not redraw it.
            width = shutil.get_terminal_size().columns - 1
            self._write("\r\x1b[2K" + text[:width])
            self._drawn = True
        elif force or elapsed - self._last_plain >= _PLAIN_EVERY:
            self._last_plain = elapsed
            self._write(text + "\n")

    def finish_status(self) -> None:
        if self.live and self._drawn:
            self._write("\n")
            self._drawn = False

    def json(self, document: Mapping[str, Any]) -> None:
        self.say(json.dumps(document, indent=2, default=str))


def sparkline(values: Sequence[float], *, width: int = 48) -> str:
    """``values`` as a row of block characters, lowest to highest of them, resampled to
    at most ``width`` cells (the last value of each stretch)."""
    if not values:
        return ""
    if len(values) > width:
        step = len(values) / width
        values = [values[min(len(values) - 1, round((i + 1) * step) - 1)] for i in range(width)]
    low, high = min(values), max(values)
    blocks = "▁▂▃▄▅▆▇█"
    if high == low:
        return blocks[3] * len(values)
    return "".join(blocks[round((v - low) / (high - low) * (len(blocks) - 1))] for v in values)


def surge_line(
    phase: str,
    clients: Mapping[str, int],
    limit: int | None,
    in_flight: int,
    database_ms: float,
    shed: Mapping[str, int],
    served: Mapping[str, int],
) -> str:
    """One line of the second act: the clients, the group's limit, the database, and
    the calls shed and served by severity."""
    shown = "–" if limit is None else str(limit)
    return (
        f"{phase:<6} clients LOW {clients.get('LOW', 0):>2} CRITICAL "
        f"{clients.get('CRITICAL', 0):>2}  limit {shown:>3} in flight {in_flight:>3}  "
        f"db {database_ms:>5.0f} ms  shed LOW {shed.get('LOW', 0):>5} CRITICAL "
        f"{shed.get('CRITICAL', 0):>4}  served LOW {served.get('LOW', 0):>5} CRITICAL "
        f"{served.get('CRITICAL', 0):>4}"
    )


def status_line(
    snapshot: Mapping[str, Any], phase: str, clients: Mapping[int, int], held: int = 0
) -> str:
    """One line: requests, latency of the orders route, retries (and those the budget
    held back), breaker, rejections."""
    operations = {op["name"]: op for op in snapshot["operations"]}
    orders = operations.get("POST /api/orders", {})
    downstream = operations.get("inventory.reserve", {})
    validation = snapshot.get("validation") or {}
    totals = snapshot["totals"]
    rejected_422 = sum(n for code, n in clients.items() if code in (400, 422))
    return (
        f"{phase:<9} req {totals['requests']:>5}  "
        f"p50 {_ms(orders.get('p50_ms'))} p95 {_ms(orders.get('p95_ms'))} "
        f"p99 {_ms(orders.get('p99_ms'))} ms  retries {totals['retries']:>4} "
        f"held by budget {held:>4}  "
        f"breaker {downstream.get('breaker') or 'CLOSED':<9} "
        f"rejected: breaker {totals['rejected_by_circuit_breaker']:>4} "
        f"validation {max(rejected_422, int(validation.get('invalid', 0))):>4}"
    )
