"""Run every benchmark in bench/ in turn: `python -m bench [--quick] [NAME ...]`.

Each bench_<topic>.py measures this library beside its peers in the same process and
prints both; compare the ratios within one run, never absolute times across runs (the
machines are shared and noisy).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    flags = [a for a in argv if a.startswith("-")]
    names = [a for a in argv if not a.startswith("-")]
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if any(n in s.stem for n in names)]
    status = 0
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        done = subprocess.run([sys.executable, str(script), *flags], check=False)
        status = status or done.returncode
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
