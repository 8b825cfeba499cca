from importlib import metadata

import pytest
import yaml

pytest_plugins = ["tests.servers.fixtures"]

# What decides how the tests behave, printed at the top of every run (.ci/run's too): a failure on one machine
# and not another is then a difference you can read. The tested versions: README.md, "Development".
MAIN_DEPENDENCIES = ("datasets", "huggingface_hub", "openai", "pyyaml", "aiohttp", "pydantic", "ray",
                     "llama-cpp-python", "pyarrow")


def pytest_report_header(config) -> list[str]:
    versions = []
    for name in MAIN_DEPENDENCIES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    loader = f"libyaml {yaml._yaml.get_version_string()}" if hasattr(yaml, "CSafeLoader") else "pure Python"
    return ["dependencies: " + ", ".join(versions), f"PyYAML's loader: {loader}"]


@pytest.fixture(autouse=True)
def _no_real_endpoint(monkeypatch):
    """No test may reach a real endpoint or read a developer's key."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
