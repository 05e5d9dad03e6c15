"""The cost of importing the library, beside stamina, tenacity and pybreaker.

Each run is a fresh interpreter (``python -c``) that times its own import with
``perf_counter`` and counts ``sys.modules`` before and after; the rows take turns run by
run, so the noise of a shared machine hits them alike. Prints the modules the import adds,
``sys.modules`` in all, and the best and median milliseconds, with the ratios to stamina's
and tenacity's medians.

- ``import coordination``: the top level alone (target: at most 120 modules in
  ``sys.modules``, tests/test_import_cost.py);
- ``... import handle_errors``: the decorator, the like of ``stamina.retry`` and
  ``tenacity.retry`` (what a service pays to protect its first call).

    .venv/bin/python bench/bench_import.py [--quick]
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys

CHILD = """
import sys, time
before = len(sys.modules)
start = time.perf_counter()
{statement}
elapsed = time.perf_counter() - start
print(elapsed, len(sys.modules) - before, len(sys.modules))
"""

ROWS = [
    ("import coordination", "import coordination"),
    ("from coordination import handle_errors", "from coordination import handle_errors"),
    ("import stamina", "import stamina"),
    ("import tenacity", "import tenacity"),
    ("import pybreaker", "import pybreaker"),
]
MAX_MODULES = 120


def run_once(statement: str) -> tuple[float, int, int]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(statement=statement)],
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed, added, total = done.stdout.split()
    return float(elapsed), int(added), int(total)


def main() -> int:
    runs = 5 if "--quick" in sys.argv else 15
    rows = [
        (label, statement)
        for label, statement in ROWS
        if importlib.util.find_spec(statement.split()[1].split(".")[0]) is not None
    ]
    times: dict[str, list[float]] = {label: [] for label, _ in rows}
    counts: dict[str, tuple[int, int]] = {}
    for _ in range(runs):
        for label, statement in rows:
            elapsed, added, total = run_once(statement)
            times[label].append(elapsed * 1e3)
            counts[label] = (added, total)
    medians = {label: statistics.median(values) for label, values in times.items()}
    print(f"\nimport cost, a fresh interpreter per run, {runs} runs each")
    print(
        f"{'':40} {'modules':>8} {'in all':>7} {'best ms':>8} {'median ms':>10}"
        f" {'vs stamina':>11} {'vs tenacity':>12}"
    )
    for label, _ in rows:
        added, total = counts[label]
        median = medians[label]
        ratios = [
            f"{median / medians[peer]:.2f}x" if peer in medians else "-"
            for peer in ("import stamina", "import tenacity")
        ]
        print(
            f"{label:40} {added:8d} {total:7d} {min(times[label]):8.2f} {median:10.2f}"
            f" {ratios[0]:>11} {ratios[1]:>12}"
        )
    total = counts["import coordination"][1]
    verdict = "met" if total <= MAX_MODULES else "NOT met"
    print(f"\ntarget: import coordination <= {MAX_MODULES} modules in sys.modules: {verdict}")
    return 0 if total <= MAX_MODULES else 1


if __name__ == "__main__":
    sys.exit(main())
