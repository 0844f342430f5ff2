"""Subcommands of the ``text3d`` CLI; see ``neurons.cli``."""
