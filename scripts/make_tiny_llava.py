"""Write the tiny random LLaVA-1.5-style pair (model.gguf + mmproj.gguf) for offline tests.

    python scripts/make_tiny_llava.py                 # cached under $TEXT3D_CACHE/models/tiny-llava
    python scripts/make_tiny_llava.py --out DIR [--vocab ggml-vocab-llama-spm.gguf] [--seed N]

The LLaMA vocabulary is cached by text3d/ops/llava/build_llama_server.sh. See text3d/reward/tiny_llava.py.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from text3d.reward.tiny_llava import TinyLlavaConfig, default_vocab_path, ensure_tiny_llava, write_tiny_llava  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write into this folder (always rewrites); default: the cache")
    parser.add_argument("--vocab", type=Path, default=None, help="llama.cpp ggml-vocab-llama-spm.gguf")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        if args.out:
            paths = write_tiny_llava(args.out, args.vocab or default_vocab_path(), TinyLlavaConfig(seed=args.seed))
        else:
            paths = ensure_tiny_llava(vocab_path=args.vocab)
    except FileNotFoundError as exc:
        print(f"make_tiny_llava: {exc}", file=sys.stderr)
        return 1
    print("\n".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
