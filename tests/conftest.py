"""Test-wide settings. HF_HUB_OFFLINE must be set before Python starts (the Makefile
and .ci/run do); this guard makes a bare `pytest` behave the same for child processes."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
