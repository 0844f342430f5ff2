"""The run's JSON as a markdown table: the headline figures first, then every figure by part.

Stdlib only: ``python run.py --table results/gpu_bench.json`` (or ``python -m bench.gpu.table FILE``
from the repository) prints the table to drop into the README or ``min_compute.yml``'s notes.
Every row says whether it was measured, derived (and from what) or timed on a software fallback.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

__all__ = ["HEADLINE", "render_markdown", "main"]

HEADLINE = (  # {B}: the largest prior batch of the run (4 on a GPU, 2 in --smoke)
    ("shap_e.mesh_b1_s", "Miner: one mesh, prior + decode (batch 1)"),
    ("shap_e.prior_b{B}_s_per_mesh", "Miner: prior per mesh in a batch of {B}"),
    ("shap_e.answer_b{B}_s", "Miner: a batch of {B} answers ready"),
    ("shap_e.prior_b{B}_peak_gpu_mib", "Miner: peak GPU memory, batch of {B} (torch)"),
    ("validation.s_per_asset", "Validator: per asset, no captions (one step)"),
    ("validation.vs_target", "Validator: per asset / 0.35 s"),
    ("validation.peak_gpu_mib", "Validator: peak GPU memory, no captions (torch)"),
    ("llava.caption_s_per_view", "Validator: one caption at the protocol's length"),
    ("validation.with_captions_s_per_asset", "Validator: per asset with captions"),
    ("llava.server_gpu_mib", "Validator: llama-server GPU memory"),
)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(result: dict[str, Any]) -> str:
    """The markdown of one run's result (``gpu_bench.json``)."""
    figures: dict[str, dict] = result.get("figures", {})
    machine = result.get("machine", {})
    lines = [f"### GPU bundle run: {machine.get('gpu') or 'no GPU'} ({result.get('mode')})", ""]
    lines.append(f"torch {machine.get('torch')} (CUDA {machine.get('torch_cuda')}), Python {machine.get('python')}, "
                 f"{machine.get('cpu_count')} CPUs; GL_RENDERER {_cell(result.get('gl', {}).get('renderer'))}; "
                 f"bundle {result.get('bundle', {}).get('commit', '?')}, run {result.get('started_utc')}, "
                 f"{result.get('total_s')} s in all.")
    lines += ["", "| Headline | Value | Basis |", "| --- | --- | --- |"]
    batches = [int(m[1]) for k in figures if (m := re.fullmatch(r"shap_e\.prior_b(\d+)_s", k))]
    largest = str(max(batches, default=4))
    for key, label in HEADLINE:
        key, label = key.replace("{B}", largest), label.replace("{B}", largest)
        entry = figures.get(key)
        if entry is None:
            lines.append(f"| {label} | not measured | |")
        else:
            lines.append(f"| {label} | {_fmt(entry['value'])} {entry['unit']} | {entry['basis']} |")
    lines += ["", "| Figure | Value | Unit | Basis | Note |", "| --- | --- | --- | --- | --- |"]
    for key, entry in figures.items():
        note = entry.get("note", "")
        if entry.get("from"):
            note = f"{note} (from {', '.join(entry['from'])})".strip()
        if entry.get("p95") is not None:
            note = f"p95 {_fmt(entry['p95'])}; {entry.get('runs')} runs. {note}".strip()
        value = _cell(_fmt(entry["value"]))
        lines.append(f"| `{key}` | {value} | {entry['unit']} | {entry['basis']} | {_cell(note)} |")
    skipped = result.get("skipped", [])
    if skipped:
        lines += ["", "Skipped or failed:", ""]
        lines += [f"- {_cell(item['what'])}: {_cell(item['why'])}" for item in skipped]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_file", type=Path, help="gpu_bench.json written by run.py")
    args = parser.parse_args(argv)
    text = args.json_file.read_text().strip().splitlines()[-1]
    sys.stdout.write(render_markdown(json.loads(text)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
