"""glan: GLAN synthetic instruction data from a taxonomy, as a Hugging Face datasets build script."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("glan")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
