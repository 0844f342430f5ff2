"""Zip and tar archives (and single compressed files) of assets, opened without trusting them.

trimesh 5.2 lists zip, tar.gz, tar.bz2 and bz2 among the formats it reads, by unpacking
everything into memory; a library often arrives as such archives. Here every member is an
asset of its own, named ``pack.zip/chairs/chair.obj``, and side files (MTL, textures,
glTF buffers) inside an archive are found by the meshes beside them, as in a folder:

    list_members(path, limits)   -> list[Member]   every member, classified by the caller
    ArchiveCache(limits).folder(path) -> Path      the archive unpacked into a private temp
                                                   folder (the last few kept), for the loader

Hostile archives: the archive's size is checked (``fstat``) before it is read; members are
counted and their unpacked sizes summed -- declared sizes first, then the bytes actually
written, which stop at each member's cap whatever the header says (zip bombs, lying tar
headers); names that are absolute, climb out with ``..``, repeat, or hold control
characters are refused per member; links, devices and folders inside an archive are
never created (listed with their reason); an archive inside an archive is not opened.
Unpacked files live under a ``tempfile.mkdtemp`` folder removed by ``close()``.

Formats by suffix: ``.zip``, ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``/``.tbz2``,
``.tar.xz``/``.txz``, and one compressed file ``NAME.gz``/``.bz2``/``.xz`` (its member is
NAME). 7z and RAR need tools Python does not ship: listed with that reason.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from text3d.reward.assets.safe_fs import read_inside
from text3d.reward.errors import InvalidAssetError

__all__ = ["ArchiveLimits", "Member", "archive_kind", "list_members", "ArchiveCache", "UNSUPPORTED_ARCHIVES"]

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_COMPRESSED = {".gz": gzip.GzipFile, ".bz2": bz2.BZ2File, ".xz": lzma.LZMAFile}  # suffix -> stream reader
_DAMAGED = (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, lzma.LZMAError, zlib.error, NotImplementedError)
UNSUPPORTED_ARCHIVES = (".7z", ".rar")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    """``max_archive_bytes``: the archive file itself; ``max_member_bytes``: each member
    unpacked; ``max_unpacked_bytes``: all members together; ``max_members``: entries."""

    max_archive_bytes: int = 64 << 20
    max_member_bytes: int = 64 << 20
    max_unpacked_bytes: int = 1 << 30
    max_members: int = 10_000


@dataclass(frozen=True)
class Member:
    """One entry of an archive: ``name`` inside it (POSIX); ``reason`` set when it is not
    unpacked (a link, a folder, an unsafe or repeated name)."""

    name: str
    size: int
    reason: str | None = None


def archive_kind(name: str) -> str | None:
    """"zip", "tar", "compressed" (one file: ``x.stl.gz``), "unsupported" (7z, RAR) or None."""
    lower = name.lower()
    if lower.endswith(".zip"):
        return "zip"
    if lower.endswith(_TAR_SUFFIXES):
        return "tar"
    if lower.endswith(UNSUPPORTED_ARCHIVES):
        return "unsupported"
    if lower.endswith(tuple(_COMPRESSED)):
        return "compressed"
    return None


def _unsafe(name: str) -> str | None:
    """Why a member name cannot become a file under the unpack folder (None: it can)."""
    if not name or len(name) > 1024:
        return "an empty or overlong name"
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        return "a name with control characters"
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or any(part in ("..", "") for part in path.parts) or ":" in path.parts[0]:
        return "a name that leaves the archive (absolute or with ..)"
    return None


def _read_archive(path: Path, limits: ArchiveLimits) -> bytes:
    return read_inside(os.path.dirname(os.path.realpath(path)), path, limits.max_archive_bytes,
                       what=path.name)


def list_members(path: str | Path, limits: ArchiveLimits | None = None) -> list[Member]:
    """Every member of the archive at ``path``, in archive order; ``InvalidAssetError`` for an
    archive that cannot be read or exceeds ``limits`` as a whole (too many members, unpacks
    to too much)."""
    limits = limits or ArchiveLimits()
    path = Path(path)
    kind = archive_kind(path.name)
    data = _read_archive(path, limits)
    if kind == "compressed":
        stem = path.name[: path.name.rfind(".")]
        return [Member(stem, len(data))]
    if kind == "zip":
        return _zip_members(data, limits)
    if kind == "tar":
        return _tar_members(data, limits)
    raise InvalidAssetError(f"{path.name} is not a zip or tar archive")


def _zip_members(data: bytes, limits: ArchiveLimits) -> list[Member]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise InvalidAssetError(f"not a readable zip archive ({type(exc).__name__})") from None
    if len(infos) > limits.max_members:
        raise InvalidAssetError(f"the archive holds {len(infos)} entries, the limit is {limits.max_members}")
    declared = sum(i.file_size for i in infos)
    if declared > limits.max_unpacked_bytes:
        raise InvalidAssetError(f"the archive unpacks to {declared} bytes, the limit is {limits.max_unpacked_bytes}")
    seen: set[str] = set()
    members = []
    for info in infos:
        name = info.filename
        if info.is_dir():
            continue  # folders are implied by the files' names
        reason = _unsafe(name)
        mode = (info.external_attr >> 16) & 0o170000
        if reason is None and mode not in (0, 0o100000):
            reason = "a link or special file inside the archive (not unpacked)"
        if reason is None and info.flag_bits & 0x1:
            reason = "an encrypted member"
        if reason is None and info.file_size > limits.max_member_bytes:
            reason = f"{info.file_size} bytes unpacked, the limit is {limits.max_member_bytes} (raise it with --max-file-mb)"
        key = name.replace("\\", "/")
        if reason is None and key in seen:
            reason = "a repeated name (the first member of that name is used)"
        seen.add(key)
        members.append(Member(key, int(info.file_size), reason))
    return members


def _tar_open(data: bytes) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=io.BytesIO(data), mode="r|*")
    except _DAMAGED as exc:
        raise InvalidAssetError(f"not a readable tar archive ({type(exc).__name__})") from None


def _tar_members(data: bytes, limits: ArchiveLimits) -> list[Member]:
    members, seen, declared = [], set(), 0
    archive = _tar_open(data)
    try:
        for info in archive:  # stream mode: stops at the first member over a limit
            if len(members) >= limits.max_members:
                raise InvalidAssetError(f"the archive holds more than {limits.max_members} entries")
            if info.isdir():
                continue
            declared += max(0, info.size)
            if declared > limits.max_unpacked_bytes:
                raise InvalidAssetError(f"the archive unpacks to more than {limits.max_unpacked_bytes} bytes")
            name = info.name
            reason = _unsafe(name)
            if reason is None and not info.isreg():
                reason = "a link or special file inside the archive (not unpacked)"
            if reason is None and info.size > limits.max_member_bytes:
                reason = f"{info.size} bytes unpacked, the limit is {limits.max_member_bytes} (raise it with --max-file-mb)"
            key = name.replace("\\", "/")
            if reason is None and key in seen:
                reason = "a repeated name (the first member of that name is used)"
            seen.add(key)
            members.append(Member(key, int(info.size), reason))
    except InvalidAssetError:
        raise
    except _DAMAGED as exc:
        raise InvalidAssetError(f"the tar archive is damaged ({type(exc).__name__})") from None
    finally:
        archive.close()
    return members


def _copy_capped(source, target: Path, cap: int, budget: list[int], what: str) -> None:
    """Copy a stream to a new file, at most ``cap`` bytes and what is left of ``budget[0]``."""
    written = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as out:
        while True:
            chunk = source.read(_CHUNK)
            if not chunk:
                break
            written += len(chunk)
            budget[0] -= len(chunk)
            if written > cap:
                raise InvalidAssetError(f"{what} unpacks to more than {cap} bytes")
            if budget[0] < 0:
                raise InvalidAssetError("the archive unpacks to more than its limit")
            out.write(chunk)


def _unpack(path: Path, folder: Path, limits: ArchiveLimits) -> dict[str, str]:
    """Write the usable members of ``path`` under ``folder`` (see ``list_members``); returns
    ``{member: reason}`` for members that could not be unpacked (damaged data)."""
    kind = archive_kind(path.name)
    usable = {m.name for m in list_members(path, limits) if m.reason is None}
    data = _read_archive(path, limits)
    budget = [limits.max_unpacked_bytes]
    failed: dict[str, str] = {}

    def write(name: str, stream) -> None:
        target = folder.joinpath(*PurePosixPath(name).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            _copy_capped(stream, target, limits.max_member_bytes, budget, name)
        except InvalidAssetError as exc:  # over a cap while unpacking: the header lied
            target.unlink(missing_ok=True)
            if budget[0] < 0:
                raise
            failed[name] = str(exc)
        except _DAMAGED as exc:
            target.unlink(missing_ok=True)
            failed[name] = f"cannot be unpacked ({type(exc).__name__}: the archive is damaged)"

    if kind == "compressed":
        (name,) = usable
        with _COMPRESSED[path.suffix.lower()](fileobj=io.BytesIO(data)) as stream:
            write(name, stream)
        return failed
    if kind == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                name = info.filename.replace("\\", "/")
                if name in usable:
                    usable.discard(name)  # the first of a repeated name only
                    try:
                        with archive.open(info) as stream:
                            write(name, stream)
                    except _DAMAGED as exc:
                        failed[name] = f"cannot be unpacked ({type(exc).__name__})"
        return failed
    archive = _tar_open(data)
    try:
        for info in archive:
            name = info.name.replace("\\", "/")
            if name in usable and info.isreg():
                usable.discard(name)
                stream = archive.extractfile(info)
                if stream is not None:
                    write(name, stream)
    except _DAMAGED as exc:
        raise InvalidAssetError(f"the tar archive is damaged ({type(exc).__name__})") from None
    finally:
        archive.close()
    return failed


class ArchiveCache:
    """Archives unpacked into private temporary folders, the ``keep`` most recent kept.

    Members of one archive are usually loaded one after another (``discover`` lists them
    together), so one unpacking serves them all. ``close()`` removes every folder; use it
    as a context manager. An archive that cannot be unpacked raises ``InvalidAssetError``
    for each member asked for (the reason is remembered, the work is not redone).
    """

    def __init__(self, limits: ArchiveLimits | None = None, keep: int = 2) -> None:
        self.limits = limits or ArchiveLimits()
        self.keep = keep
        self._folders: OrderedDict[str, Path | str] = OrderedDict()
        self._failed: dict[str, dict[str, str]] = {}

    def member(self, archive: str | Path, name: str) -> tuple[Path, Path]:
        """(the unpack folder, the member's file in it); ``InvalidAssetError`` with the reason
        when the archive or this member could not be unpacked."""
        folder = self.folder(archive)
        reason = self._failed.get(os.path.realpath(archive), {}).get(name)
        if reason is not None:
            raise InvalidAssetError(reason)
        return folder, folder.joinpath(*PurePosixPath(name).parts)

    def folder(self, archive: str | Path) -> Path:
        key = os.path.realpath(archive)
        if key in self._folders:
            self._folders.move_to_end(key)
        else:
            while len(self._folders) >= self.keep:
                old_key, old = self._folders.popitem(last=False)
                if isinstance(old, Path):
                    shutil.rmtree(old, ignore_errors=True)
                self._failed.pop(old_key, None)
            folder = Path(tempfile.mkdtemp(prefix="text3d-archive-"))
            try:
                self._failed[key] = _unpack(Path(archive), folder, self.limits)
                self._folders[key] = folder
            except InvalidAssetError as exc:
                shutil.rmtree(folder, ignore_errors=True)
                self._folders[key] = str(exc)
        found = self._folders[key]
        if isinstance(found, str):
            raise InvalidAssetError(found)
        return found

    def close(self) -> None:
        for folder in self._folders.values():
            if isinstance(folder, Path):
                shutil.rmtree(folder, ignore_errors=True)
        self._folders.clear()

    def __enter__(self) -> "ArchiveCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
