"""The interactive 3D viewer every page uses: ``<model-viewer>``, served or written beside the page.

Why model-viewer: one custom element gives orbit, zoom, touch and auto-rotate on a GLB, it is
maintained by Google, and its UMD build (``model-viewer-umd.min.js``, ~1 MB, three.js inside)
is a classic script, so it runs from ``file://`` where browsers refuse ES modules. A page
loads it from a file beside itself (``copy_viewer_beside``) or from the server that sent the
page (the gateway serves ``/static/model-viewer-umd.min.js``): never from a CDN.

From ``file://`` a browser also refuses to fetch a GLB next to the page, so static pages
embed small meshes as ``data:`` URIs (``glb_data_uri``); servers link them.

The script is installed by ``scripts/fetch_viewer.sh`` (``make setup``: npm registry,
integrity-checked, pinned version) into ``$TEXT3D_CACHE/web``. Without it pages still work,
with still images only, and say how to get the viewer (``VIEWER_MISSING_NOTE``).
"""

from __future__ import annotations

import base64
import html
import shutil
from pathlib import Path

from text3d.common.paths import cache_dir

__all__ = [
    "VIEWER_VERSION",
    "VIEWER_JS_NAME",
    "VIEWER_MISSING_NOTE",
    "viewer_js_path",
    "copy_viewer_beside",
    "viewer_script_tag",
    "viewer_element",
    "glb_data_uri",
    "SWAGGER_UI_FILES",
    "swagger_ui_dir",
]

VIEWER_VERSION = "4.4.0"
VIEWER_JS_NAME = "model-viewer-umd.min.js"
VIEWER_MISSING_NOTE = ("3D viewer not installed: run `make setup` (or scripts/fetch_viewer.sh) to get "
                       "@google/model-viewer from the npm registry; still images are shown instead")


def viewer_js_path() -> Path | None:
    """The installed viewer script, or None when ``scripts/fetch_viewer.sh`` has not run."""
    path = cache_dir() / "web" / "node_modules" / "@google" / "model-viewer" / "dist" / VIEWER_JS_NAME
    return path if path.is_file() else None


# Swagger UI (npm ``swagger-ui-dist``, installed beside the viewer): what an API's /docs page needs.
SWAGGER_UI_FILES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
                    "favicon-32x32.png": "image/png"}


def swagger_ui_dir() -> Path | None:
    """The installed Swagger UI's folder (holding ``SWAGGER_UI_FILES``), or None before ``scripts/fetch_viewer.sh``."""
    folder = cache_dir() / "web" / "node_modules" / "swagger-ui-dist"
    return folder if all((folder / name).is_file() for name in SWAGGER_UI_FILES) else None


def copy_viewer_beside(out_dir: Path) -> str | None:
    """Put the viewer script in ``out_dir`` (once) and return its relative ``src``; None when not installed."""
    source = viewer_js_path()
    if source is None:
        return None
    target = Path(out_dir) / VIEWER_JS_NAME
    if not target.is_file() or target.stat().st_size != source.stat().st_size:
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(target)
    return VIEWER_JS_NAME


def viewer_script_tag(src: str) -> str:
    """The classic ``<script>`` that defines ``<model-viewer>`` (``src`` relative or server-absolute)."""
    return f'<script src="{html.escape(src, quote=True)}"></script>'


def viewer_element(glb_src: str, *, alt: str, poster: str | None = None, element_id: str | None = None,
                   css_class: str = "viewer", auto_rotate: bool = True) -> str:
    """One ``<model-viewer>`` element for ``glb_src`` (a URL, a relative path or a ``data:`` URI).

    Orbit and zoom with mouse or touch (``camera-controls``); ``poster`` shows until the mesh
    loads. Every attribute is escaped: ``alt`` usually carries a stranger's prompt. An empty
    ``glb_src`` leaves ``src`` out, for a page's script to set later (``src=""`` would load the page).
    """
    attrs = [f'src="{html.escape(glb_src, quote=True)}"'] if glb_src else []
    attrs += [f'alt="{html.escape(alt, quote=True)}"',
             f'class="{html.escape(css_class, quote=True)}"', "camera-controls", 'touch-action="pan-y"',
             'interaction-prompt="none"', 'shadow-intensity="0.6"', 'exposure="1.0"']
    if auto_rotate:
        attrs.append("auto-rotate")
    if poster:
        attrs.append(f'poster="{html.escape(poster, quote=True)}"')
    if element_id:
        attrs.append(f'id="{html.escape(element_id, quote=True)}"')
    return f"<model-viewer {' '.join(attrs)}></model-viewer>"


def glb_data_uri(glb: bytes) -> str:
    """A GLB as a ``data:`` URI, for pages opened from ``file://`` (keep meshes small: base64 is 4/3 the size)."""
    return "data:model/gltf-binary;base64," + base64.b64encode(glb).decode("ascii")
