"""What a validator accepts from a miner, and the one way the decoder refuses.

A miner's mesh arrives as bytes from an untrusted peer. Every decoder step is bounded
by ``MeshLimits`` *before* it allocates: declared sizes in headers are checked first,
so a 100-byte payload that claims 2^31 vertices costs microseconds, not gigabytes, and
a texture that claims 65535 x 65535 pixels is refused at its PNG/JPEG header.

``MeshDecodeError`` (defined in ``text3d/protocol/errors.py``) is the only exception ``decode_mesh``
raises; it is a miner fault: the miner's bytes are not a valid, bounded, coloured
triangle mesh, and the message says why in one sentence.
"""

from dataclasses import dataclass

from text3d.protocol.errors import MeshDecodeError

__all__ = ["MeshLimits", "DEFAULT_LIMITS", "MeshDecodeError"]

MIB = 1 << 20


@dataclass(frozen=True)
class MeshLimits:
    """Upper bounds on one decoded mesh, checked before and after decoding.

    The defaults are sized for Shap-E meshes: marching cubes at grid 128 gives about
    50-150k faces, grid 256 about 200-600k, so 1M faces leaves headroom for busy shapes
    while a single mesh stays below ~100 MB in memory (float64 vertices, int64 faces,
    RGBA colours). 64 MiB of payload holds a 1M-face binary PLY (~29 MB) with room to
    spare; the compact Draco form of the same mesh is about a tenth of that.

    Attributes:
        max_payload_bytes: encoded bytes accepted on the wire (before base64).
        max_decoded_bytes: bytes the decoded arrays may take, estimated from the counts
            declared in headers (vertices * 28 + faces * 24 for float64/int64/RGBA):
            the bound on anything that inflates, Draco in particular.
        max_vertices: vertex count, declared or decoded.
        max_faces: triangle count, declared or decoded.
        max_header_bytes: PLY text header / GLB JSON chunk size.
        max_gltf_objects: GLB nodes, meshes, primitives, accessors, buffer views,
            materials, textures or images (each); scene graphs larger than this are not
            generator output.
        max_image_px: width and height of any one texture image, read from its PNG IHDR
            or JPEG SOF header before anything decodes it.
        max_image_pixels: decoded pixels of all texture images of one payload together
            (width * height summed). 4096^2 = 16.8M pixels decode to 64 MiB of RGBA: an
            image bomb (a 50 KB PNG declaring 65535^2 pixels, 16 GiB decoded) is refused
            at its header.
        max_jpeg_scans: start-of-scan markers in one JPEG; a progressive JPEG with
            thousands of scans costs a decoder minutes of CPU (ordinary ones have ~10).
    """

    max_payload_bytes: int = 64 * MIB
    max_decoded_bytes: int = 128 * MIB
    max_vertices: int = 1_000_000
    max_faces: int = 1_000_000
    max_header_bytes: int = 1 * MIB
    max_gltf_objects: int = 256
    max_image_px: int = 4096
    max_image_pixels: int = 4096 * 4096
    max_jpeg_scans: int = 64

    def __post_init__(self) -> None:
        for name in (
            "max_payload_bytes",
            "max_decoded_bytes",
            "max_vertices",
            "max_faces",
            "max_header_bytes",
            "max_gltf_objects",
            "max_image_px",
            "max_image_pixels",
            "max_jpeg_scans",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"MeshLimits.{name} must be a positive int, got {value!r}")

    def decoded_bytes(self, n_vertices: int, n_faces: int) -> int:
        """Memory estimate of a decoded mesh: float64 xyz + RGBA per vertex, int64 faces."""
        return n_vertices * (3 * 8 + 4) + n_faces * 3 * 8

    def check_counts(self, fmt: str, n_vertices: int, n_faces: int) -> None:
        """Refuse declared or decoded counts beyond the limits (raises MeshDecodeError)."""
        if n_vertices < 0 or n_faces < 0:
            raise MeshDecodeError(f"{fmt} declares a negative element count")
        if n_vertices > self.max_vertices:
            raise MeshDecodeError(
                f"{fmt} declares {n_vertices} vertices, the limit is {self.max_vertices}"
            )
        if n_faces > self.max_faces:
            raise MeshDecodeError(f"{fmt} declares {n_faces} faces, the limit is {self.max_faces}")
        decoded = self.decoded_bytes(n_vertices, n_faces)
        if decoded > self.max_decoded_bytes:
            raise MeshDecodeError(
                f"{fmt} would decode to {decoded} bytes, the limit is {self.max_decoded_bytes}"
            )

    def check_image(self, what: str, width: int, height: int, pixels_so_far: int = 0) -> int:
        """Refuse an image whose declared size exceeds the limits; returns the running pixel total."""
        if width <= 0 or height <= 0:
            raise MeshDecodeError(f"{what} declares an empty image ({width} x {height})")
        if width > self.max_image_px or height > self.max_image_px:
            raise MeshDecodeError(
                f"{what} is {width} x {height} pixels, the limit is {self.max_image_px} on each side"
            )
        total = pixels_so_far + width * height
        if total > self.max_image_pixels:
            raise MeshDecodeError(
                f"{what} brings the texture images to {total} pixels, the limit is {self.max_image_pixels}"
            )
        return total


DEFAULT_LIMITS = MeshLimits()
