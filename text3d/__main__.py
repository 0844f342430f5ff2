"""``python -m text3d ...`` is the ``text3d`` command."""

import sys

from text3d.cli.main import main

sys.exit(main())
