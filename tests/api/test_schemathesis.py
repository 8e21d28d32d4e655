"""The whole API fuzzed from its own OpenAPI document (schemathesis over the real server): no input gets a
5xx, every answer has a status, content type and body the document declares, and the document is complete:
every route the app serves is in it with its methods, every operation that takes a key declares its
error answers and the key, and every handler that reads a body documents it."""

from __future__ import annotations

import inspect
import json
import re
import uuid
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute
from schemathesis import GenerationMode
from schemathesis.errors import FailureGroup

from nexus.analyses import registry
from nexus.api import ingest, openapi, posthog
from nexus.api.admin import instance_admin
from tests.api.conftest import Server

INSTANCE_KEY = "instance-admin-key-for-the-fuzzer-0123456789"
# Every status nexus.api.statuses maps an error to (and Litestar's 400 for a parameter of the wrong type).
ERROR_STATUSES = {"400", "401", "403", "404", "413", "429", "500", "503"}
WRITE_HANDLERS = {handler.fn for handler in [*ingest.WRITE_ROUTES, posthog.capture, posthog.capture_v1]}
# Left out of the document on purpose: the Prometheus text for scrapers, and the document's own pages (with
# Litestar's answer for a page it does not have).
UNDOCUMENTED = {("/metrics", "GET"), *((f"{openapi.PATH}{page}", "GET") for page in (
    "", "/swagger", "/openapi.json", "/assets/{name}", "/{path}"))}

# Operations whose body is a CSV file: any text is one, so no body is invalid, though schemathesis sends an
# object (as text) where the document says a string.
TEXT_BODIES = ["/v1/cohorts/upload", "/v1/cohorts/{cohort_id}/members"]


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    # The fuzzer sends hundreds of requests a second with one key: no rate limit gets in its way.
    return {"NEXUS_ADMIN_KEY": INSTANCE_KEY, "NEXUS_RATE_LIMIT": "1000000"}


@pytest.fixture(scope="module")
def api_schema(server: Server, tmp_path_factory: pytest.TempPathFactory) -> schemathesis.BaseSchema:
    """The document as the server serves it, with every check schemathesis has but one: that input fitting
    the document is accepted. The document has the types of parameters and bodies but not every rule on
    their values (a non-empty batch, a goal's event or path pattern, a name's characters), so input that
    fits it is often rightly refused."""
    config = schemathesis.Config.from_dict({"checks": {"positive_data_acceptance": {"enabled": False}}, "operations": [
        {"include-path": TEXT_BODIES, "checks": {"negative_data_rejection": {"enabled": False}}}]})
    schema = schemathesis.openapi.from_url(f"{server.url}{openapi.PATH}/openapi.json", config=config)
    schema.hook("filter_query")(one_value_each)
    backups = tmp_path_factory.mktemp("backups")

    def backup_in_tmp(context: schemathesis.HookContext, body: Any) -> Any:
        """A backup the fuzzer asks for goes under the test's own directory, not wherever the path says."""
        if (context.operation is not None and context.operation.path == "/v1/backups" and isinstance(body, dict)
                and isinstance(body.get("path"), str)):
            return {**body, "path": str(backups / uuid.uuid4().hex)}
        return body

    schema.hook("map_body")(backup_in_tmp)
    return schema


@pytest.fixture(scope="module")
def key_of_operation(server: Server) -> dict[tuple[str, str], str]:
    """The key each operation takes, so that fuzzing reaches the handler rather than stopping at 401:
    the instance admin key where only it will do, the project's write key for ingestion, its admin key
    (which allows every scope of its project) elsewhere."""
    _, project_keys = server.project_with_keys("fuzzed")
    chosen = {}
    for path, method, handler in _operations(server.app, in_schema=True):
        if instance_admin in (handler.guards or []):
            chosen[path, method] = INSTANCE_KEY
        elif handler.fn in WRITE_HANDLERS:
            chosen[path, method] = project_keys["write"]
        else:
            chosen[path, method] = project_keys["admin"]
    return chosen


# Few examples per operation and mode, always the same ones: CI stays fast and a failure reproduces.
FUZZING = hypothesis.settings(max_examples=3, deadline=None, derandomize=True, database=None,
                              suppress_health_check=list(hypothesis.HealthCheck))


def one_value_each(_: schemathesis.HookContext, query: dict[str, Any] | None) -> bool:
    """Leaves out a query parameter sent as a list or an object, where the document says one value: Litestar
    takes the last of a repeated parameter and ignores names a route does not take, as most frameworks do."""
    return all(not isinstance(value, (list, dict)) for value in (query or {}).values())


def test_no_input_gets_a_server_error_or_an_undocumented_answer(
        api_schema: schemathesis.BaseSchema, key_of_operation: dict[tuple[str, str], str]) -> None:
    """Inputs that fit the document and inputs that do not, for every operation, and the checks of
    api_schema: no 5xx; status, content type, headers and body as documented; bad input refused; a request
    without a key refused."""
    failures = {}
    for result in api_schema.get_all_operations():
        operation = result.ok()
        key = key_of_operation[operation.path, operation.method.upper()]
        for mode in GenerationMode:
            if failure := _fuzz(operation, mode, {"Authorization": f"Bearer {key}"}):
                failures[f"{mode} {operation.label}"] = failure
    assert not failures, "\n\n".join(f"{label}: {failure}" for label, failure in failures.items())


def _fuzz(operation: schemathesis.APIOperation, mode: GenerationMode, headers: dict[str, str]) -> str | None:
    """What schemathesis's checks found wrong with the operation's answers to a few inputs of this mode."""

    @FUZZING
    @hypothesis.given(case=operation.as_strategy(mode))
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, timeout=30)

    try:
        fuzz()
    except hypothesis.errors.Unsatisfiable:
        assert mode == GenerationMode.NEGATIVE, operation.label  # an operation without input has no bad input
    except (AssertionError, FailureGroup) as failure:  # one failed check, or a group of them
        return str(failure)
    return None


def test_the_document_has_every_route_with_its_methods_and_error_answers(server: Server, http: httpx.Client) -> None:
    document = http.get(f"{openapi.PATH}/openapi.json").json()
    served = {(path, method) for path, method, handler in _operations(server.app, in_schema=True)}
    documented = {(path, method.upper()) for path, operations in document["paths"].items() for method in operations}
    assert served == documented
    assert {(path, method) for path, method, handler in _operations(server.app, in_schema=False)} == UNDOCUMENTED
    for path, method, handler in _operations(server.app, in_schema=True):
        answers = document["paths"][path][method.lower()]["responses"]
        if handler.opt.get(openapi.PUBLIC):
            assert not ERROR_STATUSES & {status for status in answers if status[0] == "4"}, (path, method)
            continue
        assert ERROR_STATUSES <= set(answers), (path, method, sorted(answers))
        for status in ERROR_STATUSES:  # ErrorBody, or a route's own body that can say what went wrong too
            reference = answers[status]["content"]["application/json"]["schema"]["$ref"]
            body = document["components"]["schemas"][reference.removeprefix("#/components/schemas/")]
            assert "error" in body["properties"], (path, method, status, reference)
        assert document["paths"][path][method.lower()]["security"] == openapi.SECURITY


# A handler reads its body with nexus.api.body.read_body (admin's through its `_body`), or streams it (imports).
READS_A_BODY = re.compile(r"\b(read_body|_body)\(request\b|request\.(stream|body)\(\)")


def test_every_handler_that_reads_a_body_documents_it(server: Server, http: httpx.Client) -> None:
    """Found from the handlers' source, so a handler that reads a body without naming it under openapi.BODY
    fails here; and the document has a schema for every media type it names."""
    document = http.get(f"{openapi.PATH}/openapi.json").json()
    operations = _operations(server.app, in_schema=True)
    reading = {(path, method) for path, method, handler in operations if READS_A_BODY.search(inspect.getsource(handler.fn))}
    declaring = {(path, method) for path, method, handler in operations if openapi.BODY in handler.opt}
    assert reading == declaring
    assert len(reading) > 40  # the search finds the handlers: ingestion alone has 19 paths
    for path, method in reading:
        content = document["paths"][path][method.lower()]["requestBody"]["content"]
        assert content, (path, method)
        for media_type in content.values():
            for reference in re.findall(r"#/components/schemas/([^\"]+)", json.dumps(media_type["schema"])):
                assert reference in document["components"]["schemas"], (path, method, reference)
    analyses = document["paths"]["/v1/analyses/{kind}"]["post"]["requestBody"]["content"]["application/json"]
    assert len(analyses["schema"]["anyOf"]) == len(registry.ANALYSES)


def _operations(app: Litestar, *, in_schema: bool) -> list[tuple[str, str, HTTPRouteHandler]]:
    """(path as the document spells it, `/v1/keys/{key_id}`; method; handler) of every operation the app
    serves, in its document or left out of it (but for the OPTIONS answers Litestar adds to every path)."""
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for method, (handler, _) in route.route_handler_map.items():
            if method != "OPTIONS" and handler.resolve_include_in_schema() == in_schema:
                found.append((route.path_format, method, handler))
    return found
