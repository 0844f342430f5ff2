"""A small corpus of real asset files, one per format and colour case, written with trimesh and PIL.

Every format trimesh 5.2 reads is here, archives included: zip and tar archives (and one
gzipped file) count each member as an entry named ``<archive>/<member>``; 3DXML, XAML and
ZAE files, which trimesh has no writer for, are written by hand (``three_dxml``, ``XAML``,
``zae``).

    python -m tests.asset_corpus OUT_DIR       writes the corpus (a few hundred KB) into OUT_DIR

``write_corpus(folder)`` returns ``{relative path: Expected}``: what ``text3d score`` must
make of each file -- scored (and coloured how), unscorable (and why), or a side file
(material, texture, buffer) that a mesh reads. Nothing binary is committed: every file
is generated here, deterministically.

The base texture, ``quadrant_texture()``, is four flat quadrants (top-left red, top-right
green, bottom-left blue, bottom-right yellow), so a test can tell whether a texture is
drawn the right way up and round. ``textured_cube()`` maps the whole image onto each face
of a unit cube, upright when seen from outside with +Y up.
"""

import gzip
import io
import json
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image
from trimesh.visual.material import PBRMaterial, SimpleMaterial
from trimesh.visual.texture import TextureVisuals

__all__ = ["Expected", "write_corpus", "quadrant_texture", "textured_cube", "QUADRANTS", "coloured_box", "three_dxml",
           "XAML", "zae", "zip_bytes", "tar_bytes"]

QUADRANTS = {"top_left": (220, 30, 30), "top_right": (30, 200, 30), "bottom_left": (30, 30, 220),
             "bottom_right": (230, 210, 20)}


@dataclass(frozen=True)
class Expected:
    """``kind``: "scored" | "unscorable" | "side"; ``colour``: the colour source the report
    names for a scored file (a ``text3d.protocol.mesh_parts.SOURCES`` word); ``reason``: a
    substring of an unscorable file's reason. ``needs``: a Python module trimesh needs
    to read the format (the file is unscorable, with that module named, when it is missing)."""

    kind: str
    colour: str = ""
    reason: str = ""
    needs: str = ""


def quadrant_texture(size: int = 64) -> Image.Image:
    """An RGB image of four flat quadrants (see ``QUADRANTS``)."""
    half = size // 2
    pixels = np.zeros((size, size, 3), np.uint8)
    pixels[:half, :half] = QUADRANTS["top_left"]
    pixels[:half, half:] = QUADRANTS["top_right"]
    pixels[half:, :half] = QUADRANTS["bottom_left"]
    pixels[half:, half:] = QUADRANTS["bottom_right"]
    return Image.fromarray(pixels)


def _cube_faces() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """24 vertices (4 per side), 12 triangles, UVs spanning [0, 1]^2 on each side, upright
    seen from outside (for the top and bottom sides, +Z/-Z is 'down' in the image)."""
    sides = [  # (outward normal, right, up) in world space
        ((0, 0, 1), (1, 0, 0), (0, 1, 0)), ((0, 0, -1), (-1, 0, 0), (0, 1, 0)),
        ((1, 0, 0), (0, 0, -1), (0, 1, 0)), ((-1, 0, 0), (0, 0, 1), (0, 1, 0)),
        ((0, 1, 0), (1, 0, 0), (0, 0, -1)), ((0, -1, 0), (1, 0, 0), (0, 0, 1)),
    ]
    vertices, uvs, faces = [], [], []
    for normal, right, up in sides:
        n, r, u = (np.array(a, float) for a in (normal, right, up))
        base = len(vertices)
        for su, sv in ((0, 0), (1, 0), (1, 1), (0, 1)):
            vertices.append(0.5 * n + (su - 0.5) * r + (sv - 0.5) * u)
            uvs.append((su, sv))
        faces += [(base, base + 1, base + 2), (base, base + 2, base + 3)]
    return np.array(vertices), np.array(faces), np.array(uvs, float)


def textured_cube(texture: Image.Image | None = None, material: str = "pbr") -> trimesh.Trimesh:
    """A unit cube with the texture on every side (``material``: "pbr" or "simple")."""
    vertices, faces, uvs = _cube_faces()
    texture = texture if texture is not None else quadrant_texture()
    mat = PBRMaterial(baseColorTexture=texture) if material == "pbr" else SimpleMaterial(image=texture)
    return trimesh.Trimesh(vertices, faces, visual=TextureVisuals(uv=uvs, material=mat), process=False)


def coloured_box(rgb=(200, 60, 40)) -> trimesh.Trimesh:
    """A unit box with one vertex colour."""
    box = trimesh.creation.box()
    colours = np.tile(np.array([*rgb, 255], np.uint8), (len(box.vertices), 1))
    return trimesh.Trimesh(box.vertices, box.faces, vertex_colors=colours, process=False)


def _sphere(colours: bool = True) -> trimesh.Trimesh:
    sphere = trimesh.creation.icosphere(subdivisions=2)
    if colours:
        rgb = np.round(127.5 + 127.5 * np.sin(2.0 * sphere.vertices + (0.0, 2.0, 4.0))).astype(np.uint8)
        return trimesh.Trimesh(sphere.vertices, sphere.faces, vertex_colors=rgb, process=False)
    return trimesh.Trimesh(sphere.vertices, sphere.faces, process=False)


def _jpeg(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    buffer.seek(0)
    return Image.open(buffer)


def _three_mf() -> bytes:
    """A minimal 3MF package: one coloured-by-material tetrahedron (written by hand)."""
    model = """<?xml version="1.0" encoding="UTF-8"?>
<model unit="millimeter" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02">
 <resources>
  <basematerials id="1"><base name="red" displaycolor="#DC2020"/></basematerials>
  <object id="2" type="model" pid="1" pindex="0"><mesh>
   <vertices><vertex x="0" y="0" z="0"/><vertex x="10" y="0" z="0"/><vertex x="0" y="10" z="0"/><vertex x="0" y="0" z="10"/></vertices>
   <triangles><triangle v1="0" v2="2" v3="1"/><triangle v1="0" v2="1" v3="3"/><triangle v1="0" v2="3" v3="2"/><triangle v1="1" v2="2" v3="3"/></triangles>
  </mesh></object>
 </resources>
 <build><item objectid="2"/></build>
</model>"""
    types = """<?xml version="1.0" encoding="UTF-8"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
 <Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
 <Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>
</Types>"""
    rels = """<?xml version="1.0" encoding="UTF-8"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
 <Relationship Target="/3D/3dmodel.model" Id="rel0" Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/>
</Relationships>"""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", types)
        archive.writestr("_rels/.rels", rels)
        archive.writestr("3D/3dmodel.model", model)
    return buffer.getvalue()


_DAE = """<?xml version="1.0" encoding="utf-8"?>
<COLLADA xmlns="http://www.collada.org/2005/11/COLLADASchema" version="1.4.1">
 <asset><up_axis>Y_UP</up_axis></asset>
 <library_effects><effect id="red-fx"><profile_COMMON><technique sid="common"><lambert>
  <diffuse><color>0.86 0.12 0.12 1</color></diffuse></lambert></technique></profile_COMMON></effect></library_effects>
 <library_materials><material id="red"><instance_effect url="#red-fx"/></material></library_materials>
 <library_geometries><geometry id="tet"><mesh>
  <source id="tet-pos"><float_array id="tet-pos-array" count="12">0 0 0 1 0 0 0 1 0 0 0 1</float_array>
   <technique_common><accessor source="#tet-pos-array" count="4" stride="3">
    <param name="X" type="float"/><param name="Y" type="float"/><param name="Z" type="float"/></accessor></technique_common></source>
  <vertices id="tet-vtx"><input semantic="POSITION" source="#tet-pos"/></vertices>
  <triangles material="red" count="4"><input semantic="VERTEX" source="#tet-vtx" offset="0"/><p>0 2 1 0 1 3 0 3 2 1 2 3</p></triangles>
 </mesh></geometry></library_geometries>
 <library_visual_scenes><visual_scene id="scene"><node id="n"><instance_geometry url="#tet">
  <bind_material><technique_common><instance_material symbol="red" target="#red"/></technique_common></bind_material>
 </instance_geometry></node></visual_scene></library_visual_scenes>
 <scene><instance_visual_scene url="#scene"/></scene>
</COLLADA>
"""


XAML = """<ModelVisual3D xmlns="http://schemas.microsoft.com/winfx/2006/xaml/presentation"><ModelVisual3D.Content>
<Model3DGroup><GeometryModel3D><GeometryModel3D.Geometry>
<MeshGeometry3D Positions="0,0,0 1,0,0 0,1,0 0,0,1" Normals="0,0,1 0,0,1 0,0,1 0,0,1" TriangleIndices="0 2 1 0 1 3 0 3 2 1 2 3"/>
</GeometryModel3D.Geometry><GeometryModel3D.Material><MaterialGroup><DiffuseMaterial><DiffuseMaterial.Brush>
<SolidColorBrush Color="#DC2020" Opacity="1"/></DiffuseMaterial.Brush></DiffuseMaterial></MaterialGroup>
</GeometryModel3D.Material></GeometryModel3D></Model3DGroup></ModelVisual3D.Content></ModelVisual3D>
"""
"""A red tetrahedron as WPF 3D XAML (what SolidWorks exports)."""


def three_dxml(instances: list[tuple[str, str, str]] | None = None) -> bytes:
    """A 3DXML package (a zip: ``Manifest.xml``, the product structure, one tessellated
    part): a blue tetrahedron. ``instances`` replaces the product structure's instance
    edges ``(id, parent, target)`` (the part's ReferenceRep is id 2, the root Reference3D 1),
    for hostile structures."""
    edges = instances if instances is not None else [("3", "1", "2")]
    links = "".join(f'<InstanceRep id="{i}" name="i{i}"><IsAggregatedBy>{parent}</IsAggregatedBy>'
                    f"<IsInstanceOf>{target}</IsInstanceOf></InstanceRep>" for i, parent, target in edges)
    root = ('<?xml version="1.0"?><Model_3dxml xmlns="http://www.3ds.com/xsd/3DXML"><ProductStructure root="1">'
            '<Reference3D id="1" name="tetra"/>'
            '<ReferenceRep id="2" name="rep" format="TESSELLATED" associatedFile="urn:3DXML:tetra.3DRep"/>'
            f"{links}</ProductStructure></Model_3dxml>")
    rep = ('<?xml version="1.0"?><XMLRepresentation xmlns="http://www.3ds.com/xsd/3DXML" '
           'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><Root><Rep><Faces>'
           '<Face triangles="0 2 1 0 1 3 0 3 2 1 2 3"><SurfaceAttributes><Color xsi:type="RGBAColorType" red="0.2" '
           'green="0.4" blue="0.9" alpha="1"/></SurfaceAttributes></Face></Faces><VertexBuffer>'
           "<Positions>0 0 0,1 0 0,0 1 0,0 0 1</Positions><Normals>0 0 1,0 0 1,0 0 1,0 0 1</Normals>"
           "</VertexBuffer></Rep></Root></XMLRepresentation>")
    return zip_bytes({"Manifest.xml": '<?xml version="1.0"?><Manifest><Root>Root.3dxml</Root></Manifest>',
                      "Root.3dxml": root, "tetra.3DRep": rep})


def zae() -> bytes:
    """A ZAE file: the red COLLADA tetrahedron, zipped."""
    return zip_bytes({"model.dae": _DAE})


def zip_bytes(members: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def tar_bytes(members: dict[str, bytes | str], mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, data in members.items():
            data = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_corpus(folder: Path) -> dict[str, Expected]:
    """Write the corpus into ``folder`` (created); returns what each file must become."""
    from text3d.protocol.mesh_codec import MeshFormat, encode_mesh

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, Expected] = {}

    def put(name: str, data: bytes | str, want: Expected) -> None:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        expected[name] = want

    sphere, plain = _sphere(), _sphere(colours=False)
    # PLY: binary with vertex colours (the wire form), ASCII, uncoloured, face-coloured
    put("ply/vertex_colour_binary.ply", encode_mesh(sphere, MeshFormat.PLY), Expected("scored", "vertex colours"))
    put("ply/vertex_colour_ascii.ply", sphere.export(file_type="ply", encoding="ascii"), Expected("scored", "vertex colours"))
    put("ply/uncoloured.ply", plain.export(file_type="ply"), Expected("scored", "none"))
    faced = plain.copy()
    faced.visual.face_colors = np.tile([40, 90, 200, 255], (len(faced.faces), 1))
    put("ply/face_colour.ply", faced.export(file_type="ply"), Expected("scored", "face colours"))
    put("ply/points_only.ply", trimesh.PointCloud(sphere.vertices).export(file_type="ply"),
        Expected("unscorable", reason="point cloud"))

    # GLB: wire vertex colours, textured PNG, textured JPEG, material colour only, a scene
    put("glb/vertex_colour.glb", encode_mesh(sphere, MeshFormat.GLB), Expected("scored", "vertex colours"))
    put("glb/textured_png.glb", encode_mesh(textured_cube(), MeshFormat.GLB), Expected("scored", "texture"))
    put("glb/textured_jpeg.glb", textured_cube(_jpeg(quadrant_texture())).export(file_type="glb"),
        Expected("scored", "texture"))
    tinted = trimesh.Trimesh(plain.vertices, plain.faces, process=False,
                             visual=TextureVisuals(material=PBRMaterial(baseColorFactor=[0.2, 0.7, 0.3, 1.0])))
    put("glb/material_colour.glb", tinted.export(file_type="glb"), Expected("scored", "material colour"))
    scene = trimesh.Scene()
    scene.add_geometry(textured_cube(), node_name="crate", transform=trimesh.transformations.translation_matrix([2, 0, 0]))
    spin = trimesh.transformations.rotation_matrix(np.pi / 4, [0, 1, 0]) @ np.diag([0.5, 0.5, 0.5, 1.0])
    scene.add_geometry(coloured_box(), node_name="box", transform=spin)
    put("glb/scene_with_transforms.glb", scene.export(file_type="glb"), Expected("scored", "texture"))

    # glTF: external .bin and .png beside the .gltf, and everything embedded as data URIs
    files = dict(textured_cube().export(file_type="gltf"))
    tree = json.loads(files["model.gltf"])
    for image in tree.get("images", []):  # the texture as a .png file beside the .gltf, by URI
        view = tree["bufferViews"][image.pop("bufferView")]  # left in place: indices stay valid
        buffer = tree["buffers"][view["buffer"]]["uri"]
        files["texture.png"] = files[buffer][view.get("byteOffset", 0) : view.get("byteOffset", 0) + view["byteLength"]]
        image["uri"] = "texture.png"
    files["model.gltf"] = json.dumps(tree).encode()
    for name, data in files.items():
        put(f"gltf_external/{name}", data, Expected("scored", "texture") if name.endswith(".gltf") else Expected("side"))
    embedded = textured_cube().export(file_type="gltf", embed_buffers=True)
    put("gltf_embedded.gltf", embedded["model.gltf"], Expected("scored", "texture"))

    # OBJ: MTL + texture, MTL colour only, no colours, vertex colours
    obj_files = textured_cube(material="simple").export(file_type="obj", mtl_name="crate.mtl", include_texture=True,
                                                        return_texture=True)
    obj_text, textures = obj_files if isinstance(obj_files, tuple) else (obj_files, {})
    put("obj_textured/crate.obj", obj_text, Expected("scored", "texture"))
    for name, data in textures.items():
        put(f"obj_textured/{name}", data, Expected("side"))
    put("obj_material/tet.obj", "mtllib tet.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nusemtl red\n"
        "f 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n", Expected("scored", "material colour"))
    put("obj_material/tet.mtl", "newmtl red\nKd 0.86 0.12 0.12\n", Expected("side"))
    put("obj/plain.obj", plain.export(file_type="obj", include_color=False, include_normals=False),
        Expected("scored", "none"))
    put("obj/vertex_colour.obj", sphere.export(file_type="obj", include_color=True, include_normals=False),
        Expected("scored", "vertex colours"))

    # STL (binary, ASCII), OFF, Draco, 3MF, COLLADA
    put("stl/binary.stl", plain.export(file_type="stl"), Expected("scored", "none"))
    put("stl/ascii.stl", plain.export(file_type="stl_ascii"), Expected("scored", "none"))
    put("off/model.off", plain.export(file_type="off"), Expected("scored", "none"))
    put("draco/blob.drc", encode_mesh(sphere, MeshFormat.DRACO), Expected("scored", "vertex colours"))
    # trimesh 5.2's 3MF reader ignores <basematerials> colours: the tetrahedron is drawn grey
    put("other/tetra.3mf", _three_mf(), Expected("scored", "none", needs="lxml"))
    put("other/tetra.dae", _DAE, Expected("scored", "material colour", needs="collada"))
    put("other/tetra.zae", zae(), Expected("scored", "material colour", needs="collada"))
    put("other/tetra.xaml", XAML, Expected("scored", "face colours", needs="lxml"))
    put("other/tetra.3dxml", three_dxml(), Expected("scored", "face colours", needs="lxml"))

    # archives: each member is an entry of its own (the archive file itself is not)
    def archive(name: str, data: bytes, members: dict[str, Expected]) -> None:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        expected.update({f"{name}/{member}": want for member, want in members.items()})

    crate = dict(textures)
    archive("archives/crates.zip", zip_bytes({"crate/crate.obj": obj_text, **{f"crate/{n}": d for n, d in crate.items()},
                                              "crate/README.txt": "a crate"}),
            {"crate/crate.obj": Expected("scored", "texture"), "crate/README.txt": Expected("side", reason="not a mesh"),
             **{f"crate/{n}": Expected("side") for n in crate}})
    archive("archives/balls.tar.gz", tar_bytes({"ball.ply": encode_mesh(sphere, MeshFormat.PLY),
                                                "blob.drc": encode_mesh(sphere, MeshFormat.DRACO)}),
            {"ball.ply": Expected("scored", "vertex colours"), "blob.drc": Expected("scored", "vertex colours")})
    archive("archives/plain.stl.gz", gzip.compress(plain.export(file_type="stl")),
            {"plain.stl": Expected("scored", "none")})

    # what cannot be scored, and files that are not meshes
    put("bad/empty.obj", b"", Expected("unscorable", reason="empty"))
    put("bad/empty.glb", b"", Expected("unscorable", reason="empty"))
    put("bad/garbage.glb", b"glTF" + bytes(range(256)) * 4, Expected("unscorable", reason="GLB"))
    put("bad/points.xyz", "\n".join(f"{x} {y} {z}" for x, y, z in sphere.vertices[:50]),
        Expected("unscorable", reason="point cloud"))
    put("bad/lines_only.obj", "v 0 0 0\nv 1 0 0\nv 1 1 0\nl 1 2 3\n", Expected("unscorable", reason="no triangles"))
    put("README.txt", "generated by tests/asset_corpus.py\n", Expected("side", reason="not a mesh"))
    put("drawing.dxf", "0\nEOF\n", Expected("side", reason="2D drawing"))
    put("bundle.7z", b"7z\xbc\xaf\x27\x1c", Expected("side", reason="unpack it first"))
    return expected


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.asset_corpus OUT_DIR", file=sys.stderr)
        return 2
    expected = write_corpus(Path(argv[0]))
    print(json.dumps({name: e.kind for name, e in expected.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
