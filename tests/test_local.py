"""The embedded default server: it answers schema-constrained JSON and never outlives its owner."""

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama_cpp is not importable: install the local extra (pip install -e '.[local]') "
    "to test the embedded llama.cpp server",
)

from openai import OpenAI  # noqa: E402

from glan.llm.local import LocalServer, LocalServerError  # noqa: E402
from glan.llm.local_models import LOCAL_MODELS  # noqa: E402
from tests.helpers import PATIENCE_S, wait_until  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
LEVELS = ["introductory", "intermediate", "advanced", "graduate"]


@pytest.mark.parametrize("model_name", LOCAL_MODELS)
def test_answers_a_schema_constrained_call_and_stops_on_exit(model_name):
    with LocalServer(model_name) as server:
        assert server.model == LOCAL_MODELS[model_name].alias
        pid = server.pid
        port = _port(server.base_url)
        assert _is_llama_server(pid) and port in _listening_ports()
        client = OpenAI(base_url=server.base_url, api_key="local", max_retries=0, timeout=PATIENCE_S)
        assert [model.id for model in client.models.list()] == [server.model]
        response = client.chat.completions.create(
            model=server.model,
            messages=[{"role": "user", "content": "At what level is Organic Chemistry taught?"}],
            max_tokens=24,
            temperature=0,
            response_format={
                "type": "json_object",
                "schema": {
                    "type": "object",
                    "properties": {"level": {"type": "string", "enum": LEVELS}},
                    "required": ["level"],
                },
            },
        )
        answer = json.loads(response.choices[0].message.content, strict=False)
        assert answer["level"] in LEVELS
    assert not _is_llama_server(pid)
    assert port not in _listening_ports()


def test_stops_on_an_exception_inside_the_block():
    with pytest.raises(KeyboardInterrupt):
        with LocalServer() as server:
            pid = server.pid
            raise KeyboardInterrupt
    assert not _is_llama_server(pid)


def test_dies_with_a_sigkilled_parent_even_mid_generation():
    # Busy is the hard case: on SIGTERM uvicorn would first finish the request in flight.
    child_code = (
        "import threading, time\n"
        "from openai import OpenAI\n"
        "from glan.llm.local import LocalServer\n"
        "server = LocalServer()\n"
        "server.start()\n"
        "print(server.pid, server.base_url, flush=True)\n"
        "client = OpenAI(base_url=server.base_url, api_key='local', max_retries=0)\n"
        "long_prompt = [{'role': 'user', 'content': 'Carbon forms four bonds. ' * 500}]\n"
        "threading.Thread(target=client.chat.completions.create, daemon=True,\n"
        "                 kwargs={'model': server.model, 'messages': long_prompt, 'max_tokens': 500}).start()\n"
        "time.sleep(3600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", child_code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        printed = _lines(parent.stdout)
        pid, base_url = wait_until(lambda: printed, "the child to start its llama.cpp server", process=parent)[0].split()
        pid = int(pid)
        assert _is_llama_server(pid)
        wait_until(lambda: _connected_to(_port(base_url)), "the child's request to reach its server", process=parent)
        parent.kill()
        parent.wait()
        wait_until(lambda: not _is_llama_server(pid), f"llama server {pid} to die with its SIGKILLed parent")
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()


def test_serve_local_answers_until_interrupted(tmp_path):
    """`glan serve-local` as a user runs it: it prints where it serves, answers an OpenAI client there, and
    Ctrl-C stops it and its server cleanly."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with _sigint_as_from_a_terminal():
        glan = subprocess.Popen([sys.executable, "-m", "glan.cli", "serve-local", "--port", str(port)],
                                cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        printed = _lines(glan.stdout)
        wait_until(lambda: "Press Ctrl-C to stop." in printed, "serve-local to say it serves", process=glan)
        base_url = f"http://127.0.0.1:{port}/v1"
        assert f"  export OPENAI_BASE_URL={base_url}" in printed
        [model] = [line.split(": ", 1)[1] for line in printed if line.startswith("  model name: ")]
        server = _llama_server_on(port)
        assert server is not None
        client = OpenAI(base_url=base_url, api_key="local", max_retries=0, timeout=PATIENCE_S)
        reply = client.chat.completions.create(model=model, max_tokens=8, temperature=0,
                                               messages=[{"role": "user", "content": "Name a prime number."}])
        assert reply.choices[0].message.content and reply.usage.completion_tokens >= 1
        glan.send_signal(signal.SIGINT)
        wait_until(lambda: glan.poll() is not None, "serve-local to exit on Ctrl-C (SIGINT)")
        assert glan.returncode == 0
        assert not _is_llama_server(server) and port not in _listening_ports()
    finally:
        glan.kill()
        glan.wait()
        glan.stdout.close()


@contextlib.contextmanager
def _sigint_as_from_a_terminal():
    """Processes started inside take Ctrl-C as they do started from a terminal, however pytest was started. A shell
    starts a background job (`pytest &` in a script) with SIGINT ignored; an ignored signal stays ignored across
    fork and exec, and Python then never raises KeyboardInterrupt. A handled one is reset to the default."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _lines(stream) -> list[str]:
    """The lines `stream` has given so far, without their newlines; a thread appends them until it ends."""
    lines: list[str] = []

    def read() -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return lines


def test_a_server_that_cannot_start_reports_its_output():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LocalServerError, match="address already in use"):
            with LocalServer(port=port):
                pass


def _is_llama_server(pid: int) -> bool:
    """True while `pid` is a running (not zombie) llama_cpp.server process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    return state != "Z" and b"llama_cpp.server" in command_line


def _listening_ports() -> set[int]:
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local_address, state = line.split()[1], line.split()[3]
            if state == "0A":  # TCP_LISTEN
                ports.add(int(local_address.rsplit(":", 1)[1], 16))
    return ports


def _connected_to(port: int) -> bool:
    """True while some connection to 127.0.0.1:`port` is established."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port:  # TCP_ESTABLISHED
            return True
    return False


def _llama_server_on(port: int) -> int | None:
    """The pid of the llama.cpp server listening on `port`, if one runs."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _is_llama_server(int(entry.name)):
            with contextlib.suppress(OSError):
                if f"--port\0{port}\0".encode() in (entry / "cmdline").read_bytes():
                    return int(entry.name)
    return None


def _port(base_url: str) -> int:
    return int(base_url.rsplit(":", 1)[1].split("/")[0])
