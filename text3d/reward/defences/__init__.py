"""What keeps a score honest: each defence is one module, pure where it can be.

    budget.py         refuse, before drawing, a mesh that would cost far more to draw than an honest one
    flatness.py       a billboard is not a 3D object: thickness and silhouettes
    ocr.py            views with legible text score 0 (typographic attacks)
    caption_guard.py  a caption that reads text off the views earns no caption score
    fingerprint.py    is this answer the same object as that one, however deformed (copycats): the rule
    shape_cloud.py    an answer's outer surface as a small cloud in a frame no affine map changes
    alignment.py      two clouds aligned (48 axis flips, affine ICP, a quadratic bend), what is left between them
    cloud_evidence.py what two clouds say before any alignment: relief, colour histograms, radial profiles
    canary.py         a known mesh and prompt that tell the validator its own pipeline works
"""

from text3d.common.lazy import lazy_exports

_HOMES = {
    "estimate_overdraw": "text3d.reward.defences.budget",
    "flatness_factor": "text3d.reward.defences.flatness",
    "ocr_views": "text3d.reward.defences.ocr",
    "caption_flag": "text3d.reward.defences.caption_guard",
    "fingerprint": "text3d.reward.defences.fingerprint",
    "check_canary": "text3d.reward.defences.canary",
}
__all__ = list(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
