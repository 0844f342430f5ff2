"""Textured GLB on the wire: a base-colour texture per primitive (PNG or JPEG) round-trips
and renders as its source does; image sizes are read from their headers and bounded
before anything decodes an image, so image bombs cost a header read, not gigabytes."""

import io
import struct

import numpy as np
import pytest
import trimesh
from PIL import Image
from trimesh.visual.material import PBRMaterial

from text3d.protocol.images import check_image_bytes, decode_image, read_image_header
from text3d.protocol.limits import DEFAULT_LIMITS, MeshDecodeError, MeshLimits
from text3d.protocol.mesh_codec import MeshFormat, decode_mesh, encode_mesh
from text3d.protocol.mesh_parts import Part, merge_parts, split_parts
from text3d.reward.render.views import render_views
from tests.asset_corpus import QUADRANTS, coloured_box, quadrant_texture, textured_cube
from tests.meshes import glb_join, glb_split

PX = 96


def refuses(data: bytes, reason: str, limits: MeshLimits = DEFAULT_LIMITS) -> None:
    with pytest.raises(MeshDecodeError, match=reason):
        decode_mesh(data, limits)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=95, **options)
    return buffer.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR declaring ``width`` x ``height``, then junk: ~60 bytes."""
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\x00\x00\x00\x00IEND\xaeB`\x82"


def with_image(glb: bytes, image: bytes, mime: str = "image/png") -> bytes:
    """``glb`` (one textured primitive) with its texture image replaced by ``image``."""
    tree, binary = glb_split(glb)
    binary += b"\0" * (-len(binary) % 4)
    tree["bufferViews"].append({"buffer": 0, "byteOffset": len(binary), "byteLength": len(image)})
    tree["images"][0] = {"bufferView": len(tree["bufferViews"]) - 1, "mimeType": mime}
    binary += image
    tree["buffers"][0]["byteLength"] = len(binary)
    return glb_join(tree, binary)


def mean_abs_diff(a, b) -> float:
    return float(np.abs(np.asarray(a).astype(int) - np.asarray(b).astype(int)).mean())


# ----------------------------------------------------------------------- round trips


def test_textured_glb_round_trips_texture_and_uvs_exactly():
    source = textured_cube()
    decoded = decode_mesh(encode_mesh(source, MeshFormat.GLB))
    assert decoded.visual.kind == "texture"
    np.testing.assert_allclose(decoded.visual.uv, source.visual.uv, atol=1e-7)
    np.testing.assert_array_equal(decoded.vertices, source.vertices.astype(np.float32))
    (part,) = split_parts(decoded)
    assert part.source == "texture"
    np.testing.assert_array_equal(np.asarray(part.texture)[..., :3], np.asarray(quadrant_texture()))


@pytest.mark.parametrize("backend", ["moderngl", "pyrender"])
def test_decoded_textured_glb_renders_the_same_image_as_its_source(backend):
    source = textured_cube()
    decoded = decode_mesh(encode_mesh(source, MeshFormat.GLB))
    for a, b in zip(render_views(source, 4, PX, backend=backend), render_views(decoded, 4, PX, backend=backend)):
        assert mean_abs_diff(a, b) < 0.5
        assert np.abs(np.asarray(a).astype(int) - np.asarray(b).astype(int)).max() <= 8


def test_a_jpeg_textured_glb_is_accepted_and_drawn_upright():
    jpeg = Image.open(io.BytesIO(jpeg_bytes(quadrant_texture())))
    data = textured_cube(jpeg).export(file_type="glb")  # trimesh keeps JPEG bytes as they are
    tree, _ = glb_split(data)
    assert tree["images"][0]["mimeType"] == "image/jpeg"
    from text3d.reward.render.camera import CameraRig

    view = np.asarray(render_views(decode_mesh(data), 1, PX, rig=CameraRig(elevation_deg=0.0))[0]).astype(int)
    quarter, three = PX * 3 // 8, PX * 5 // 8  # inside each quadrant of the +Z face, seen from +Z
    for (row, column), name in (((quarter, quarter), "top_left"), ((quarter, three), "top_right"),
                                ((three, quarter), "bottom_left"), ((three, three), "bottom_right")):
        expected = np.array(QUADRANTS[name])
        dominant = int(np.argmax(expected))
        assert np.argmax(view[row, column]) == dominant, (name, view[row, column])


def test_several_textures_a_material_colour_and_vertex_colours_in_one_payload():
    other = quadrant_texture().transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    cube_a, cube_b = split_parts(textured_cube())[0], split_parts(textured_cube(other))[0]
    tinted = Part(cube_a.vertices + 2, cube_a.faces, factor=np.array([30, 200, 60, 255], np.uint8))
    painted = split_parts(coloured_box())[0]
    mesh = merge_parts([cube_a, Part(cube_b.vertices - 2, cube_b.faces, uv=cube_b.uv, texture=cube_b.texture),
                        tinted, Part(painted.vertices + (0, 2, 0), painted.faces, painted.colours)])
    decoded = decode_mesh(encode_mesh(mesh, MeshFormat.GLB))
    parts = split_parts(decoded)
    assert [p.source for p in parts] == ["texture", "texture", "material colour", "vertex colours"]
    assert not np.array_equal(np.asarray(parts[0].texture), np.asarray(parts[1].texture))
    np.testing.assert_array_equal(parts[2].factor, [30, 200, 60, 255])
    for a, b in zip(render_views(mesh, 2, PX), render_views(decoded, 2, PX)):
        assert mean_abs_diff(a, b) < 0.5


def test_ply_and_draco_carry_a_texture_baked_into_vertex_colours():
    """Golden: each cube corner vertex takes the texel at its UV (corners of the quadrant image)."""
    for fmt in (MeshFormat.PLY, MeshFormat.DRACO):
        decoded = decode_mesh(encode_mesh(textured_cube(), fmt))
        colours = {tuple(c[:3]) for c in decoded.visual.vertex_colors}
        assert colours <= {tuple(QUADRANTS[q]) for q in QUADRANTS} and len(colours) == 4


def test_a_texture_without_uvs_or_a_material_without_colour_is_refused():
    data = encode_mesh(textured_cube(), MeshFormat.GLB)
    tree, binary = glb_split(data)
    tree["meshes"][0]["primitives"][0]["attributes"].pop("TEXCOORD_0")
    refuses(glb_join(tree, binary), "no TEXCOORD_0")
    tree, binary = glb_split(data)
    tree["materials"][0]["pbrMetallicRoughness"] = {"metallicFactor": 0.0}
    refuses(glb_join(tree, binary), "no per-vertex colours")
    tree, binary = glb_split(data)
    tree["materials"][0]["pbrMetallicRoughness"]["baseColorFactor"] = [2.0, 0, 0, 1]
    refuses(glb_join(tree, binary), "within \\[0, 1\\]")


def test_non_finite_texture_coordinates_are_refused():
    tree, binary = glb_split(encode_mesh(textured_cube(), MeshFormat.GLB))
    accessor = tree["accessors"][tree["meshes"][0]["primitives"][0]["attributes"]["TEXCOORD_0"]]
    view = tree["bufferViews"][accessor["bufferView"]]
    patched = bytearray(binary)
    patched[view["byteOffset"] : view["byteOffset"] + 4] = struct.pack("<f", float("nan"))
    refuses(glb_join(tree, bytes(patched)), "non-finite texture coordinates")


# ---------------------------------------------------------------------- image bombs


def _refused_at_the_header(decoder_calls, data: bytes, reason: str, limits: MeshLimits = DEFAULT_LIMITS) -> None:
    """A header read, not a decode: PIL never decodes the image's pixels."""
    decoder_calls.reset()
    refuses(data, reason, limits)
    assert decoder_calls["pixels"] == 0, decoder_calls.counts


def test_a_png_declaring_65535_squared_pixels_is_refused_at_its_header(decoder_calls):
    glb = encode_mesh(textured_cube(), MeshFormat.GLB)
    _refused_at_the_header(decoder_calls, with_image(glb, png_bomb(65535, 65535)), "65535 x 65535 pixels, the limit is 4096")


def test_a_jpeg_declaring_a_huge_frame_or_thousands_of_scans_is_refused(decoder_calls):
    glb = encode_mesh(textured_cube(), MeshFormat.GLB)
    jpeg = bytearray(jpeg_bytes(quadrant_texture()))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", 60000, 60000)
    _refused_at_the_header(decoder_calls, with_image(glb, bytes(jpeg), "image/jpeg"), "60000 x 60000 pixels")
    progressive = jpeg_bytes(quadrant_texture(), progressive=True)
    assert read_image_header(progressive).scans > 1
    refuses(with_image(glb, progressive, "image/jpeg"), "scans, the limit is 2", MeshLimits(max_jpeg_scans=2))


def test_the_pixel_budget_covers_every_image_of_a_payload():
    glb = encode_mesh(textured_cube(), MeshFormat.GLB)
    tree, binary = glb_split(glb)
    tree["images"] = tree["images"] * 3  # the same 64 x 64 image three times: 12288 pixels
    refuses(glb_join(tree, binary), "12288 pixels, the limit is 10000", MeshLimits(max_image_pixels=10_000))
    decode_mesh(glb_join(tree, binary), MeshLimits(max_image_pixels=12_288))


@pytest.mark.parametrize(
    "image, mime, reason",
    [
        (b"GIF89a" + b"\0" * 40, "image/png", "neither PNG nor JPEG"),
        (None, "image/jpeg", "declares 'image/jpeg' but holds a PNG"),
        (None, "image/webp", "only image/png and image/jpeg"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 30, "image/png", "13-byte IHDR"),
    ],
    ids=["gif", "mime-mismatch", "webp", "bad-ihdr"],
)
def test_images_other_than_png_and_jpeg_are_refused(image, mime, reason):
    glb = encode_mesh(textured_cube(), MeshFormat.GLB)
    refuses(with_image(glb, image if image is not None else png_bytes(quadrant_texture()), mime), reason)


def test_an_image_by_uri_is_refused_on_the_wire():
    tree, binary = glb_split(encode_mesh(textured_cube(), MeshFormat.GLB))
    tree["images"][0] = {"uri": "file:///etc/passwd", "mimeType": "image/png"}
    refuses(glb_join(tree, binary), "must be stored in the BIN chunk")


def test_corrupt_image_data_behind_a_valid_header_is_a_decode_error():
    png = png_bytes(quadrant_texture())
    truncated = png[:40] + b"\0" * 20
    glb = encode_mesh(textured_cube(), MeshFormat.GLB)
    refuses(with_image(glb, truncated), "could not be decoded|did not decode")
    with pytest.raises(MeshDecodeError):
        decode_image(truncated, DEFAULT_LIMITS)


@pytest.mark.parametrize("size", [(1, 1), (64, 48), (333, 17)])
def test_header_sizes_agree_with_pil(size):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    for data, fmt in ((png_bytes(image), "png"), (jpeg_bytes(image), "jpeg"), (jpeg_bytes(image, progressive=True), "jpeg")):
        header, _ = check_image_bytes(data, DEFAULT_LIMITS)
        assert (header.format, header.width, header.height) == (fmt, *size)
        assert decode_image(data, DEFAULT_LIMITS).size == size


def test_vertex_coloured_glb_keeps_the_exact_historic_path():
    """A GLB whose primitives are coloured by COLOR_0 alone decodes as plain vertex colours."""
    mesh = coloured_box()
    decoded = decode_mesh(encode_mesh(mesh, MeshFormat.GLB))
    assert decoded.visual.kind == "vertex"
    np.testing.assert_array_equal(decoded.visual.vertex_colors, mesh.visual.vertex_colors)


def test_a_material_colour_alone_is_a_colour_on_the_wire():
    plain = trimesh.creation.box()
    tinted = trimesh.Trimesh(plain.vertices, plain.faces, process=False,
                             visual=trimesh.visual.TextureVisuals(material=PBRMaterial(baseColorFactor=[0.1, 0.8, 0.2, 1])))
    (part,) = split_parts(decode_mesh(tinted.export(file_type="glb")))
    assert part.source == "material colour"
    np.testing.assert_array_equal(part.factor, [26, 204, 51, 255])
