"""Headless OpenGL on the target: the system's EGL, or Debian's glvnd loader unpacked into a private folder.

Stdlib only. The lent GPU image may lack the vendor-neutral GL loader (``libEGL.so.1`` and friends)
that sits in front of the NVIDIA driver's own ``libEGL_nvidia.so.0``. The bundle carries Debian's
``libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2``; ``egl_environment`` unpacks them under the
work folder (never under ``/``: ``apt``/``dpkg`` are not used, the archives are read here with the
``data`` extraction filter, so no path can leave the folder) and returns the environment that makes
moderngl's EGL backend load them: ``LD_LIBRARY_PATH``, glcontext's ``GLCONTEXT_LINUX_LIBEGL`` /
``GLCONTEXT_LINUX_LIBGL`` (absolute paths: ``ctypes.util.find_library`` does not look in
``LD_LIBRARY_PATH``) and ``__EGL_VENDOR_LIBRARY_FILENAMES`` naming the driver's vendor file
(``/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json`` in the lent image).

Which OpenGL actually draws is only known once a context exists: the render part records
``GL_RENDERER``; ``is_software_renderer`` says whether it is a CPU fallback (llvmpipe, softpipe,
swrast): such timings are reported as software and never as GPU figures.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

__all__ = ["GlSetup", "system_has_library", "unpack_deb", "egl_environment", "is_software_renderer",
           "EGL_VENDOR_CANDIDATES", "NVIDIA_LIB_DIRS"]

EGL_VENDOR_CANDIDATES = (
    "/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json",  # the lent image's driver mount
    "/usr/share/glvnd/egl_vendor.d/10_nvidia.json",
    "/etc/glvnd/egl_vendor.d/10_nvidia.json",
    "/usr/share/glvnd/egl_vendor.d/50_mesa.json",  # Mesa: llvmpipe on a machine without a GPU driver
)
NVIDIA_LIB_DIRS = ("/usr/local/nvidia/lib64", "/usr/local/nvidia/lib", "/usr/lib/x86_64-linux-gnu/nvidia")
_SOFTWARE = ("llvmpipe", "softpipe", "swrast", "software rasterizer", "lavapipe")


@dataclass
class GlSetup:
    """How this run gets OpenGL: ``libs`` is ``system`` or ``private``; ``env`` goes to the render workers."""

    libs: str
    env: dict[str, str] = field(default_factory=dict)
    vendor_file: str | None = None
    notes: list[str] = field(default_factory=list)


def system_has_library(soname: str) -> bool:
    """Is ``soname`` (e.g. ``libEGL.so.1``) in the dynamic loader's cache?"""
    ldconfig = shutil.which("ldconfig") or ("/sbin/ldconfig" if Path("/sbin/ldconfig").exists() else None)
    if ldconfig:
        try:
            out = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, timeout=30).stdout
            return any(line.strip().startswith(soname + " ") for line in out.splitlines())
        except (OSError, subprocess.SubprocessError):
            pass
    return any(Path(d, soname).exists() for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/lib/x86_64-linux-gnu"))


def unpack_deb(deb: Path, dest: Path) -> list[str]:
    """Extract a ``.deb``'s files under ``dest`` without dpkg; returns the member names written.

    A ``.deb`` is an ``ar`` archive holding ``data.tar.{xz,gz,bz2}``; the tar is extracted with the
    ``data`` filter (no absolute paths, no ``..``, no links leaving ``dest``, no device files).
    """
    blob = deb.read_bytes()
    if not blob.startswith(b"!<arch>\n"):
        raise ValueError(f"{deb.name} is not a Debian package (no ar header)")
    offset, data = 8, None
    while offset + 60 <= len(blob):
        header = blob[offset:offset + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        body = blob[offset + 60:offset + 60 + size]
        if name.startswith("data.tar"):
            data = body
            break
        offset += 60 + size + (size % 2)
    if data is None:
        raise ValueError(f"{deb.name} holds no data.tar member")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        names = tar.getnames()
        tar.extractall(dest, filter="data")
    return names


def _vendor_file() -> str | None:
    return next((c for c in EGL_VENDOR_CANDIDATES if Path(c).is_file()), None)


def egl_environment(debs: Sequence[Path], prefix: Path, *, force_private: bool = False) -> GlSetup:
    """The environment render workers need; unpacks ``debs`` under ``prefix`` when the system lacks EGL.

    The system's loader is used when it has ``libEGL.so.1`` and a GL library (``libGL.so.1`` or glvnd's
    ``libOpenGL.so.0``); nothing is unpacked then, and ``__EGL_VENDOR_LIBRARY_FILENAMES`` is still set
    when the NVIDIA vendor file lives only under the driver mount (a container's glvnd does not look there).
    """
    vendor = _vendor_file()
    nvidia_dirs = [d for d in NVIDIA_LIB_DIRS if Path(d).is_dir()]
    gl_library = next((lib for lib in ("libGL.so.1", "libOpenGL.so.0") if system_has_library(lib)), None)
    if not force_private and system_has_library("libEGL.so.1") and gl_library is not None:
        setup = GlSetup("system", vendor_file=vendor)
        if gl_library != "libGL.so.1":  # glcontext looks for libGL by default
            setup.env["GLCONTEXT_LINUX_LIBGL"] = gl_library
        if vendor and vendor.startswith("/usr/local/nvidia/") and not Path(EGL_VENDOR_CANDIDATES[1]).is_file():
            setup.env["__EGL_VENDOR_LIBRARY_FILENAMES"] = vendor
        return setup
    if not debs:
        return GlSetup("missing", notes=["the system has no libEGL.so.1 and the bundle carries no GL packages"])
    for deb in debs:
        unpack_deb(deb, prefix)
    libdir = prefix / "usr" / "lib" / "x86_64-linux-gnu"
    if not (libdir / "libEGL.so.1").exists():
        return GlSetup("missing", notes=[f"no libEGL.so.1 under {libdir} after unpacking {len(debs)} packages"])
    setup = GlSetup("private", vendor_file=vendor)
    setup.env["LD_LIBRARY_PATH"] = ":".join([str(libdir), *nvidia_dirs])
    setup.env["GLCONTEXT_LINUX_LIBEGL"] = str(libdir / "libEGL.so.1")
    # EGL + desktop GL without GLX: glvnd's libOpenGL carries the GL entry points (no X11 needed)
    setup.env["GLCONTEXT_LINUX_LIBGL"] = str(libdir / "libOpenGL.so.0")
    if vendor:
        setup.env["__EGL_VENDOR_LIBRARY_FILENAMES"] = vendor
    else:
        setup.notes.append("no EGL vendor file found (no NVIDIA EGL driver, no Mesa): rendering will fail")
    return setup


def is_software_renderer(gl_renderer: str | None) -> bool:
    """True for CPU rasterisers (llvmpipe & co.): their timings are not GPU figures."""
    name = (gl_renderer or "").lower()
    return any(s in name for s in _SOFTWARE)
