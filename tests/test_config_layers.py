"""Configuration layers as documented, at every door: defaults < file < environment < config=.

A ``config=`` mapping overrides only the keys it names; the file named by
``COORDINATION_CONFIG_FILE`` and the ``COORDINATION_*`` variables still apply beneath it.
A whole ``CoordinationConfig`` is taken as it is. Unknown variables are reported once.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask, jsonify, request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from werkzeug.test import Client

from coordination import (
    ConfigError,
    ConfigWarning,
    CoordinationConfig,
    ValidationError,
    coordinate_operation,
    describe_config,
)
from coordination import _config as config_module
from coordination._cli import main
from coordination._config import CONFIG_FILE_VARIABLE, resolve_config
from coordination.error_handling import CoordinationErrorHandler
from coordination.integration import (
    CoordinationASGIMiddleware,
    CoordinationEventProcessor,
    CoordinationMiddleware,
    CoordinationServiceWrapper,
)
from coordination.observability import (
    CoordinationHealthChecker,
    CoordinationMetricsExporter,
    StatusPage,
)
from coordination.performance import CoordinationPerformanceMonitor
from coordination.validation import CoordinationValidator
from loopback import free_port

pytestmark = pytest.mark.usefixtures("clean_environment")

ORDER_RULES = {"required_fields": ["sku"]}


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which unknown variables this process has already warned about."""
    monkeypatch.setattr(config_module, "_warned_variables", set())


# --- the layers, through resolve_config (the one place every component uses) ----------


def test_mapping_overrides_only_its_keys_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COORDINATION_ENABLE_VALIDATION", "false")
    monkeypatch.setenv("COORDINATION_MAX_RETRIES", "7")
    config = resolve_config({"expose_endpoints": True, "base_delay": 0.1})
    assert config.enable_validation is False  # from the environment
    assert config.max_retries == 7  # from the environment
    assert (config.expose_endpoints, config.base_delay) == (True, 0.1)  # from the mapping


def test_mapping_beats_environment_beats_file_beats_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "coordination.yaml"
    path.write_text("max_retries: 5\nbase_delay: 2.0\nmax_delay: 9\n", encoding="utf-8")
    monkeypatch.setenv(CONFIG_FILE_VARIABLE, str(path))
    monkeypatch.setenv("COORDINATION_MAX_RETRIES", "6")
    monkeypatch.setenv("COORDINATION_BASE_DELAY", "3")
    config = resolve_config({"max_retries": 8})
    assert config.max_retries == 8  # mapping beats environment
    assert config.base_delay == 3.0  # environment beats file
    assert config.max_delay == 9.0  # file beats default
    assert config.jitter == "full"  # default
    assert resolve_config(None).max_retries == 6  # no mapping: the same layers below


def test_a_whole_config_means_exactly_that_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COORDINATION_ENABLE_VALIDATION", "false")
    monkeypatch.setenv(CONFIG_FILE_VARIABLE, "/nonexistent/coordination.yaml")
    given = CoordinationConfig(max_retries=1)
    assert resolve_config(given) is given
    assert CoordinationErrorHandler(given).config.enable_validation is True


def test_a_bad_mapping_value_names_the_config_argument() -> None:
    with pytest.raises(ConfigError, match="invalid max_retries = -1 from config argument"):
        resolve_config({"max_retries": -1})
    with pytest.raises(ConfigError, match="did you mean 'max_retries'"):
        resolve_config({"max_retires": 2})


def test_a_bad_environment_value_is_an_error_even_under_a_mapping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COORDINATION_MAX_RETRIES", "seven")
    with pytest.raises(ConfigError, match="COORDINATION_MAX_RETRIES"):
        resolve_config({"base_delay": 0.1})


def test_describe_config_names_each_layer(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("max_delay: 9\n", encoding="utf-8")
    env = {CONFIG_FILE_VARIABLE: str(path), "COORDINATION_BASE_DELAY": "3"}
    sources = {name: source for name, _, source in describe_config(environ=env, max_retries=1)}
    assert sources["max_delay"] == f"{path}, line 1"
    assert sources["base_delay"] == "environment variable COORDINATION_BASE_DELAY"
    assert sources["max_retries"] == "keyword argument"
    assert sources["jitter"] == "default"


# --- a file named on purpose must exist ------------------------------------------------


def test_missing_file_named_by_the_variable_is_an_error_at_every_door(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    absent = tmp_path / "absent.yaml"
    monkeypatch.setenv(CONFIG_FILE_VARIABLE, str(absent))
    message = f"{absent} .named by COORDINATION_CONFIG_FILE. does not exist"
    with pytest.raises(ConfigError, match=message) as caught:
        CoordinationErrorHandler()
    assert caught.value.field == CONFIG_FILE_VARIABLE
    with pytest.raises(ConfigError, match=message):
        CoordinationValidator(config={"validation_fail_fast": True})
    with pytest.raises(ConfigError, match=message):
        CoordinationConfig.load()


def test_empty_config_file_variable_means_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_FILE_VARIABLE, "")
    assert resolve_config({}) == CoordinationConfig()


# --- unknown COORDINATION_* variables ---------------------------------------------------


@pytest.mark.usefixtures("fresh_warnings")
def test_unknown_variable_warns_once_with_the_closest_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COORDINATION_MAX_RETRYS", "7")
    with pytest.warns(ConfigWarning) as caught:
        CoordinationErrorHandler({"base_delay": 0.1})
    assert len(caught) == 1
    text = str(caught[0].message)
    assert "'COORDINATION_MAX_RETRYS'" in text
    assert "did you mean COORDINATION_MAX_RETRIES?" in text
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would raise here
        CoordinationErrorHandler({"base_delay": 0.1})
        CoordinationValidator(config={})


@pytest.mark.usefixtures("fresh_warnings")
def test_a_variable_named_after_the_field_suggests_its_real_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two spec fields have variables that differ from their names.
    monkeypatch.setenv("COORDINATION_ENABLE_PERFORMANCE_MONITORING", "false")
    with pytest.warns(ConfigWarning, match="did you mean COORDINATION_ENABLE_PERFORMANCE\\?"):
        config = resolve_config(None)
    assert config.enable_performance_monitoring is True  # ignored, as the warning says


@pytest.mark.usefixtures("fresh_warnings")
def test_our_own_variables_that_are_not_settings_do_not_warn(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("{}\n", encoding="utf-8")
    monkeypatch.setenv(CONFIG_FILE_VARIABLE, str(path))
    monkeypatch.setenv("COORDINATION_REQUIRE_REDIS", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_config(None)


@pytest.mark.usefixtures("fresh_warnings")
def test_coordination_config_lists_unknown_variables(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COORDINATION_BASE_DELAI", "1")
    monkeypatch.setenv("COORDINATION_ZZZ", "1")
    assert main(["config"]) == 0
    shown = capsys.readouterr()
    assert "unknown environment variables (ignored):" in shown.out
    assert "COORDINATION_BASE_DELAI  did you mean COORDINATION_BASE_DELAY?" in shown.out
    assert "  COORDINATION_ZZZ\n" in shown.out
    assert shown.err == ""  # listed, not warned about as well

    assert main(["config", "--format", "json"]) == 0
    unknown = json.loads(capsys.readouterr().out)["unknown_environment_variables"]
    assert unknown == [
        {"name": "COORDINATION_BASE_DELAI", "did_you_mean": "COORDINATION_BASE_DELAY"},
        {"name": "COORDINATION_ZZZ", "did_you_mean": None},
    ]


@pytest.mark.usefixtures("fresh_warnings")
@pytest.mark.filterwarnings("default::coordination.ConfigWarning")
def test_other_commands_show_the_warning_as_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text("name: r\nrequired_fields: [sku]\n", encoding="utf-8")
    document = tmp_path / "d.json"
    document.write_text('{"sku": 1}', encoding="utf-8")
    monkeypatch.setenv("COORDINATION_ENABLE_VALIDATON", "false")
    assert main(["validate", "--rules", str(rules), "--rule-set", "r", str(document)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("coordination: warning: unknown environment variable")
    assert "did you mean COORDINATION_ENABLE_VALIDATION?" in err
    assert len(err.splitlines()) == 1


# --- every door: config={...} keeps the environment beneath it --------------------------


def _wsgi_app() -> Flask:
    app = Flask(__name__)

    @app.post("/orders")
    def orders() -> Any:
        return jsonify(request.get_json())

    return app


def _asgi_app() -> Starlette:
    async def orders(request: Request) -> JSONResponse:
        return JSONResponse(await request.json())

    return Starlette(routes=[Route("/orders", orders, methods=["POST"])])


DOORS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "error handler": lambda config: CoordinationErrorHandler(config),
    "validator": lambda config: CoordinationValidator(config=config),
    "monitor": lambda config: CoordinationPerformanceMonitor(config),
    "health checker": lambda config: CoordinationHealthChecker(config=config),
    "metrics exporter": lambda config: CoordinationMetricsExporter(config=config),
    "WSGI middleware": lambda config: CoordinationMiddleware(_wsgi_app(), config=config),
    "ASGI middleware": lambda config: CoordinationASGIMiddleware(_asgi_app(), config=config),
    "service wrapper": lambda config: CoordinationServiceWrapper(object(), config=config),
    "event processor": lambda config: CoordinationEventProcessor(
        config={**config, "dead_letter_path": ":memory:"}
    ),
}


@pytest.fixture
def closing() -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for thing in made:
        for name in ("close", "stop_monitoring"):
            method = getattr(thing, name, None)
            if callable(method):
                method()


@pytest.mark.parametrize("door", DOORS)
def test_every_door_layers_its_mapping_over_the_environment(
    door: str, monkeypatch: pytest.MonkeyPatch, closing: list[Any]
) -> None:
    monkeypatch.setenv("COORDINATION_ENABLE_VALIDATION", "false")
    monkeypatch.setenv("COORDINATION_MAX_RETRIES", "7")
    made = DOORS[door]({"expose_endpoints": True, "base_delay": 0.1})
    closing.append(made)
    config = made.config
    assert config.enable_validation is False
    assert config.max_retries == 7
    assert (config.expose_endpoints, config.base_delay) == (True, 0.1)


def test_the_status_page_takes_its_path_from_the_environment_under_a_mapping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COORDINATION_STATUS_PAGE_PATH", "/ops")
    assert StatusPage({}, config={"max_data_points": 10}).path == "/ops"
    assert StatusPage({}, config=CoordinationConfig()).path == "/coordination"


# --- the troubleshooting advice: validation off by the variable, no code change ---------


def _post_wsgi(app: Any) -> int:
    response = Client(app).post("/orders", json={"qty": 1})
    return response.status_code


def _post_asgi(app: Any) -> int:
    async def post() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return (await http.post("/orders", json={"qty": 1})).status_code

    return asyncio.run(post())


HTTP_DOORS = {
    "WSGI": (lambda config: CoordinationMiddleware(_wsgi_app(), **config), _post_wsgi),
    "ASGI": (lambda config: CoordinationASGIMiddleware(_asgi_app(), **config), _post_asgi),
}


@pytest.mark.parametrize("door", HTTP_DOORS)
def test_validation_off_by_the_variable_with_a_config_mapping_in_code(
    door: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make, post = HTTP_DOORS[door]
    options = {"config": {"max_retries": 1}, "route_rules": {"POST /orders": ORDER_RULES}}
    assert post(make(options)) == 422  # the rules apply
    monkeypatch.setenv("COORDINATION_ENABLE_VALIDATION", "false")
    assert post(make(options)) == 200  # the same code, validation off


def test_validation_off_by_the_variable_for_the_decorators(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def place(sku: str | None = None) -> str:
        return "placed"

    checked = coordinate_operation(validation_rules=ORDER_RULES, config={"max_retries": 0})
    with pytest.raises(ValidationError):
        checked(place)()
    monkeypatch.setenv("COORDINATION_ENABLE_VALIDATION", "false")
    unchecked = coordinate_operation(validation_rules=ORDER_RULES, config={"max_retries": 0})
    assert unchecked(place)() == "placed"


def test_validation_off_by_the_variable_for_the_validator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COORDINATION_ENABLE_VALIDATION", "false")
    validator = CoordinationValidator(config={"validation_fail_fast": True})
    assert validator.validate({}, ORDER_RULES).is_valid


# --- once under a real server: uvicorn, configured by the environment only -------------

APP_MODULE = """
from fastapi import FastAPI, Request

from coordination.integration import CoordinationASGIMiddleware

app = FastAPI()


@app.post("/orders")
async def orders(request: Request) -> dict:
    return await request.json()


app.add_middleware(
    CoordinationASGIMiddleware,
    config={"expose_endpoints": True},
    route_rules={"POST /orders": {"required_fields": ["sku"]}},
)
"""


def _serve_and_post(tmp_path: Path, environ: dict[str, str]) -> tuple[int, int, str]:
    """(status of an order without sku, status of /metrics, the server's stderr)."""
    (tmp_path / "orders_app.py").write_text(APP_MODULE, encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORDINATION_")}
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "orders_app:app"),
            *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        ],
        cwd=tmp_path,
        env={**env, **environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            while True:
                try:
                    order = http.post("/orders", json={"qty": 1}).status_code
                    break
                except httpx.TransportError:
                    assert server.poll() is None, server.communicate()[1]
                    assert time.monotonic() < deadline, "uvicorn did not start"
                    time.sleep(0.05)
            metrics = http.get("/metrics").status_code
    finally:
        server.terminate()
        _, err = server.communicate(timeout=20)
    return order, metrics, err


def test_under_uvicorn_the_environment_switches_validation_off(tmp_path: Path) -> None:
    assert _serve_and_post(tmp_path, {})[:2] == (422, 200)
    order, metrics, err = _serve_and_post(
        tmp_path, {"COORDINATION_ENABLE_VALIDATION": "false", "COORDINATION_MAX_RETRYS": "3"}
    )
    assert (order, metrics) == (200, 200)  # validation off, endpoints still on from code
    assert err.count("unknown environment variable 'COORDINATION_MAX_RETRYS'") == 1
    assert "did you mean COORDINATION_MAX_RETRIES?" in err
