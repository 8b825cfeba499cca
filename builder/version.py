"""The installed package's version (the distribution is `glan`)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("glan")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
