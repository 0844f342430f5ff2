"""OCR on the rendered views: a view with legible text scores 0 (typographic attacks).

A mesh with the prompt's words painted on it ("A RED CHAIR" on the face of a box) makes
CLIP and the captioner read the words instead of judging a shape. Every view goes
through an OCR engine; a view whose legible characters (letters and digits of text lines
read with confidence >= ``min_confidence``) number more than ``max_chars`` (the protocol's
5, as NeuralAI's validators) is rejected: its CLIP and caption values count 0.

Engines (both run offline):

* ``RapidOcrEngine`` -- ``rapidocr-onnxruntime==1.4.4``: PP-OCRv4 detection + recognition
  ONNX models bundled in the wheel (16 MB), no download at run time. The protocol's
  engine: it reads rendered, shaded, perspective-distorted text reliably.
* ``TesseractEngine`` -- Debian's ``tesseract-ocr`` 5.3 through its command line. Measured
  beside rapidocr on the same renders (tests/test_ocr.py, bench/score_defences.py), it
  misses shaded text on a coloured face that rapidocr reads at confidence > 0.9: kept as
  an alternative for machines where onnxruntime cannot be installed, not for scoring.

``ocr_views(engine, images, max_chars=..., min_confidence=...) -> list[OcrView]``.
An engine that cannot run is the validator's fault (``ModelUnavailable``), never a zero.
"""

import shutil
import subprocess
import threading
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np
from PIL import Image

from text3d.reward.errors import ModelUnavailable

__all__ = ["OcrLine", "OcrView", "OcrEngine", "RapidOcrEngine", "TesseractEngine", "legible_chars", "ocr_views"]


@dataclass(frozen=True)
class OcrLine:
    text: str
    confidence: float  # in [0, 1]


@dataclass(frozen=True)
class OcrView:
    """What OCR found on one view and whether the view is rejected."""

    text: str  # the legible lines joined by " | "
    chars: int  # legible letters and digits
    rejected: bool


class OcrEngine(Protocol):
    name: str

    def read(self, image: Image.Image) -> list[OcrLine]:
        """Text lines found in ``image`` (any order). Raises ``ModelUnavailable`` if it cannot run."""


def legible_chars(lines: Sequence[OcrLine], min_confidence: float) -> tuple[int, str]:
    """(letters and digits in lines with confidence >= ``min_confidence``, those lines joined)."""
    kept = [line.text.strip() for line in lines if line.confidence >= min_confidence and line.text.strip()]
    return sum(ch.isalnum() for text in kept for ch in text), " | ".join(kept)


def ocr_views(
    engine: OcrEngine, images: Sequence[Image.Image], *, max_chars: int, min_confidence: float
) -> list[OcrView]:
    """One ``OcrView`` per image; ``rejected`` when legible characters exceed ``max_chars``."""
    out = []
    for image in images:
        chars, text = legible_chars(engine.read(image), min_confidence)
        out.append(OcrView(text=text, chars=chars, rejected=chars > max_chars))
    return out


class RapidOcrEngine:
    """rapidocr-onnxruntime with its bundled models. Cheap to construct; models load on first use.

    ``det_limit_side_len`` caps the detector's input side: rapidocr's default (at least
    736 on the short side) upsamples a 512 px view for no gain; here a view is only ever
    scaled down, to 512 at most.
    ``use_cuda`` asks onnxruntime for its CUDA provider (the ``onnxruntime-gpu`` build); rapidocr
    falls back to the CPU provider by itself when there is none: ``providers()`` says which ran.
    Calls are serialised (one ONNX session set per engine).
    """

    name = "rapidocr-onnxruntime"

    def __init__(self, *, det_limit_side_len: int = 512, threads: int = -1, use_cuda: bool = False) -> None:
        self.det_limit_side_len = det_limit_side_len
        self.threads = threads
        self.use_cuda = use_cuda
        self._ocr = None
        self._lock = threading.Lock()

    def _engine(self):
        if self._ocr is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as exc:
                raise ModelUnavailable(
                    "rapidocr-onnxruntime is not installed; install the validator extras: pip install -e '.[validator]'"
                ) from exc
            cuda = {"det_use_cuda": True, "cls_use_cuda": True, "rec_use_cuda": True} if self.use_cuda else {}
            self._ocr = RapidOCR(
                det_limit_side_len=self.det_limit_side_len, det_limit_type="max", intra_op_num_threads=self.threads,
                inter_op_num_threads=self.threads, print_verbose=False, **cuda,
            )
        return self._ocr

    def providers(self) -> list[str]:
        """The onnxruntime execution providers the detection model runs on (loads the models)."""
        return list(self._engine().text_det.infer.session.get_providers())

    def read(self, image: Image.Image) -> list[OcrLine]:
        array = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])  # rapidocr wants BGR
        with self._lock:
            try:
                result, _ = self._engine()(array)
            except ModelUnavailable:
                raise
            except Exception as exc:  # onnxruntime/opencv failures: our machine, not the miner
                raise ModelUnavailable(f"rapidocr failed on a view ({type(exc).__name__}: {exc})") from exc
        return [OcrLine(str(text), float(score)) for _box, text, score in (result or [])]


class TesseractEngine:
    """Debian's ``tesseract`` command line (``apt-get install tesseract-ocr``), TSV output."""

    name = "tesseract"

    def __init__(self, *, binary: str = "tesseract", psm: int = 11, timeout_s: float = 30.0) -> None:
        self.binary = binary
        self.psm = psm
        self.timeout_s = timeout_s

    def read(self, image: Image.Image) -> list[OcrLine]:
        import io

        if shutil.which(self.binary) is None:
            raise ModelUnavailable(f"{self.binary} is not installed; sudo apt-get install tesseract-ocr")
        png = io.BytesIO()
        image.convert("RGB").save(png, format="PNG")
        try:
            done = subprocess.run(
                [self.binary, "stdin", "stdout", "--psm", str(self.psm), "tsv"], input=png.getvalue(),
                capture_output=True, timeout=self.timeout_s, check=True,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            raise ModelUnavailable(f"tesseract failed on a view ({type(exc).__name__})") from exc
        lines: dict[tuple[str, str, str], list[tuple[str, float]]] = {}
        for row in done.stdout.decode("utf-8", "replace").splitlines()[1:]:
            cols = row.split("\t")
            if len(cols) < 12 or not cols[11].strip():
                continue
            try:
                conf = float(cols[10])
            except ValueError:
                continue
            if conf < 0:
                continue
            lines.setdefault((cols[2], cols[3], cols[4]), []).append((cols[11], conf / 100.0))
        return [OcrLine(" ".join(w for w, _ in words), min(c for _, c in words)) for words in lines.values()]
