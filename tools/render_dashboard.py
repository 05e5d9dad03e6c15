"""Draw the dashboard of ``coordination dashboard`` from a real Prometheus' data, to a PNG.

Grafana is not needed (nor installable everywhere): each panel's queries run through
Prometheus' ``/api/v1/query_range`` with the Grafana variables at their "All" values, and
matplotlib draws them in the dashboard's own layout, two panels a row. The picture in
docs/observability.md is made this way from Prometheus scraping ``coordination demo
--serve`` alone (the default run, and ``--redis`` on a real Redis for the Redis panel):

    COORDINATION_DASHBOARD_PNG=docs/images/dashboard.png \\
        .venv/bin/python -m pytest -p no:cacheprovider tests/operators -k renders

or against any Prometheus that scrapes the library:

    .venv/bin/python tools/render_dashboard.py --prometheus http://127.0.0.1:9090 \\
        --output dashboard.png --minutes 15
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coordination.observability._dashboard import PANELS, VARIABLES_ALL, grafana_dashboard

_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_MAX_LINES = 8  # a panel with more series shows its busiest ones (a picture, not Grafana)


def _query_range(base: str, expr: str, start: float, end: float, step: float) -> list[Any]:
    for variable, value in VARIABLES_ALL.items():
        expr = expr.replace(variable, value)
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{base}/api/v1/query_range?{params}", timeout=30) as response:
        body = json.loads(response.read())
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus refused {expr!r}: {body.get('error')}")
    result: list[Any] = body["data"]["result"]
    return result


def _legend(template: str, labels: dict[str, str]) -> str:
    return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), template).strip()


def render(prometheus: str, output: Path, *, minutes: float = 15.0) -> set[str]:
    """Draw every panel over the last ``minutes``; returns the titles drawn."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    end = time.time()
    start = end - minutes * 60
    step = max(1.0, minutes * 60 / 300)
    rows = math.ceil(len(PANELS) / 2)
    plt.style.use("dark_background")
    figure, axes = plt.subplots(rows, 2, figsize=(16, 3.2 * rows), squeeze=False)
    title = grafana_dashboard()["title"]
    figure.suptitle(
        f"{title} — Grafana dashboard of `coordination dashboard`, drawn from Prometheus "
        f"({datetime.fromtimestamp(end, UTC):%Y-%m-%d %H:%M} UTC, last {minutes:g} min)",
        fontsize=13,
    )
    drawn: set[str] = set()
    for index, panel in enumerate(PANELS):
        ax = axes[index // 2][index % 2]
        lines: list[tuple[float, str, list[datetime], list[float]]] = []
        for target in panel.targets:
            for series in _query_range(prometheus, target.expr, start, end, step):
                times = [datetime.fromtimestamp(float(t), UTC) for t, _ in series["values"]]
                values = [float(v) for _, v in series["values"]]
                finite = [v for v in values if math.isfinite(v)]
                weight = max(finite, default=0.0)
                lines.append((weight, _legend(target.legend, series["metric"]), times, values))
        lines.sort(key=lambda line: -line[0])
        for _, label, times, values in lines[:_MAX_LINES]:
            ax.plot(times, values, linewidth=1.2, label=label[:48])
        ax.set_title(f"{panel.title}  ({panel.unit})", fontsize=10, loc="left")
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.2)
        if panel.mappings:
            ax.set_yticks([value for value, _, _ in panel.mappings])
            ax.set_yticklabels([text for _, text, _ in panel.mappings])
        if lines:
            ax.legend(fontsize=6, loc="upper left", framealpha=0.4)
            drawn.add(panel.title)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    for index in range(len(PANELS), rows * 2):
        axes[index // 2][index % 2].set_visible(False)
    figure.tight_layout(rect=(0, 0, 1, 0.98))
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=80)
    plt.close(figure)
    return drawn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--output", type=Path, default=Path("dashboard.png"))
    parser.add_argument("--minutes", type=float, default=15.0)
    args = parser.parse_args()
    drawn = render(args.prometheus, args.output, minutes=args.minutes)
    print(f"{args.output}: {len(drawn)} of {len(PANELS)} panels with data")


if __name__ == "__main__":
    main()
