"""The embedded default LLM: llama-cpp-python's OpenAI-compatible server running a tiny GGUF model.

With no endpoint configured, glan runs the whole pipeline offline against this server. It is a
child process that never outlives us: it is stopped when the `with` block exits (normally, on an
exception or on Ctrl-C), at interpreter exit, and, on Linux, by the kernel (PR_SET_PDEATHSIG) when
this process dies without running any Python at all (SIGKILL, the OOM killer).

The models it can run are in local_models.py; they prove the pipeline works, real data comes from a
real endpoint. Measurements and the server's quirks: docs/local_server.md, docs/embedded_models.md.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from ..errors import UserError
from .local_models import DEFAULT_LOCAL_MODEL, LOCAL_MODELS

# A syllabus of 30 sessions plus the question prompt is ~2k tokens; 4096 leaves room for the answer.
N_CTX = 4096
STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 2.0  # an idle server exits on SIGTERM in well under a second
STDERR_TAIL_LINES = 30
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class LocalServerError(UserError):
    """The embedded server could not be started or died; str(e) says why and what to do."""

    exit_code = 1  # the machine could not run the model: a failed run, not bad input


class LocalServer:
    """Context manager running the embedded llama.cpp server on 127.0.0.1.

    `model_name` is a key of LOCAL_MODELS. Inside the block, `.base_url` ("http://127.0.0.1:PORT/v1")
    and `.model` are what an OpenAI client sends to. The server ignores the API key; the client still
    needs a non-empty one.
    Enter it from the thread that outlives its use (the main thread): Linux delivers the
    parent-death signal when the *thread* that started the server exits.
    """

    def __init__(
        self,
        model_name: str = DEFAULT_LOCAL_MODEL,
        port: int | None = None,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
    ):
        self.local_model = LOCAL_MODELS[model_name]
        self.port = port
        self.startup_timeout_s = startup_timeout_s
        self.model = self.local_model.alias
        self.base_url = ""
        self._process: subprocess.Popen | None = None
        self._output_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._output_reader: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        _require_local_extra(self.local_model.package)
        model_file = self.local_model.gguf()
        port = self.port or _free_port()
        self.base_url = f"http://127.0.0.1:{port}/v1"
        cores = _cores()
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model_file),
            "--model_alias",
            self.model,
            "--chat_format",
            self.local_model.chat_format,
            "--n_ctx",
            str(N_CTX),
            "--n_threads",
            str(cores),
            "--n_threads_batch",
            str(cores),
            # The server's default (True) copies n_vocab (262k) logits per prompt token; we never
            # ask for logprobs.
            "--logits_all",
            "False",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        process = self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own session: a terminal's Ctrl-C reaches only us, and we stop it in order.
            start_new_session=True,
            preexec_fn=_die_with_parent() if sys.platform == "linux" else None,
        )
        atexit.register(self.stop)
        reader = self._output_reader = threading.Thread(
            target=_keep_tail, args=(process.stdout, self._output_tail), daemon=True
        )
        reader.start()
        try:
            self._wait_until_ready(process, reader)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        if process.poll() is None:
            # SIGTERM lets uvicorn close its sockets; it waits for a generation in progress
            # (measured: 19 s for a 3k-token prompt), so SIGKILL follows.
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
        if self._output_reader is not None:
            self._output_reader.join(timeout=1)
        if process.stdout is not None:
            process.stdout.close()

    def wait(self) -> int:
        """Block until the server exits; returns its exit code."""
        assert self._process is not None, "the server was never started"
        return self._process.wait()

    def output_tail(self) -> str:
        return "\n".join(self._output_tail)

    def _wait_until_ready(self, process: subprocess.Popen, reader: threading.Thread) -> None:
        # The server loads the model before it opens its port, so the first answer means ready.
        no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            returncode = process.poll()
            if returncode is not None:
                reader.join(timeout=1)
                raise LocalServerError(
                    f"the embedded llama.cpp server exited with code {returncode} before answering "
                    f"on {self.base_url}. Its last output:\n{self.output_tail()}"
                )
            try:
                with no_proxy.open(f"{self.base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise LocalServerError(
                    f"the embedded llama.cpp server did not answer on {self.base_url} within "
                    f"{self.startup_timeout_s:.0f} s. Its last output:\n{self.output_tail()}"
                )
            time.sleep(0.2)


def _require_local_extra(package: str) -> None:
    missing = [name for name in ("llama_cpp", package) if importlib.util.find_spec(name) is None]
    if missing:
        raise LocalServerError(
            f"the embedded default needs {' and '.join(missing)}, which are not installed. "
            "Install the local extra (pip install 'glan[local]'; building llama-cpp-python takes "
            "minutes), or point glan at an endpoint with OPENAI_BASE_URL."
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _die_with_parent():
    """preexec_fn: the kernel kills the server when the thread that started it dies.

    SIGKILL, not SIGTERM: on SIGTERM uvicorn waits for the request in flight, which on a CPU model
    can take minutes, so a killed build would leave the server running that long.
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork: the child only calls
    parent_pid = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)


def _keep_tail(stream, tail: collections.deque) -> None:
    for line in iter(stream.readline, b""):
        tail.append(line.decode(errors="replace").rstrip())
