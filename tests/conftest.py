import pytest

pytest_plugins = ["tests.servers.fixtures"]


@pytest.fixture(autouse=True)
def _no_real_endpoint(monkeypatch):
    """No test may reach a real endpoint or read a developer's key."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
