"""The measurements, one module per part; each ``run(profile, work) -> Figures`` (llava: ``write``, ``caption``).

    shap_e.py      the miner: prior for batches of 1 and 4, decode at grid 128, against the 12 s deadline
    clip.py        CLIP ViT-L-14: one view, one asset, a step's views, a step's texts
    render.py      moderngl on EGL: one asset's views under the secret rig; GL_RENDERER
    defences.py    OCR per view, fingerprint, flatness, render budget per asset
    validation.py  the whole per-asset validation without captions for a 16-asset step, vs 0.35 s
    llava.py       the LLaVA-7B-shaped gguf written here, and captions on a CUDA llama-server
"""
