"""The OpenAPI document and its Swagger UI page at /schema, with every asset served by Nexus itself.

Litestar's own pages load their JavaScript and CSS from public CDNs, so they stay blank on a network
without them. Here Swagger UI comes from the `swagger-ui-bundle-v2` package, the page holds no inline
script or style (the Content-Security-Policy of api.headers allows this origin only), and Swagger UI's
call to the public spec validator is turned off.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from litestar import Request, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin
from litestar.params import FromPath
from litestar.response import File
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


def config(version: str) -> OpenAPIConfig:
    return OpenAPIConfig(title="Nexus API", version=version, path=PATH,
                         render_plugins=[SwaggerPage(), JsonRenderPlugin()])


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
