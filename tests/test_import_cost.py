"""``import coordination`` stays cheap: few modules, none of the heavy dependencies.

Counted in a fresh interpreter (modules, not milliseconds: counts do not depend on how
busy the machine is). bench/bench_import.py measures the time beside stamina and tenacity.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

MAX_MODULES = 120
# Each is imported by the part that needs it, when that part is first used.
HEAVY = (
    "prometheus_client",
    "yaml",
    "jsonschema_rs",
    "psutil",
    "redis",
    "opentelemetry",
    "flask",
    "werkzeug",
    "starlette",
    "fastapi",
    "django",
    "platformdirs",
    "sqlite3",
    "asyncio",
    "concurrent",
    "multiprocessing",
    "http",
    "email",
    "json",
    "socket",
    "ssl",
    "subprocess",
    "wsgiref",
    "uuid",
)


def loaded_after(statement: str) -> set[str]:
    """The modules in ``sys.modules`` after ``statement`` in a fresh interpreter."""
    script = textwrap.dedent(
        f"""
        import sys
        {statement}
        sys.stdout.write("\\n".join(sys.modules))
        """
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split("\n"))


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(name for name in HEAVY if name in modules)


def test_import_coordination_loads_at_most_120_modules() -> None:
    modules = loaded_after("import coordination")
    assert len(modules) <= MAX_MODULES, f"{len(modules)} modules: {sorted(modules)}"


def test_import_coordination_loads_no_heavy_dependency() -> None:
    assert heavy_in(loaded_after("import coordination")) == []


def test_import_coordination_loads_none_of_its_subpackages() -> None:
    ours = {m for m in loaded_after("import coordination") if m.startswith("coordination.")}
    assert ours <= {
        "coordination._errors",
        "coordination._redact",
        "coordination._lazy",
        "coordination._version",
    }, sorted(ours)


@pytest.mark.parametrize(
    ("statement", "absent"),
    [
        # the core's configuration reads YAML only when there is a file
        ("from coordination import CoordinationConfig; CoordinationConfig()", ("yaml",)),
        (
            "from coordination import CoordinationErrorHandler",
            ("prometheus_client", "yaml", "jsonschema_rs", "sqlite3", "email", "redis", "asyncio"),
        ),
        (
            "from coordination import CoordinationPerformanceMonitor",
            ("prometheus_client", "yaml", "jsonschema_rs", "asyncio", "psutil"),
        ),
        # a health check is no Prometheus scrape
        ("from coordination import CoordinationHealthChecker", ("prometheus_client", "sqlite3")),
        # a WSGI app does not load the event processor's SQLite journal
        (
            "from coordination import CoordinationMiddleware",
            ("sqlite3", "prometheus_client", "flask", "werkzeug", "redis"),
        ),
        # the adapters name their frameworks' objects without importing the frameworks
        (
            "from coordination import CoordinationASGIMiddleware, CoordinationDjangoMiddleware",
            ("starlette", "fastapi", "django", "flask", "sqlite3"),
        ),
    ],
)
def test_a_part_loads_only_what_it_needs(statement: str, absent: tuple[str, ...]) -> None:
    modules = loaded_after(statement)
    assert [name for name in absent if name in modules] == []


# ``from coordination import handle_errors``: 195 modules while the error-handling modules
# imported asyncio at load time, 144 since it comes with the first async function; the rest
# is the standard library's dataclasses, logging, pathlib and the pipeline's own modules.
# 3.13's standard library loads more for the same imports (pathlib split into
# pathlib._abc and pathlib._local, traceback's _colorize, dis's _opcode_metadata): the
# same budget, counted in 3.13's modules. The retry budget's module and the reload's
# load with their first use, not here.
MAX_HANDLE_ERRORS_MODULES = 150 + (3 if sys.version_info >= (3, 13) else 0)


def test_handle_errors_loads_no_asyncio_until_an_async_function_is_decorated() -> None:
    sync = loaded_after("from coordination import handle_errors; handle_errors(lambda: 1)()")
    assert len(sync) <= MAX_HANDLE_ERRORS_MODULES, f"{len(sync)} modules: {sorted(sync)}"
    assert heavy_in(sync) == []
    asynchronous = loaded_after(
        "import asyncio; from coordination import handle_errors; "
        "assert asyncio.run(handle_errors(asyncio.sleep)(0, 7)) == 7"
    )
    assert "coordination.error_handling._async_runner" in asynchronous


def test_names_still_resolve_after_the_cheap_import() -> None:
    modules = loaded_after(
        "import coordination; coordination.CoordinationMetricsExporter; coordination.redact"
    )
    assert "prometheus_client" in modules  # loaded by the exporter, on first use


def test_subpackages_are_attributes_after_the_cheap_import() -> None:
    modules = loaded_after(
        "import coordination; coordination.validation.CoordinationValidator; "
        "assert 'error_handling' in dir(coordination)"
    )
    assert "coordination.validation" in modules
    assert "coordination.observability" not in modules
