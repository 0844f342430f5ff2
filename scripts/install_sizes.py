"""How big each slim install is: the packages ``pip install -e '.[EXTRA]'`` resolves to, and their size on disk.

    python scripts/install_sizes.py miner validator        # one line per extra, then one JSON line

For each extra, ``pip install --dry-run --ignore-installed --report`` resolves the whole set
(the core pins plus the extra's) without installing anything; each resolved package is then
measured from its installed files (its ``RECORD``) in the environment running this script,
when that environment holds the same version (the development venv holds every package of
every extra). A package it does not hold is counted as unmeasured and named. What a fresh
venv adds on top (Python's own ``pip``, about 15 MB) is not counted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def resolve(extra: str) -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                        "--report", str(report), "-e", f"{REPO}[{extra}]"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        items = json.loads(report.read_text())["install"]
    return [(item["metadata"]["name"], item["metadata"]["version"]) for item in items]


def installed_bytes(name: str, version: str) -> int | None:
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != version or dist.files is None:
        return None
    total = 0
    for file in dist.files:
        path = Path(dist.locate_file(file))
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


def main(argv: list[str]) -> int:
    extras = argv or ["miner", "validator"]
    results = {}
    for extra in extras:
        packages = resolve(extra)
        sizes = {f"{n}=={v}": installed_bytes(n, v) for n, v in packages if n.lower() != "text3d"}
        missing = sorted(k for k, v in sizes.items() if v is None)
        total = sum(v for v in sizes.values() if v)
        largest = sorted(((v or 0, k) for k, v in sizes.items()), reverse=True)[:5]
        results[extra] = {"packages": len(sizes), "mb": round(total / 1e6), "unmeasured": missing,
                          "largest": [{"package": k, "mb": round(v / 1e6)} for v, k in largest]}
        print(f".[{extra}]: {len(sizes)} packages, {total / 1e6:,.0f} MB installed"
              + (f" ({len(missing)} unmeasured: {', '.join(missing)})" if missing else "")
              + "; largest: " + ", ".join(f"{k} {v / 1e6:,.0f} MB" for v, k in largest))
    print(json.dumps({"install_sizes": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
