"""Asset files from disk, read as hostile input: sizes checked before parsing, links not followed.

    loader.py    a file or folder -> one coloured mesh each, or the reason why not (``text3d score``)
    archives.py  zip and tar archives: each member an asset, unpacked under caps into a private folder
    prescan.py   declared element counts checked before trimesh allocates for them
    safe_fs.py   reading untrusted folders and writing report folders without following links
"""

from text3d.common.lazy import lazy_exports

_HOMES = {
    "load_asset": "text3d.reward.assets.loader",
    "discover": "text3d.reward.assets.loader",
    "precheck": "text3d.reward.assets.prescan",
    "ArchiveCache": "text3d.reward.assets.archives",
}
__all__ = list(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
