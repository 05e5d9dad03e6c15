"""The core install stays small: `import coordination` and the core components work when
none of the optional extras (psutil, redis, OpenTelemetry, web frameworks) is installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

OPTIONAL = ("psutil", "redis", "opentelemetry", "flask", "starlette", "django", "fastapi", "httpx")

# A meta-path finder that makes the optional packages unimportable, as in a venv made by
# `pip install coordination-systems` without extras.
SCRIPT = textwrap.dedent(
    f"""
    import sys

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {OPTIONAL!r}:
                raise ImportError(f"{{name}} is not installed (blocked by the test)")
            return None

    sys.meta_path.insert(0, Blocker())

    import coordination
    from coordination import (
        CoordinationConfig,
        CoordinationErrorHandler,
        CoordinationPerformanceMonitor,
        CoordinationValidator,
        handle_errors,
    )

    loaded = sorted(n for n in sys.modules if n.split(".")[0] in {OPTIONAL!r})
    assert not loaded, loaded

    handler = CoordinationErrorHandler(CoordinationConfig(base_delay=0.0))
    assert handler.execute_with_error_handling(lambda: 42) == 42
    monitor = CoordinationPerformanceMonitor()
    with monitor.record_operation("op"):
        pass
    assert monitor.get_performance_report()["response_times"]["count"] == 1
    result = CoordinationValidator().validate({{"name": "x"}}, {{"required_fields": ["name"]}})
    assert result.is_valid
    print("core ok", coordination.__version__)
    """
)


def test_core_works_without_optional_extras() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "core ok" in done.stdout
