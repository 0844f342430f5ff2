"""Where validators look from and what they see: the camera rig and the renderers.

    camera.py             the canonical rig and the secret per-step rigs (validators must agree)
    arrays.py             the validated, normalised arrays every backend draws
    views.py              ``render_views``: a mesh in, RGB views out, through the chosen backend
    moderngl_backend.py   the canonical renderer: moderngl on headless EGL
    pyrender_backend.py   the same rig on pyrender, for users who run it already
    watchdog.py           a hard time limit around drawing one asset (a hung driver makes it invalid)
"""

from text3d.common.lazy import lazy_exports

_HOMES = {
    "CameraRig": "text3d.reward.render.camera",
    "canonical_rig": "text3d.reward.render.camera",
    "draw_secret_rig": "text3d.reward.render.camera",
    "render_views": "text3d.reward.render.views",
}
__all__ = list(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
