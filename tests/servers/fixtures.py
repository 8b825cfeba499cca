"""Pytest fixtures for the test servers: register with `pytest_plugins = ["tests.servers.fixtures"]`
in a conftest.py, or import the fixture into a test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import OpenAIServer, start_openai_server


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A fresh OpenAI-protocol server with default knobs; change them with `.configure(...)`."""
    with start_openai_server() as server:
        yield server
