"""docs/openapi.yaml describes exactly the HTTP API the app serves under /v1 and /twilio.

The schemathesis run of `make faults` is only worth something if the file it fuzzes is
the API: a route missing from the file is never fuzzed, and a path in the file that the
app does not serve is a lie to every client generated from it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dramatiq.brokers.stub import StubBroker

from shared.app import create_app, create_metrics_app
from shared.config import Settings

yaml = pytest.importorskip("yaml", reason="pyyaml (the test extra) reads docs/openapi.yaml")

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
PREFIXES = ("/v1/", "/twilio/")
METHODS = {"get", "post", "put", "patch", "delete"}


def load_spec() -> dict:
    return yaml.safe_load(SPEC.read_text(encoding="utf-8"))


def spec_operations(spec: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in spec["paths"].items()
            for method in item if method in METHODS}


def app_operations() -> set[tuple[str, str]]:
    """Every (method, path) `leadsms web` serves (the app and its metrics listener), in demo
    mode (a superset: the demo adds two routes), a static folder as the spec writes it
    (`/static/{filename}`)."""
    from aiohttp.web_urldispatcher import StaticResource

    settings = Settings(database_url="postgresql://unused/unused", redis_url="redis://unused:1/0",
                        public_base_url="http://127.0.0.1:1", twilio_account_sid="AC", twilio_auth_token="t",
                        demo_sim_url="http://127.0.0.1:1")
    app = create_app(settings, broker=StubBroker())
    # `/metrics` is served by `leadsms web`'s second listener (METRICS_PORT)
    return {(route.method, route.resource.canonical + ("/{filename}" if isinstance(route.resource, StaticResource)
                                                       else ""))
            for served in (app, create_metrics_app(app))
            for route in served.router.routes() if route.method != "HEAD" and route.resource is not None}


def test_every_v1_and_twilio_route_of_the_app_is_in_the_spec_and_nothing_else():
    served = {op for op in app_operations() if op[1].startswith(PREFIXES)}
    documented = {op for op in spec_operations(load_spec()) if op[1].startswith(PREFIXES)}
    assert served - documented == set(), "routes the spec does not describe"
    assert documented - served == set(), "spec paths the app does not serve"


def test_every_route_of_the_app_pages_and_demo_included_is_in_the_spec():
    assert app_operations() - spec_operations(load_spec()) == set(), "routes the spec does not describe"


def test_every_documented_operation_of_the_spec_is_served():
    assert spec_operations(load_spec()) - app_operations() == set()


def test_every_documented_error_answer_is_the_error_object():
    spec = load_spec()
    responses = spec["components"]["responses"]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            for status, answer in op["responses"].items():
                if int(status) < 400:
                    continue
                if "$ref" in answer:
                    answer = responses[answer["$ref"].rsplit("/", 1)[1]]
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "code"]


def test_every_v1_operation_needs_the_firm_key_and_every_twilio_one_a_signature():
    spec = load_spec()
    assert spec["security"] == [{"firmKey": []}]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            if path == "/v1/events/stream":  # an EventSource cannot send headers: a stream token
                assert op["security"] == [{"streamToken": []}] and "401" in op["responses"], (method, path)
            elif path.startswith("/v1/"):
                assert "security" not in op and "401" in op["responses"], (method, path)
            if path.startswith("/twilio/"):
                assert op["security"] == [] and "403" in op["responses"], (method, path)
