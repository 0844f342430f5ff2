"""A genuine CLIP BPE tokenizer built offline from the vocabulary open_clip ships.

open_clip_torch carries OpenAI's CLIP merges file (``bpe_simple_vocab_16e6.txt.gz``).
CLIP derives its 49,408-token vocabulary from it deterministically: the 256 byte
symbols, the same symbols with the end-of-word marker ``</w>``, one token per merge
(the first 48,894 merges), then ``<|startoftext|>`` and ``<|endoftext|>``. Rebuilding
that here gives the exact tokenizer Shap-E's text encoder uses, with no download.
"""

import gzip
from pathlib import Path

__all__ = ["CLIP_VOCAB_SIZE", "build_clip_tokenizer", "clip_bpe_path"]

CLIP_VOCAB_SIZE = 49408
_NUM_MERGES = CLIP_VOCAB_SIZE - 2 * 256 - 2  # 48,894
_CONTEXT_LENGTH = 77


def clip_bpe_path() -> Path:
    """Path of the gzipped CLIP merges file inside the installed open_clip package."""
    import open_clip

    return Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP's reversible byte -> printable unicode mapping, in CLIP's vocabulary order.

    Printable bytes map to themselves and come first; the other bytes follow, mapped to
    ``chr(256 + n)`` in byte order.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [byte for byte in range(256) if byte not in printable]
    return [chr(byte) for byte in printable] + [chr(256 + n) for n in range(len(others))]


def build_clip_tokenizer(bpe_path: Path | None = None):
    """Return a ``transformers.CLIPTokenizer`` (``model_max_length=77``) built from ``bpe_path``.

    ``bpe_path`` defaults to the file shipped with open_clip. The result matches
    ``openai/clip-vit-large-patch14``'s tokenizer token for token.
    """
    from transformers import CLIPTokenizer

    lines = gzip.open(bpe_path or clip_bpe_path(), "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : _NUM_MERGES + 1]]
    symbols = _byte_symbols()
    tokens = [*symbols, *(s + "</w>" for s in symbols), *("".join(m) for m in merges)]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != CLIP_VOCAB_SIZE:
        raise ValueError(f"{bpe_path}: expected {CLIP_VOCAB_SIZE} CLIP tokens, built {len(vocab)}")
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=_CONTEXT_LENGTH)
