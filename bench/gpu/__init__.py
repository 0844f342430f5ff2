"""The offline GPU benchmark bundle: what a miner and a validator cost on a bare PyTorch GPU machine.

Built here by ``bench/gpu_bundle.py``, run there by the bundle's ``run.py`` (docs/gpu-bundle.md).

Build side (this machine):
    bundle.py         build_bundle: the code closure, wheels, GL debs, pruned llama.cpp, manifest, size check
    code_closure.py   which project modules the measurements reach; their third-party imports
    manifest.py       the carried wheels and what the target image already has (stdlib only)

Run side, stdlib only (before anything is installed):
    run.py            the bundle's entry point (copied to DIR/run.py)
    orchestrate.py    the run: prepare, the parts under one time budget, JSON + table + logs
    budget.py         how long a part may take now, or that it no longer fits
    llava_steps.py    the optional captions: background build and gguf write, then the caption part
    bootstrap.py      check the bundle's files, install missing wheels privately, GL environment
    wheels.py         wheel tags, install plan, ``pip install --target``
    gl.py             EGL: the system's loader or Debian's glvnd unpacked privately; software renderers
    llama_source.py   prune llama.cpp (build side), unpack, find the CUDA toolchain and build it (run side)
    jobs.py           child process groups with deadlines and logs
    profile.py        the sizes: the production protocol on a GPU, tiny in --smoke
    table.py          the result JSON as a markdown table

Run side, in the worker processes (torch and the carried packages):
    worker.py         one part per process: ``python -P -m bench.gpu.worker PART --job FILE``
    figures.py        figures marked measured / derived / software; timing with CUDA synchronisation
    sizes.py          a profile as the project's own configs (the protocol's numbers from their one home)
    models.py         CLIP ViT-L-14 with random weights in the production ClipScorer; the OCR engine
    meshes.py         the step's stand-in meshes (tiny Shap-E at the production grid)
    parts/            shap_e, clip, render, defences, validation, llava: the measurements
"""
