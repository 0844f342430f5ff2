"""The runnable neurons and what composes them.

``miner`` and ``validator`` are the entry points (``python -m neurons.miner``); their
parts live in small modules: ``config`` (flags -> typed sections), ``blacklist``,
``prompts``, ``state``, ``weights``, ``reports``, ``chain`` (adapters). Importing this
package is cheap: nothing here imports bittensor or torch.
"""

from protocol.version import __version__

__all__ = ["__version__"]
