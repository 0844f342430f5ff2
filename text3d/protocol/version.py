"""The project's version and the subnet ``spec_version`` derived from it.

Validators send ``SPEC_VERSION`` as the ``version_key`` of their weights so the chain
can refuse weights from validators running an incompatible release.
"""

__version__ = "0.1.14"


def spec_version_of(version: str) -> int:
    """Subnet convention: ``1000 * major + 10 * minor + patch``."""
    major, minor, patch = (int(part) for part in version.split(".")[:3])
    return 1000 * major + 10 * minor + patch


SPEC_VERSION: int = spec_version_of(__version__)
