"""Entry point: ``python -m neurons.validator ...`` runs the validator (``text3d.validator.main``)."""

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python neurons/validator.py` from a checkout: make text3d importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from text3d.validator.main import main

if __name__ == "__main__":
    sys.exit(main())
