"""Texture images from untrusted peers: sizes read from the header, checked before decoding.

An image is the cheapest bomb there is: a 50 KB PNG may declare 65535 x 65535 pixels
(16 GiB of RGBA once decoded), a 30 KB JPEG thousands of progressive scans (minutes of
CPU). So the wire accepts two formats whose headers this module reads itself, with no
decoder involved:

    PNG   the IHDR chunk that must follow the signature: width, height, bit depth, colour type
    JPEG  the one frame header (SOF0..SOF15, not DHT/JPG/DAC) before the first scan, and the
          number of start-of-scan markers (0xFFDA cannot occur inside entropy-coded data,
          which stuffs every 0xFF with 0x00, so counting them bounds the scans)

``MeshLimits.check_image`` then bounds each side and the payload's pixel total. Only
after that does ``decode_image`` let PIL decode, and PIL's own (lazy) header read must
agree with ours first, so the two parsers cannot be played against each other.

Every refusal is a ``MeshDecodeError`` naming the image (``what``) and the reason.
"""

import io
import struct
from dataclasses import dataclass

from text3d.protocol.limits import MeshDecodeError, MeshLimits

__all__ = ["ImageHeader", "read_image_header", "check_image_bytes", "decode_image", "check_lazy_image", "MIME_TYPES"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}

# PNG colour type -> allowed bit depths (PNG spec, table 11.1)
_PNG_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}
# JPEG frame headers: C0-CF except C4 (DHT), C8 (JPG, reserved) and CC (DAC)
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn, TEM: no length field


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header declares. ``format`` is ``"png"`` or ``"jpeg"``."""

    format: str
    width: int
    height: int
    scans: int = 1

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_image_header(data: bytes, what: str = "image") -> ImageHeader:
    """Parse a PNG or JPEG header without decoding; MeshDecodeError for anything else."""
    data = bytes(data[: 1 << 30])
    if data.startswith(PNG_SIGNATURE):
        return _png_header(data, what)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_header(data, what)
    raise MeshDecodeError(f"{what} is neither PNG nor JPEG (leading bytes {data[:8]!r})")


def _png_header(data: bytes, what: str) -> ImageHeader:
    if len(data) < 33:
        raise MeshDecodeError(f"{what} is a PNG shorter than its header")
    length, kind = struct.unpack_from(">I4s", data, 8)
    if kind != b"IHDR" or length != 13:
        raise MeshDecodeError(f"{what} is a PNG whose first chunk is not a 13-byte IHDR")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack_from(">IIBBBBB", data, 16)
    if depth not in _PNG_DEPTHS.get(colour, ()):
        raise MeshDecodeError(f"{what} is a PNG with bit depth {depth} for colour type {colour}")
    if compression != 0 or filtering != 0 or interlace not in (0, 1):
        raise MeshDecodeError(f"{what} is a PNG with an unknown compression, filter or interlace method")
    return ImageHeader("png", width, height)


def _jpeg_header(data: bytes, what: str) -> ImageHeader:
    offset, frame = 2, None
    while True:
        if offset + 2 > len(data):
            raise MeshDecodeError(f"{what} is a JPEG that ends before its first scan")
        if data[offset] != 0xFF:
            raise MeshDecodeError(f"{what} is a JPEG with a malformed segment at byte {offset}")
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker in _STANDALONE:
            offset += 2
            continue
        if marker in (0xD8, 0xD9) or offset + 4 > len(data):
            raise MeshDecodeError(f"{what} is a JPEG that ends before its first scan")
        (length,) = struct.unpack_from(">H", data, offset + 2)
        if length < 2 or offset + 2 + length > len(data):
            raise MeshDecodeError(f"{what} is a JPEG with a segment running past its end")
        if marker in _SOF_MARKERS:
            if frame is not None:
                raise MeshDecodeError(f"{what} is a JPEG with more than one frame header")
            if length < 8:
                raise MeshDecodeError(f"{what} is a JPEG with a truncated frame header")
            precision, height, width, components = struct.unpack_from(">BHHB", data, offset + 4)
            if precision != 8 or components not in (1, 3, 4):
                raise MeshDecodeError(
                    f"{what} is a JPEG with {precision}-bit samples and {components} components "
                    "(8-bit greyscale, RGB or CMYK is accepted)"
                )
            frame = (width, height)
        if marker == 0xDA:  # start of scan: the headers are over
            if frame is None:
                raise MeshDecodeError(f"{what} is a JPEG with a scan before its frame header")
            return ImageHeader("jpeg", frame[0], frame[1], scans=data.count(b"\xff\xda", offset))
        offset += 2 + length


def check_image_bytes(
    data: bytes, limits: MeshLimits, what: str = "image", pixels_so_far: int = 0, mime_type: str | None = None
) -> tuple[ImageHeader, int]:
    """Read the header and apply the limits; returns (header, running pixel total).

    ``mime_type``, when given (a glTF image's ``mimeType``), must match the bytes.
    """
    header = read_image_header(data, what)
    if mime_type is not None and mime_type != MIME_TYPES[header.format]:
        raise MeshDecodeError(f"{what} declares {str(mime_type)[:30]!r} but holds a {header.format.upper()}")
    if header.scans > limits.max_jpeg_scans:
        raise MeshDecodeError(f"{what} is a JPEG with {header.scans} scans, the limit is {limits.max_jpeg_scans}")
    return header, limits.check_image(what, header.width, header.height, pixels_so_far)


def check_lazy_image(image, limits: MeshLimits, what: str = "image", pixels_so_far: int = 0) -> int:
    """Bound a PIL image that is opened but not yet decoded (``Image.open`` reads headers
    only); returns the running pixel total. For images of any format PIL reads."""
    width, height = image.size
    return limits.check_image(what, int(width), int(height), pixels_so_far)


def decode_image(data: bytes, limits: MeshLimits, what: str = "image") -> "Image.Image":  # noqa: F821
    """Decode a PNG or JPEG within the limits into a loaded RGBA ``PIL.Image``.

    The header is checked first (``check_image_bytes``); PIL's lazy open must then report
    the same format and size, and only then is the image decoded. Truncated or corrupt
    image data raises ``MeshDecodeError``.
    """
    from PIL import Image

    header, _ = check_image_bytes(data, limits, what)
    try:
        image = Image.open(io.BytesIO(data))
        if image.format != header.format.upper() or image.size != (header.width, header.height):
            raise MeshDecodeError(f"{what}: the image header reads differently to PIL ({image.format} {image.size})")
        image.load()
        return image.convert("RGBA")
    except MeshDecodeError:
        raise
    except Exception as error:  # truncated data, bad Huffman tables, zlib errors ...
        raise MeshDecodeError(f"{what} could not be decoded: {type(error).__name__}") from None
