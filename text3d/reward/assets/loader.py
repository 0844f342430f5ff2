"""Asset files from disk -> one coloured mesh each, or a reason why not.

``text3d score`` and ``text3d render`` read whatever a user points them at: every mesh
format trimesh 5.2 reads, with its materials and textures, hardened like the wire codec.

    discover(path, limits)          -> (root, list[Entry])   every file and archive member, classified;
                                                            nothing skipped silently
    load_asset(entry, root, limits, archives) -> LoadedAsset   a merged mesh (``text3d.protocol.mesh_parts``)
                                                     or ``InvalidAssetError`` with the reason

Formats (by suffix): ``.glb .gltf`` (embedded, external or data-URI buffers and images),
``.obj`` (+ ``.mtl`` and texture files), ``.ply`` (ASCII and binary; vertex or face colours),
``.stl`` (ASCII and binary), ``.off``, ``.3mf`` and ``.xaml`` and ``.3dxml`` (need ``lxml``),
``.dae`` and ``.zae`` (zipped COLLADA; need ``pycollada``), ``.drc``/``.draco`` (Draco), and
``.xyz`` (always a point cloud: listed as unscorable): every mesh format trimesh 5.2 lists.
Scenes are flattened with their node transforms. Zip and tar archives and single compressed
files (``.zip .tar .tar.gz .tgz .tar.bz2 .tar.xz .gz .bz2 .xz``; ``text3d.reward.assets.archives``)
are opened: each member is an entry of its own (``pack.zip/chair.obj``), loaded from a private
unpacked copy with the same rules as a file in a folder. DXF and SVG are 2D drawings (trimesh
reads them as paths, without surfaces) and 7z/RAR archives need tools Python lacks: listed
with that reason.

Colours (``text3d.protocol.mesh_parts``): vertex colours, face colours (flat), base-colour
textures through their UVs, material colours (glTF ``baseColorFactor``, MTL ``Kd``, 3MF /
COLLADA material colours). A part with none of them is drawn with the renderer's neutral
default material and the asset's notes say so.

Hostile files: a file's size is checked (``fstat``) before it is read; links are followed
only to files inside the scored folder (``text3d.reward.assets.safe_fs``), for the mesh and for every
material, buffer or texture it references; declared element counts (PLY/OFF headers,
OBJ lines, STL triangle counts, glTF accessors: ``text3d.reward.assets.prescan``) are checked
against ``MeshLimits`` before trimesh parses; texture sizes are read from image headers and bounded before any
image is decoded, then textures are decoded one at a time and box-filtered down to
``MAX_TEXTURE_PX``. Anything trimesh raises becomes an ``InvalidAssetError``.
"""

import importlib.util
import io
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh

from text3d.protocol.errors import MeshDecodeError
from text3d.protocol.limits import MeshLimits
from text3d.protocol.mesh_parts import Part, colour_summary, merge_parts, scene_parts
from text3d.reward.assets.archives import ArchiveCache, ArchiveLimits, archive_kind, list_members
from text3d.reward.assets.prescan import precheck
from text3d.reward.errors import InvalidAssetError
from text3d.reward.render.arrays import MAX_TEXTURE_PX
from text3d.reward.assets.safe_fs import inside, read_inside

__all__ = [
    "AssetLimits",
    "Entry",
    "LoadedAsset",
    "discover",
    "load_asset",
    "MESH_SUFFIXES",
    "SIDE_SUFFIXES",
    "DEFAULT_MATERIAL_NOTE",
]

MIB = 1 << 20
MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off", ".3mf", ".dae", ".zae", ".xaml", ".3dxml", ".drc",
                 ".draco", ".xyz")
SIDE_SUFFIXES = (".mtl", ".bin", ".png", ".jpg", ".jpeg", ".tga", ".bmp", ".gif", ".webp", ".ktx2", ".tif", ".tiff")
_NEEDS = {".3mf": ("lxml", "lxml"), ".xaml": ("lxml", "lxml"), ".3dxml": ("lxml", "lxml"),
          ".dae": ("collada", "pycollada"), ".zae": ("collada", "pycollada")}
_DRAWINGS = (".dxf", ".svg")
DEFAULT_MATERIAL_NOTE = "no colours or textures: drawn with the neutral default material (grey)"


@dataclass(frozen=True)
class AssetLimits:
    """Bounds on one asset file and everything it references.

    ``mesh`` bounds the declared and loaded element counts and the texture images
    (``max_image_px`` a side, ``max_image_pixels`` for all of an asset's images together,
    read from their headers). Local files get more room than the wire: 2M faces, 8192 px
    textures. ``max_file_bytes`` applies to the mesh file and to each file it references.
    """

    max_file_bytes: int = 64 * MIB
    max_archive_members: int = 10_000
    max_archive_unpacked_bytes: int = 1024 * MIB
    mesh: MeshLimits = MeshLimits(
        max_payload_bytes=64 * MIB, max_decoded_bytes=256 * MIB, max_vertices=2_000_000, max_faces=2_000_000,
        max_header_bytes=16 * MIB, max_gltf_objects=4096, max_image_px=8192, max_image_pixels=8192 * 8192,
    )
    max_texture_px: int = MAX_TEXTURE_PX

    def __post_init__(self) -> None:
        if self.max_file_bytes <= 0 or self.max_texture_px <= 0:
            raise ValueError("AssetLimits sizes must be positive")

    @property
    def archives(self) -> ArchiveLimits:
        """The archive limits these asset limits imply (each member as large as a file)."""
        return ArchiveLimits(max_archive_bytes=self.max_file_bytes, max_member_bytes=self.max_file_bytes,
                             max_unpacked_bytes=self.max_archive_unpacked_bytes, max_members=self.max_archive_members)


@dataclass(frozen=True)
class Entry:
    """One file found under the scored path. ``name`` is its path relative to the root
    (POSIX separators); ``reason`` is set for files that are not scored (``kind == "skip"``).
    A member of an archive has ``path`` = the archive, ``member`` = its name inside it and
    ``name`` = ``<archive name>/<member>``."""

    name: str
    path: Path
    kind: str  # "mesh" | "skip"
    reason: str | None = None
    member: str | None = None


@dataclass
class LoadedAsset:
    """A mesh ready for ``RewardModel.score_batch``: ``mesh`` is ``merge_parts`` of the
    flattened file; ``colours`` says how it is coloured; ``notes`` are for the report."""

    mesh: trimesh.Trimesh
    colours: str
    notes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # real paths of the files it read (MTL, textures, buffers)
    missing: list[str] = field(default_factory=list)  # paths it referenced that did not exist

    @property
    def n_faces(self) -> int:
        return int(len(self.mesh.faces))


def _classify(name: str) -> tuple[str, str | None]:
    suffix = os.path.splitext(name)[1].lower()
    if suffix in MESH_SUFFIXES:
        return "mesh", None
    if suffix in SIDE_SUFFIXES:
        return "skip", "material, buffer or texture file (read by the meshes that reference it)"
    if suffix in _DRAWINGS:
        return "skip", f"a 2D drawing ({suffix[1:].upper()}): trimesh reads it as paths without surfaces to render"
    kind = archive_kind(name)
    if kind == "unsupported":
        return "skip", f"a {suffix[1:]} archive: unpack it first (zip and tar archives are opened; {suffix} needs a tool " \
                       "Python does not ship)"
    if kind is not None:
        return "archive", None
    return "skip", f"not a mesh file ({suffix or 'no suffix'}; scored: {' '.join(MESH_SUFFIXES)}, zip and tar archives)"


def discover(path: str | Path, limits: AssetLimits | None = None) -> tuple[Path, list[Entry]]:
    """The root folder and every file under ``path`` (a folder, walked in sorted order
    without following folder links, or one file), classified.

    A link is scored only when its real path lies inside the root; links out of it,
    broken links, linked folders and special files are entries with a reason. An archive
    becomes one entry per member (``kind`` "mesh" for mesh members, "skip" with the reason
    for the others), or one "skip" entry with the reason when it cannot be opened.
    """
    limits = limits or AssetLimits()
    path = Path(path)
    if not path.is_dir():
        return path.parent, _expand(_entry(path.parent, path, os.path.realpath(path.parent)), limits)
    root_real = os.path.realpath(path)
    entries = []
    for folder, dirnames, filenames in os.walk(path, followlinks=False):
        dirnames.sort()
        for dirname in list(dirnames):
            full = Path(folder) / dirname
            if full.is_symlink():
                relative = full.relative_to(path).as_posix()
                entries.append(Entry(relative + "/", full, "skip", "a linked folder (links to folders are not followed)"))
        for filename in sorted(filenames):
            entries.extend(_expand(_entry(path, Path(folder) / filename, root_real), limits))
    return path, entries


def _expand(entry: Entry, limits: AssetLimits) -> list[Entry]:
    """An archive entry -> its members' entries; any other entry unchanged."""
    if entry.kind != "archive":
        return [entry]
    try:
        members = list_members(entry.path, limits.archives)
    except InvalidAssetError as exc:
        return [Entry(entry.name, entry.path, "skip", f"an archive that cannot be opened: {exc}")]
    if not members:
        return [Entry(entry.name, entry.path, "skip", "an empty archive")]
    out = []
    for member in members:
        name = f"{entry.name}/{member.name}"
        kind, reason = _classify(member.name)
        if member.reason is not None:
            kind, reason = "skip", member.reason
        elif kind == "archive":
            kind, reason = "skip", "an archive inside an archive: unpack the outer one first"
        out.append(Entry(name, entry.path, kind, reason, member=member.name))
    return out


def _entry(root: Path, full: Path, root_real: str) -> Entry:
    try:
        relative = full.relative_to(root).as_posix()
    except ValueError:
        relative = full.name
    kind, reason = _classify(full.name)
    try:
        info = os.lstat(full)
    except OSError as exc:
        return Entry(relative, full, "skip", f"cannot be read: {exc.strerror or exc}")
    if stat.S_ISLNK(info.st_mode):
        if not inside(root_real, str(full)):
            return Entry(relative, full, "skip", "a link to a file outside the folder (not followed)")
        if not os.path.exists(full):
            return Entry(relative, full, "skip", "a broken link")
    elif not stat.S_ISREG(info.st_mode):
        return Entry(relative, full, "skip", "not a regular file (a pipe, socket or device)")
    return Entry(relative, full, kind, reason)


class _FolderResolver(trimesh.resolvers.Resolver):
    """trimesh's way to read the files a mesh references (MTL, textures, glTF buffers),
    restricted to the scored folder, size-capped, and image-checked before decoding."""

    def __init__(self, directory: str, root_real: str, limits: AssetLimits, state: dict | None = None) -> None:
        self.directory, self.root_real, self.limits = directory, root_real, limits
        self.state = state if state is not None else {"pixels": 0, "notes": [], "fatal": None, "read": []}

    def get(self, name: str) -> bytes:
        name = str(name).strip()
        last_error = None
        for candidate in dict.fromkeys([name, name.replace("%20", " "), name.lstrip("./\\"), os.path.basename(name)]):
            if not candidate:
                continue
            path = os.path.join(self.directory, candidate)
            if not os.path.lexists(path):
                continue
            try:
                data = read_inside(self.root_real, path, self.limits.max_file_bytes, what=f"referenced file {name[:80]!r}")
            except InvalidAssetError as exc:
                last_error = str(exc)
                continue
            self._check_image(name, data)
            self.state["read"].append(os.path.realpath(path))
            return data
        message = last_error or f"referenced file {name[:80]!r} is missing"
        if message not in self.state["notes"]:
            self.state["notes"].append(message)
        if last_error is None:
            self.state.setdefault("missing", []).append(os.path.join(self.directory, name.lstrip("./\\")))
        raise FileNotFoundError(message)

    def _check_image(self, name: str, data: bytes) -> None:
        """Bound an image's declared size before trimesh hands it to PIL (fatal for the asset)."""
        from PIL import Image

        from text3d.protocol.images import check_image_bytes, check_lazy_image

        what = f"texture {name[:80]!r}"
        try:
            if data.startswith((b"\x89PNG", b"\xff\xd8")):
                _, self.state["pixels"] = check_image_bytes(data, self.limits.mesh, what, self.state["pixels"])
                return
            try:
                image = Image.open(io.BytesIO(data))  # lazy: reads the header only
            except Exception:
                return  # not an image (an MTL file, a buffer)
            self.state["pixels"] = check_lazy_image(image, self.limits.mesh, what, self.state["pixels"])
        except MeshDecodeError as exc:
            self.state["fatal"] = str(exc)
            raise

    def keys(self):
        return iter(())

    def namespaced(self, namespace: str) -> "_FolderResolver":
        return _FolderResolver(os.path.join(self.directory, namespace), self.root_real, self.limits, self.state)

    def write(self, name, data):
        raise PermissionError("asset folders are read-only")


# -- loading ---------------------------------------------------------------------------------


def load_asset(entry: Entry | str | Path, root: str | Path, limits: AssetLimits | None = None,
               archives: ArchiveCache | None = None) -> LoadedAsset:
    """Read, check and load one asset file under ``root``; ``InvalidAssetError`` says why not.

    ``root`` bounds where the file and everything it references may resolve to. A member
    of an archive is loaded from the archive's unpacked copy in ``archives`` (one is made
    and removed for this call when none is given), with that copy as its root.
    """
    limits = limits or AssetLimits()
    if isinstance(entry, Entry) and entry.member is not None:
        if archives is None:
            with ArchiveCache(limits.archives, keep=1) as own:
                return load_asset(entry, root, limits, own)
        folder, file = archives.member(entry.path, entry.member)
        loaded = load_asset(Entry(entry.name, file, entry.kind), folder, limits)
        loaded.sources = [os.path.realpath(entry.path)]  # the archive holds everything it read
        return loaded
    path = entry.path if isinstance(entry, Entry) else Path(entry)
    name = entry.name if isinstance(entry, Entry) else path.name
    suffix = path.suffix.lower()
    root_real = os.path.realpath(root)
    data = read_inside(root_real, path, limits.max_file_bytes, what=name)
    if suffix in _NEEDS and importlib.util.find_spec(_NEEDS[suffix][0]) is None:
        module, package = _NEEDS[suffix]
        raise InvalidAssetError(f"reading {suffix} files needs the Python package {package} (pip install {package})")
    try:
        precheck(suffix, data, limits.mesh)
        if suffix in (".drc", ".draco"):
            loaded, state = _load_draco(data), {"notes": [], "fatal": None, "pixels": 0, "read": []}
        else:
            resolver = _FolderResolver(os.path.dirname(os.path.realpath(path)), root_real, limits)
            state = resolver.state
            loaded = trimesh.load(io.BytesIO(data), file_type=suffix[1:], resolver=resolver, process=False)
        if state["fatal"]:
            raise InvalidAssetError(state["fatal"])
        parts, others = scene_parts(loaded)
        asset = _finish(parts, others, state, limits)
        asset.sources = sorted(set(state.get("read", ())))
        asset.missing = sorted(set(state.get("missing", ())))
        return asset
    except InvalidAssetError:
        raise
    except MeshDecodeError as exc:
        raise InvalidAssetError(str(exc)) from None
    except MemoryError:
        raise InvalidAssetError(f"{name} needs more memory than this machine has to load") from None
    except Exception as exc:  # whatever a parser raises on a malformed file
        detail = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise InvalidAssetError(
            f"trimesh cannot read this {suffix[1:].upper()} file ({type(exc).__name__}{': ' + detail if detail else ''})"
        ) from None


def _load_draco(data: bytes) -> trimesh.Trimesh | trimesh.PointCloud:
    import DracoPy

    decoded = DracoPy.decode(data)
    faces = getattr(decoded, "faces", None)
    if faces is None or len(faces) == 0:
        return trimesh.PointCloud(np.asarray(decoded.points))
    colours = getattr(decoded, "colors", None)
    return trimesh.Trimesh(np.asarray(decoded.points), np.asarray(faces), process=False, validate=False,
                           vertex_colors=None if colours is None else np.asarray(colours))


def _finish(parts: list[Part], others: list[str], state: dict, limits: AssetLimits) -> LoadedAsset:
    parts = [p for p in parts if len(p.faces)]
    if not parts:
        if any(kind == "PointCloud" for kind in others):
            raise InvalidAssetError("a point cloud: no triangles to render")
        if others:
            raise InvalidAssetError(f"no triangles to render (only {', '.join(sorted(set(others)))})")
        raise InvalidAssetError("no triangles to render (the file holds no geometry)")
    n_vertices, n_faces = sum(len(p.vertices) for p in parts), sum(len(p.faces) for p in parts)
    limits.mesh.check_counts("the asset", n_vertices, n_faces)
    decoded: dict[int, object] = {}
    finished = []
    for part in parts:
        texture = part.texture
        if texture is not None and id(texture) not in decoded:
            decoded[id(texture)], state["pixels"] = _decode_texture(texture, limits, state["pixels"])
        finished.append(Part(part.vertices, part.faces, part.colours, part.uv,
                             None if texture is None else decoded[id(texture)], part.factor, part.flat))
    vertices = np.concatenate([p.vertices for p in finished])
    if not np.isfinite(vertices).all():
        raise InvalidAssetError("the mesh has non-finite (NaN or infinite) vertex coordinates")
    for part in finished:
        if part.faces.min() < 0 or part.faces.max() >= len(part.vertices):
            raise InvalidAssetError("the mesh has face indices out of range")
    mesh = merge_parts(finished)
    notes = list(state["notes"])
    summary = colour_summary(finished)
    if any(p.source == "none" for p in finished):
        notes.append(DEFAULT_MATERIAL_NOTE if len({p.source for p in finished}) == 1
                     else "some parts have no colours: drawn with the neutral default material (grey)")
    if len(finished) > 1:
        notes.append(f"a scene of {len(finished)} parts, flattened with their transforms")
    if others:
        notes.append(f"ignored {len(others)} geometries without triangles ({', '.join(sorted(set(others)))})")
    return LoadedAsset(mesh=mesh, colours=summary, notes=notes)


def _decode_texture(image, limits: AssetLimits, pixels: int):
    """Decode one texture within the pixel budget, at most ``max_texture_px`` a side."""
    from PIL import Image

    from text3d.protocol.images import check_lazy_image

    pixels = check_lazy_image(image, limits.mesh, "a texture", pixels)
    width, height = image.size
    scale = min(1.0, limits.max_texture_px / max(width, height))
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    try:
        if scale < 1.0 and getattr(image, "format", None) == "JPEG":
            image.draft("RGB", target)  # libjpeg decodes at 1/2, 1/4 or 1/8 scale directly
        rgba = image.convert("RGBA")
    except Exception as exc:
        raise InvalidAssetError(f"a texture could not be decoded ({type(exc).__name__})") from None
    if rgba.size != target:
        rgba = rgba.resize(target, Image.Resampling.BOX)
    return rgba, pixels
