"""Reading untrusted folders and writing report folders without being led astray by links.

Asset folders and report folders are written by other people (or other processes):

- ``read_inside(root, path, max_bytes)`` reads one file only if its real path lies inside
  ``root``, it is a regular file (not a FIFO or a device, which would block or never end),
  and its size -- taken from ``fstat`` before a single byte is read -- is within
  ``max_bytes``. A 3 GiB (or sparse) file costs one ``stat``.
- ``write_inside(base, relative, data)`` writes ``base/relative`` without following a link
  planted on the way: a symbolic link where a folder of the output should be is removed
  and replaced by a real folder, and the file itself is written to a fresh temporary name
  (``O_EXCL | O_NOFOLLOW``) and renamed over the target, which replaces a link instead of
  writing through it. Readers never see a half-written file.

Refusals raise ``InvalidAssetError`` (reading: the asset is at fault) or ``OSError``
(writing: ours). Nothing here follows a symlink out of its folder.
"""

import os
import secrets
import stat
from pathlib import Path

from text3d.reward.errors import InvalidAssetError

__all__ = ["inside", "read_inside", "write_inside", "make_dirs_inside"]

_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def inside(root_real: str, path: str) -> bool:
    """Whether the real path of ``path`` is ``root_real`` or lies below it."""
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def read_inside(root: str | Path, path: str | Path, max_bytes: int, what: str | None = None) -> bytes:
    """The bytes of ``path``, read only if it resolves inside ``root`` and is a regular file
    of 1..``max_bytes`` bytes. ``InvalidAssetError`` says which rule it broke."""
    what = what or os.path.basename(str(path))
    root_real = os.path.realpath(root)
    real = os.path.realpath(path)
    if not inside(root_real, real):
        raise InvalidAssetError(f"{what} is a link to a file outside the folder (not followed)")
    try:
        fd = os.open(real, _READ_FLAGS)
    except FileNotFoundError:
        raise InvalidAssetError(f"{what} does not exist (a broken link?)") from None
    except OSError as exc:
        raise InvalidAssetError(f"{what} cannot be opened: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidAssetError(f"{what} is not a regular file")
        if info.st_size == 0:
            raise InvalidAssetError(f"{what} is an empty file")
        if info.st_size > max_bytes:
            raise InvalidAssetError(
                f"{what} is {info.st_size} bytes, the limit is {max_bytes} (raise it with --max-file-mb)"
            )
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise InvalidAssetError(f"{what} grew past {max_bytes} bytes while being read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def make_dirs_inside(base: str | Path, relative: str) -> Path:
    """Create ``base/relative`` folder by folder; a link in the way is replaced, not followed.

    ``base`` itself is the caller's choice and is created (with parents) if missing;
    ``relative`` must not climb out of it (``..`` or an absolute path raise ``ValueError``).
    """
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    current = base
    for part in Path(relative).parts:
        if part in ("", ".", "..") or os.path.isabs(part) or os.sep in part:
            raise ValueError(f"output path {relative!r} leaves its folder")
        current = current / part
        if os.path.islink(current):
            os.unlink(current)  # a planted link in our output folder: drop it, never write through it
        if not current.exists():
            current.mkdir()
        elif not current.is_dir():
            raise OSError(f"{current} is in the way of an output folder")
    return current


def write_inside(base: str | Path, relative: str, data: bytes | str) -> Path:
    """Write ``base/relative`` atomically without following links; returns the path."""
    rel = Path(relative)
    folder = make_dirs_inside(base, str(rel.parent)) if rel.parent != Path(".") else make_dirs_inside(base, "")
    if rel.name in ("", ".", ".."):
        raise ValueError(f"output path {relative!r} has no file name")
    target = folder / rel.name
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    temporary = folder / f".{rel.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.replace(temporary, target)  # renames over a planted link instead of writing through it
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    return target
