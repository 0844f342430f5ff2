"""The web page at ``/``: a prompt box, live progress, the winning asset in a 3D viewer, its evidence.

The page is one static HTML file with the viewer's ``<model-viewer>`` element
(``text3d.web.viewer``) and two files of our own (``static/gateway.js``, ``gateway.css``); the
viewer's script is served by the gateway itself from ``$TEXT3D_CACHE/web`` (installed by
``scripts/fetch_viewer.sh``), never from a CDN. Nothing a caller sent is ever written into the
HTML: the script puts prompts, captions and reasons on the page with ``textContent``, so
markup in them is shown as text. The mesh and the views are fetched with the key in the
``Authorization`` header and handed to the viewer as ``blob:`` URLs (keys never travel in
URLs, where logs and browser history would keep them). The key is kept in the browser's
``localStorage`` for the next visit.

Headers: a Content-Security-Policy that allows scripts from this origin only, no framing,
no referrer, no MIME sniffing.
"""

from __future__ import annotations

import html
from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response

from text3d.web.viewer import VIEWER_JS_NAME, VIEWER_MISSING_NOTE, viewer_element, viewer_js_path, viewer_script_tag

__all__ = ["PageAssets", "SECURITY_HEADERS"]

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' blob: data:; "
        "connect-src 'self' blob: data:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
_STATIC_TYPES = {"gateway.js": "text/javascript; charset=utf-8", "gateway.css": "text/css; charset=utf-8"}


def _static(name: str) -> str:
    return resources.files("text3d.gateway").joinpath("static", name).read_text(encoding="utf-8")


class PageAssets:
    """The page and its files, read once when the app is built."""

    def __init__(self, *, anonymous: bool, max_prompt_chars: int, viewer_js: Path | None = None) -> None:
        self.viewer_js = viewer_js if viewer_js is not None else viewer_js_path()
        if self.viewer_js is not None:
            script = viewer_script_tag(f"/static/{VIEWER_JS_NAME}")
            viewer = viewer_element("", alt="the winning asset", element_id="viewer", css_class="viewer")
        else:
            script = ""
            viewer = f'<p class="note" id="viewer-missing">{html.escape(VIEWER_MISSING_NOTE)}</p>'
        self.html = (_static("index.html")
                     .replace("{{VIEWER_SCRIPT}}", script)
                     .replace("{{VIEWER}}", viewer)
                     .replace("{{ANONYMOUS}}", "1" if anonymous else "0")
                     .replace("{{MAX_PROMPT_CHARS}}", str(int(max_prompt_chars))))
        self.files = {name: _static(name) for name in _STATIC_TYPES}

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)

        @router.get("/")
        async def page() -> HTMLResponse:
            return HTMLResponse(self.html, headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

        @router.get("/static/{name}")
        async def static(name: str) -> Response:
            if name in self.files:
                return Response(self.files[name], media_type=_STATIC_TYPES[name],
                                headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})
            if name == VIEWER_JS_NAME and self.viewer_js is not None:
                return FileResponse(self.viewer_js, media_type="text/javascript",
                                    headers={"Cache-Control": "public, max-age=86400"})
            return Response(status_code=404)

        return router
