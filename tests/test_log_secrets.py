"""What the log file and the terminal say of a command line never holds a secret: a --token however abbreviated,
a key pasted into --set ...api_key_env, a URL's user and password."""

from tests.helpers import glan, project
from tests.servers import start_openai_server


def test_a_builds_log_and_messages_hold_no_url_password_and_no_pasted_key(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    taxonomy, work = project(tmp_path / "project"), tmp_path / ".glan"
    with start_openai_server() as server:
        url = server.base_url.replace("http://", "http://someone:sk-URLSECRET@")
        common = ("--taxonomy", taxonomy, "--preset", "smoke", "--disciplines", "Organic Chemistry", "--model",
                  "test-model", "--base-url", url, "--work-dir", work, "-v")
        built = glan("build", *common, "--out", tmp_path / "dist")
        refused = glan("build", *common, "--out", tmp_path / "dist", "--set", "answers.api_key_env=sk-PASTEDSECRET")
    assert built[0] == 0 and refused[0] == 2
    logs = [path.read_text() for path in (work / "logs").iterdir()]
    assert len(logs) == 2 and all("***@127.0.0.1" in text for text in logs)
    assert "answers.api_key_env=***" in logs[0] + logs[1]
    for text in (*logs, *built[1:], *refused[1:]):
        assert "URLSECRET" not in text and "PASTEDSECRET" not in text


def test_an_abbreviated_token_flag_is_hidden_too(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("GLAN_HUB_STALL_S", "5")
    # A flag without a value first (--verbose): its next word is the next flag, not its value.
    for flag in (["--tok", "hf_ABBREVSECRET"], ["--tok=hf_ABBREVSECRET"], ["--verbose", "--token", "hf_ABBREVSECRET"]):
        code, out, err = glan("pull", "someone/repo", str(tmp_path / "pulled"), "-v", *flag)
        assert code in (1, 2) and "glan pull" in err + out and "--tok" in err
        assert "ABBREVSECRET" not in out + err


def test_a_logs_folder_that_is_a_link_gets_no_log_file_and_the_build_goes_on(tmp_path):
    taxonomy, work, elsewhere = project(tmp_path / "project"), tmp_path / ".glan", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    (work / "logs").symlink_to(elsewhere)
    with start_openai_server() as server:
        code, _, err = glan("build", "--taxonomy", taxonomy, "--preset", "smoke", "--disciplines", "Organic Chemistry",
                            "--model", "test-model", "--base-url", server.base_url, "--work-dir", work,
                            "--out", tmp_path / "dist")
    assert code == 0 and list(elsewhere.iterdir()) == []
    assert f"glan: warning: no log file: cannot write {work / 'logs'}" in err
