"""A release a user owns, end to end: the wheel installed anywhere, a card shaped by taxonomy.yaml, and a
release anyone can pull, rebuild and extend. Builds talk to the OpenAI-protocol test server, pushes and
pulls to the Hub-protocol test server (through tests/test_hub.py's child interpreter)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from glan.cli import main
from glan.project import SHIPPED_PROMPTS, SHIPPED_TAXONOMY
from glan.stages import CONFIGS
from tests.helpers import PATIENCE_S
from tests.test_card import SECTIONS
from tests.test_extend import write_project
from tests.test_hub import _card, _glan, _push, _push_to_hub, client, hub  # noqa: F401 (pytest fixtures)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server():
    from tests.servers import start_openai_server

    with start_openai_server() as started:
        yield started


def build(server, project: Path, work: Path, *flags: str) -> tuple[int, int]:
    """`glan build` of `project`'s taxonomy; returns the exit code and the requests the server received."""
    server.reset()
    code = main(["build", "--taxonomy", str(project / "taxonomy.yaml"), "--model", "test-model",
                 "--base-url", server.base_url, "--work-dir", str(work), "--out", str(project / "dist"), *flags])
    return code, server.stats()["requests"]


def test_the_wheel_installs_and_works_from_an_empty_directory(server, hub, tmp_path):
    """pip wheel, install into a fresh venv, then init, build and push from an empty directory."""
    from tests.servers.hub_server import FAKE_TOKEN

    source = tmp_path / "source"  # a clean copy, so the build leaves nothing in the checkout
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".glan", "dist", "build", "*.egg-info", "__pycache__", ".pytest_cache", "tests"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "wheel", source],
                   check=True, capture_output=True, timeout=PATIENCE_S)
    [wheel] = (tmp_path / "wheel").glob("glan-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=PATIENCE_S)
    subprocess.run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q", "--no-deps",
                    "--no-index", wheel], check=True, capture_output=True, timeout=PATIENCE_S)
    # glan's dependencies come from the test venv: its site-packages is put on the path (not processed as a
    # site dir, so the editable install of glan there stays inactive)
    site = subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True, timeout=PATIENCE_S).stdout.strip()
    deps = next(path for path in sys.path if path.endswith("site-packages") and Path(path).is_dir())
    Path(site, "test_deps.pth").write_text(deps + "\n")
    project = tmp_path / "empty"
    project.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_XET="1", HF_TOKEN=FAKE_TOKEN, HF_HOME=str(tmp_path / "hf"),
               HF_HUB_DISABLE_TELEMETRY="1")

    def glan(*argv, cwd=project):
        return subprocess.run([venv / "bin" / "glan", *argv], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=PATIENCE_S)

    where = subprocess.run([venv / "bin" / "python", "-c", "import glan, glan_dataset; "
                            "print(glan.__file__); print(glan_dataset.__file__)"],
                           cwd=project, env=env, capture_output=True, text=True, check=True,
                           timeout=PATIENCE_S).stdout.split()
    assert all(path.startswith(site) for path in where), where
    assert glan("--version").stdout == "glan 0.2.0\n"
    missing = glan("estimate")
    assert missing.returncode == 2
    assert missing.stderr == ("glan: taxonomy.yaml: file not found. Pass the path of a taxonomy YAML, or run "
                              "`glan init` to start from the one shipped with glan.\n")

    init = glan("init")
    assert init.returncode == 0, init.stderr
    assert (project / "taxonomy.yaml").read_bytes() == SHIPPED_TAXONOMY.read_bytes()
    assert sorted(path.name for path in (project / "prompts").iterdir()) == \
        sorted(path.name for path in SHIPPED_PROMPTS.iterdir())
    built = glan("build", "--preset", "smoke", "--disciplines", "Organic Chemistry", "--model", "test-model",
                 "--base-url", server.base_url)
    assert built.returncode == 0, built.stderr
    assert (project / "dist" / "glan" / "taxonomy.yaml").read_bytes() == SHIPPED_TAXONOMY.read_bytes()
    pushed = glan("push", "glan-tester/from-wheel")
    assert pushed.returncode == 0, pushed.stderr
    assert "tag v1.0.0 created" in pushed.stdout
    files = hub.files("glan-tester/from-wheel")
    assert files["glan/taxonomy.yaml"] == SHIPPED_TAXONOMY.read_bytes()
    assert 'load_dataset("glan-tester/from-wheel", "instructions", revision="v1.0.0")' in files["README.md"].decode()

    alone = tmp_path / "alone"  # a taxonomy with no prompts/ beside it: the shipped prompts, and a note saying so
    alone.mkdir()
    shutil.copy(project / "taxonomy.yaml", alone / "taxonomy.yaml")
    estimated = glan("estimate", "--preset", "smoke", "--model", "test-model", "--base-url", server.base_url, cwd=alone)
    assert estimated.returncode == 0, estimated.stderr
    shipped = Path(site) / "glan" / "defaults" / "prompts"
    assert estimated.stderr.startswith(f"glan: no prompts/ beside taxonomy.yaml: using the prompts shipped with glan "
                                       f"({shipped}).")


CARD_BLOCK = {
    "title": "Homework for small tutors",
    "summary": "Questions a school would set in two disciplines, answered by a model.",
    "language": ["en", "de"],
    "tags": ["synthetic", "education", "glan"],
    "license_name": "tutor-data-license",
    "license_link": "https://example.org/tutor-data-license",
    "uses": "Fine-tuning tutoring models.",
    "out_of_scope_uses": "Grading real students.",
    "limitations": "Nobody checked these answers.",
    "sections": [{"title": "Maintainers", "body": "Open a discussion on this repo."}],
}


def test_an_edited_card_block_is_the_card_the_hub_serves(server, hub, client, tmp_path):
    repo, project = "glan-tester/card-block", tmp_path / "project"
    taxonomy = write_project(project, "1.0.0", "ab")
    data = yaml.safe_load(taxonomy.read_text())
    taxonomy.write_text(yaml.safe_dump({**data, "license": "other", "card": CARD_BLOCK}, sort_keys=False))
    assert build(server, project, tmp_path / ".glan")[0] == 0
    results = client(_push(project / "dist", repo), _card(repo, "v1.0.0"),
                     *(_push_to_hub(project / "dist", "glan-tester/by-datasets", config) for config in CONFIGS),
                     _card("glan-tester/by-datasets"))
    pushed, card, by_datasets = results[0], results[1], results[-1]

    assert pushed["exit"] == 0, pushed["err"]
    header = yaml.safe_load(re.match(r"^---\n(.*?)\n---\n", card["content"], re.S).group(1))
    assert header == card["data"]  # the YAML huggingface_hub read is the YAML on the Hub
    assert (header["pretty_name"], header["language"], header["tags"]) == (
        CARD_BLOCK["title"], CARD_BLOCK["language"], CARD_BLOCK["tags"])
    assert (header["license"], header["license_name"], header["license_link"]) == (
        "other", CARD_BLOCK["license_name"], CARD_BLOCK["license_link"])
    text = card["text"]
    for title in [*SECTIONS, "## Maintainers"]:
        assert f"\n{title}" in text, title
    assert f"# {CARD_BLOCK['title']}\n\n{CARD_BLOCK['summary']}\n" in text
    assert f"[{CARD_BLOCK['license_name']}]({CARD_BLOCK['license_link']})" in text
    for key, heading in (("uses", "### Direct use"), ("out_of_scope_uses", "### Out-of-scope use"),
                         ("limitations", "## Limitations and biases")):
        assert f"{heading}\n\n{CARD_BLOCK[key]}\n" in text
    assert "## Maintainers\n\nOpen a discussion on this repo.\n" in text
    assert f'load_dataset("{repo}", "instructions", revision="v1.0.0")' in text and "<repo_id>" not in text
    assert "glan build --model test-model   #" in text
    # dataset_info as datasets' own push_to_hub writes it for the same data: Arrow bytes per split
    ours = {info["config_name"]: info for info in header["dataset_info"]}
    theirs = {info["config_name"]: info for info in by_datasets["data"]["dataset_info"]}
    # Arrow bytes are summed from the shards (a discipline's each), so a column holding nulls (the judge's three,
    # when it is off) counts a validity bitmap per shard where datasets counts one for the split: up to a byte more
    # per shard and column.
    splits = json.loads((project / "dist" / "glan_manifest.json").read_text())["configs"]
    for config in CONFIGS:
        slack = {split: (3 * len(entry["files"]) if config == "instructions" else 0)
                 for split, entry in splits[config]["splits"].items()}
        for mine, datasets_own in zip(ours[config]["splits"], theirs[config]["splits"], strict=True):
            assert mine["name"] == datasets_own["name"] and mine["num_examples"] == datasets_own["num_examples"]
            assert 0 <= mine["num_bytes"] - datasets_own["num_bytes"] <= slack[mine["name"]], (config, mine)
        assert 0 <= ours[config]["dataset_size"] - theirs[config]["dataset_size"] <= sum(slack.values()), config
        assert ours[config]["features"] == theirs[config]["features"], config


def test_a_pulled_release_rebuilds_to_the_same_release_and_extends_paying_only_the_new_discipline(
        server, hub, client, tmp_path):
    repo, work, first = "glan-tester/pulled", tmp_path / ".glan", tmp_path / "first"
    write_project(first, "1.0.0", "ab")
    assert build(server, first, work)[0] == 0
    code, new_only = build(server, write_project(tmp_path / "alone", "1.0.0", "c").parent, tmp_path / "fresh")
    assert code == 0 and new_only > 0
    pulled = tmp_path / "pulled"
    pushed, pull, refused = client(_push(first / "dist", repo), _glan("pull", repo, "--revision", "v1.0.0", pulled),
                                   _glan("pull", repo, pulled))

    assert pushed["exit"] == 0 and pull["exit"] == 0, pushed["err"] + pull["err"]
    project_files = sorted(path.relative_to(pulled).as_posix() for path in pulled.rglob("*") if path.is_file())
    assert project_files == ["prompts/answers.yaml", "prompts/judge.yaml", "prompts/propose.yaml",
                             "prompts/questions.yaml", "prompts/subjects.yaml", "prompts/syllabus.yaml", "taxonomy.yaml"]
    for path in project_files:
        assert (pulled / path).read_bytes() == (first / path).read_bytes(), path
    assert pull["out"].startswith(f"pulled {repo}@v1.0.0 (commit {hub.tags(repo)['v1.0.0']}) into {pulled}:\n")
    assert f"  cd {pulled} && glan build --model test-model" in pull["out"]
    assert refused["exit"] == 2 and refused["err"] == (
        f"glan: {pulled / 'prompts' / 'answers.yaml'}: already exists. Pick an empty directory, or move the file "
        "away; glan never overwrites a project file.\n")

    assert build(server, pulled, work) == (0, 0)  # the pulled inputs are the release's: every response is cached
    (republished,) = client(_push(pulled / "dist", repo))
    assert republished["out"] == f"{repo}: already published as v1.0.0 (commit {hub.tags(repo)['v1.0.0']}): nothing to do.\n"

    text = (pulled / "taxonomy.yaml").read_text()
    indent = re.search(r"^( *)- name: Linear Algebra$", text, re.M).group(1)
    text = text.replace("version: 1.0.0", "version: 1.1.0").replace(
        "- name: Linear Algebra\n", f"- name: Linear Algebra\n{indent}- name: Music Theory\n")
    (pulled / "taxonomy.yaml").write_text(text)
    code, requests = build(server, pulled, work)
    assert (code, requests) == (0, new_only)
    (extended,) = client(_push(pulled / "dist", repo))
    assert extended["exit"] == 0, extended["err"]
    assert list(hub.tags(repo)) == ["v1.0.0", "v1.1.0"]
    assert hub.files(repo, "v1.1.0")["glan/taxonomy.yaml"] == text.encode()
    assert "- Disciplines added (1):\n  - Music Theory (`music-theory`" in hub.commits(repo)[-1].message
