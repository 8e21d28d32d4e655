"""The OpenAPI document and its Swagger UI page at /schema, with every asset served by Nexus itself.

Litestar's own pages load their JavaScript and CSS from public CDNs, so they stay blank on a network
without them. Here Swagger UI comes from the `swagger-ui-bundle-v2` package, the page holds no inline
script or style (the Content-Security-Policy of api.headers allows this origin only), and Swagger UI's
call to the public spec validator is turned off.

ErrorAnswers gives every route that takes a key the error answers of nexus.api.app (one body, ErrorBody, for
all of them) and the key it takes; tests/api/test_schemathesis.py checks the document against the app's routes
and fuzzes the API with it. RequestBodies gives the document the request bodies: handlers read them themselves,
within their own limits (nexus.api.body), so Litestar does not see their types; each such handler names them
in its `opt` under BODY, and their JSON schemas are msgspec's, under components/schemas as `request.<name>`.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, Request, Router, get
from litestar.config.app import AppConfig
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin
from litestar.openapi.spec import Components, OpenAPIMediaType, RequestBody, SecurityScheme
from litestar.params import FromPath
from litestar.plugins import InitPlugin, ReceiveRoutePlugin
from litestar.response import File
from litestar.routes import BaseRoute, HTTPRoute
from swagger_ui_bundle import swagger_ui_path

PATH = "/schema"
_SWAGGER = Path(str(swagger_ui_path))
_OWN = Path(__file__).parent / "static"
# The only files served: a fixed list, not the package's folder (whose demo page points at a public spec).
ASSETS = {
    "swagger-ui-bundle.js": _SWAGGER / "swagger-ui-bundle.js",
    "swagger-ui.css": _SWAGGER / "swagger-ui.css",
    "favicon-32x32.png": _SWAGGER / "favicon-32x32.png",
    "swagger-init.js": _OWN / "swagger-init.js",
}


# A handler with this in its `opt` takes no key and no input (the health checks): no error answer applies.
PUBLIC = "public"
# A handler that reads a body names what it takes under this key of its `opt`: the msgspec type of its JSON
# body (`opt={openapi.BODY: GoalInput}`), or a Body.
BODY = "body"
JSON = "application/json"
BINARY = None  # a Body's content type that is read as bytes (a file), not as JSON


class Body(msgspec.Struct, frozen=True):
    """A request body other than one required JSON type: for each media type it is taken in, its msgspec type,
    a tuple of types (any of them, e.g. one per analysis kind) or BINARY."""

    content: dict[str, Any]
    description: str | None = None
    required: bool = True


class ErrorBody(msgspec.Struct):
    """The body of every error answer (nexus.api.app's exception handlers)."""

    error: str
    field: str | msgspec.UnsetType = msgspec.UNSET  # 400: the JSON path, parameter or header at fault
    limit: str | msgspec.UnsetType = msgspec.UNSET  # 400: the query limit that was reached
    error_id: str | msgspec.UnsetType = msgspec.UNSET  # 500: the server log has the details under this id


# What nexus.api.statuses maps the error tree to, and Litestar's own 400 (a parameter of the wrong type).
ERRORS = {status: ResponseSpec(ErrorBody, description=description, generate_examples=False) for status, description in {
    400: "the request is malformed or impossible: `field` names the value at fault",
    401: "no API key, or one that is unknown or revoked",
    403: "the key's scope does not allow this",
    404: "no such thing in the key's project",
    413: "the body is over its size limit",
    429: "over the key's rate limit: retry after Retry-After seconds",
    500: "a fault of Nexus: `error_id` ties the answer to the server log",
    503: "ClickHouse or Redis is unavailable or overloaded: retry after Retry-After seconds",
}.items()}
# Segment's way (the key as the HTTP Basic user name) or a Bearer token; ingestion also takes the key in the body.
SECURITY = [{"key_as_basic_user": []}, {"bearer_key": []}]
_SECURITY_SCHEMES = {"key_as_basic_user": SecurityScheme(type="http", scheme="basic",
                                                         description="the API key as user name, no password"),
                     "bearer_key": SecurityScheme(type="http", scheme="bearer", description="the API key")}


def config(version: str) -> OpenAPIConfig:
    return OpenAPIConfig(title="Nexus API", version=version, path=PATH,
                         components=Components(security_schemes=_SECURITY_SCHEMES),
                         render_plugins=[SwaggerPage(), JsonRenderPlugin()])


class ErrorAnswers(ReceiveRoutePlugin):
    """Documents on every route but the public ones the error answers and the key it takes, so no handler
    repeats them. A handler's own `responses` win for the statuses they name."""

    def receive_route(self, route: BaseRoute) -> None:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                if not handler.opt.get(PUBLIC):
                    _document_errors(handler)


def _document_errors(handler: HTTPRouteHandler) -> None:
    # The app's handler is its own copy of the decorated one, sharing its dicts: replace them, never update.
    handler.responses = {**ERRORS, **(handler.responses or {})}
    handler.security = SECURITY


_COMPONENT = "request.{name}"  # apart from the names Litestar gives the schemas of answers


class RequestBodies(InitPlugin, ReceiveRoutePlugin):
    """Documents the body each handler names under BODY, once the document is built (at start-up, when every
    route is known), with msgspec's JSON schemas: one call for all types, so that types of the same name
    (every analysis has a `Request`) get distinct components."""

    def __init__(self) -> None:
        self._bodies: list[tuple[str, set[str], Body]] = []  # (path, methods, body)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.on_startup.append(self._document)
        return app_config

    def receive_route(self, route: BaseRoute) -> None:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                if BODY in handler.opt and handler.resolve_include_in_schema():
                    body = handler.opt[BODY]
                    self._bodies.append((route.path_format, handler.http_methods,
                                         body if isinstance(body, Body) else Body({JSON: body})))

    def _document(self, app: Litestar) -> None:
        document = app.openapi_schema
        types = list(dict.fromkeys(kind for _, _, body in self._bodies for taken in body.content.values()
                                   for kind in _types(taken)))
        schemas, components = msgspec.json.schema_components(types, ref_template=f"#/components/schemas/{_COMPONENT}")
        schema_of = dict(zip(types, schemas))
        for path, methods, body in self._bodies:
            request_body = RequestBody(content={media_type: OpenAPIMediaType(schema=_schema(taken, schema_of))
                                                for media_type, taken in body.content.items()},
                                       description=body.description, required=body.required)
            for method in methods:
                getattr(document.paths[path], method.lower()).request_body = request_body
        ours = {_COMPONENT.format(name=name): schema for name, schema in components.items()}
        # Litestar's names have no dot; the same schemas come again when the app starts again.
        assert all(document.components.schemas.get(name, schema) == schema for name, schema in ours.items())
        document.components.schemas = dict(sorted({**document.components.schemas, **ours}.items()))


def _types(taken: Any) -> tuple[Any, ...]:
    return () if taken is BINARY else taken if isinstance(taken, tuple) else (taken,)


def _schema(taken: Any, schema_of: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    if taken is BINARY:
        return {"type": "string", "format": "binary"}
    if isinstance(taken, tuple):
        return {"anyOf": [schema_of[kind] for kind in taken]}
    return schema_of[taken]


class SwaggerPage(OpenAPIRenderPlugin):
    """Swagger UI at /schema and /schema/swagger, reading /schema/openapi.json."""

    def __init__(self) -> None:
        super().__init__(path=["/", "/swagger"])

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        spec = self.get_openapi_json_route(request)
        assets = spec.rsplit("/", 1)[0] + "/assets"
        title = escape(str(openapi_schema["info"]["title"]))
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-spec="{escape(spec)}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/swagger-init.js"></script>
</body>
</html>
""".encode()

    def receive_router(self, router: Router) -> None:
        router.register(asset)


@get("/assets/{name:str}", include_in_schema=False, sync_to_thread=False,
     cache_control=CacheControlHeader(max_age=3600))
def asset(name: FromPath[str]) -> File:
    if name not in ASSETS:
        raise NotFoundException(f"no asset {name!r}")
    return File(ASSETS[name], filename=name, content_disposition_type="inline")
