"""What every page the project writes shares: the interactive 3D viewer, without a CDN.

    viewer.py   Google's ``<model-viewer>`` (bundles three.js) and Swagger UI (an API's /docs),
                installed from the npm registry by ``scripts/fetch_viewer.sh`` (``make setup``) into
                ``$TEXT3D_CACHE/web``; pages copy the viewer beside themselves or a server serves
                both, so they work offline and from ``file://``. A base part like ``common``: the
                scoring core's reports may use it.
"""

from text3d.common.lazy import lazy_exports

_HOMES = {
    "viewer_js_path": "text3d.web.viewer",
    "copy_viewer_beside": "text3d.web.viewer",
    "viewer_element": "text3d.web.viewer",
    "glb_data_uri": "text3d.web.viewer",
    "VIEWER_JS_NAME": "text3d.web.viewer",
    "swagger_ui_dir": "text3d.web.viewer",
}
__all__ = list(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
