"""/docs: Swagger UI, served entirely from the service's own origin.

The page names no other origin: Swagger UI's files come from the `fastapi-offline` package
(which ships a current Swagger UI 5 build; its FastAPI factory is not used, the app is
`PaymentsApp`) and are answered under `/docs/assets/`, with the start-up code in a file of ours
(`static/docs/swagger-init.js`), so the page holds under `script-src 'self'`: no inline script,
no CDN, no web font, no favicon or validator badge from elsewhere. An unknown asset is a 404
`ROUTE_NOT_FOUND` like any unknown path; HEAD, gzip and the security headers come from the
middleware, as for any route.

No ReDoc: its 2.x build always loads its footer logo from its vendor's CDN and starts its
search in a `blob:` worker, which `script-src 'self'` refuses. No OAuth2 redirect page: the
security schemes are a bearer token and a key, with no OAuth2 flow to return from.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse

ASSETS_PATH = "/docs/assets"
VENDOR = Path(fastapi_offline.__file__).parent / "static"
OURS = Path(__file__).resolve().parent.parent / "static" / "docs"
ASSETS: dict[str, tuple[Path, str]] = {
    "swagger-ui-bundle.js": (VENDOR / "swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": (VENDOR / "swagger-ui.css", "text/css"),
    "favicon.png": (VENDOR / "favicon.png", "image/png"),
    "swagger-init.js": (OURS / "swagger-init.js", "text/javascript"),
}
"""Every file the page loads, by the name they ask for it under ASSETS_PATH: nothing else is
answered there."""
ASSET_CACHE_CONTROL = "public, max-age=3600"

SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - Swagger UI</title>
<link rel="icon" type="image/png" href="{assets}/favicon.png">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/swagger-init.js"></script>
</body>
</html>
"""

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """The page, its URLs under the request's root path (a proxy's prefix) when it has one."""
    root = str(request.scope.get("root_path", ""))
    html = SWAGGER_PAGE.format(
        title=escape(request.app.title),
        assets=escape(root + ASSETS_PATH),
        openapi=escape(root + str(request.app.openapi_url)),
    )
    return HTMLResponse(html)


@router.get(ASSETS_PATH + "/{name}")
async def asset(name: str) -> FileResponse:
    found = ASSETS.get(name)
    if found is None:
        raise HTTPException(status_code=404)  # answered as ROUTE_NOT_FOUND (middleware/errors.py)
    path, media_type = found
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": ASSET_CACHE_CONTROL})
