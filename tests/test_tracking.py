"""W&B with a key but no server that answers, or one that refuses the runs: tunelab logs offline and says so, never
fails or waits for W&B; ``--wandb online`` (or WANDB_MODE=online) is refused before anything starts. The real
wandb, against a port where nothing listens and a local HTTP server that answers 401 to everything."""

import http.server
import os
import socket
import threading
from types import SimpleNamespace

import pytest
import wandb

from tunelab import tracking
from tunelab.cli import main
from tunelab.errors import UserError

KEY = "0123456789abcdef" * 2 + "01234567"  # 40 characters, as W&B's keys; no server knows it


class Refusing(http.server.BaseHTTPRequestHandler):
    def _refuse(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"errors": [{"message": "invalid api key"}]}')

    do_GET = do_POST = _refuse

    def log_message(self, *args):
        pass


@pytest.fixture
def w_and_b(monkeypatch, tmp_path):
    """A key in the environment and a fresh wandb (its settings, the base URL included, are read once per setup)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    wandb.teardown()
    yield monkeypatch
    wandb.teardown()


@pytest.fixture
def silent(w_and_b) -> str:
    """A base URL where nothing answers: a port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    w_and_b.setenv("WANDB_BASE_URL", url)
    return url


@pytest.fixture
def refusing(w_and_b) -> str:
    """A base URL whose server answers every request with 401."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    w_and_b.setenv("WANDB_BASE_URL", url)
    yield url
    server.shutdown()


def test_a_key_without_a_server_that_answers_logs_offline_and_says_so(silent, capsys):
    assert tracking.mode(None) == "offline"
    err = capsys.readouterr().err
    assert f"W&B's server {silent} does not answer" in err and "logging offline" in err


def test_online_asked_for_without_a_server_that_answers_is_refused(silent):
    with pytest.raises(UserError, match=f"--wandb online: W&B's server {silent} does not answer.*--wandb offline"):
        tracking.mode("online")
    os.environ["WANDB_MODE"] = "online"  # the fixture's monkeypatch restores it
    with pytest.raises(UserError, match="WANDB_MODE=online: W&B's server"):
        tracking.mode(None)
    os.environ["WANDB_MODE"] = "dryrun"
    with pytest.raises(UserError, match="WANDB_MODE 'dryrun' is not allowed; allowed: online, offline, disabled"):
        tracking.mode(None)


def test_the_key_that_wandb_login_writes_for_its_default_host_means_online(refusing, tmp_path, w_and_b):
    w_and_b.delenv("WANDB_API_KEY")
    assert tracking.mode(None) == "offline"  # no key anywhere
    netrc = tmp_path / ".netrc"
    netrc.write_text(f"machine api.forge.coreweave.com\n  login user\n  password {KEY}\n")
    netrc.chmod(0o600)
    assert tracking.mode(None) == "online"  # and a server that answers, if only with 401


def test_a_run_that_wandb_refuses_is_not_logged_and_says_why(refusing, tmp_path, capsys):
    with tracking.wandb_run("online", "tunelab-test", "group", "retrain", "refused", {"lr": 0.1}, tmp_path) as log:
        log.log({"test_acc": 0.5})
    assert "W&B: run refused not logged: it could not start online (invalid api key)" in capsys.readouterr().err


def test_the_trials_after_a_refused_run_log_offline_without_asking_again(refusing, tmp_path, capsys):
    runs = tracking.TrialRuns("online", "tunelab-test", "group", dict, str(tmp_path))
    for trial_id in ("trial1", "trial2", "trial3"):
        runs.on_trial_start(0, [], SimpleNamespace(trial_id=trial_id, config={"lr": 0.1}))
        runs.on_trial_result(0, [], SimpleNamespace(trial_id=trial_id), {"val_acc": 0.5})
    runs.on_experiment_end([])
    assert capsys.readouterr().err.count("could not start online") == 1
    offline = sorted(p.name.rsplit("-", 1)[1] for p in (tmp_path / "wandb").glob("offline-run-*"))
    assert runs.mode == "offline" and offline == ["trial2", "trial3"]


def test_the_command_line_refuses_online_before_anything_starts(silent, tmp_path, capsys, fixture_root):
    results = tmp_path / "results"
    assert main(["--data-dir", str(fixture_root), "--results-dir", str(results), "search", "fashion_cnn",
                 "--wandb", "online"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith(f"tunelab: error: --wandb online: W&B's server {silent} does not answer")
    assert "Traceback" not in err and not (results / "fashion_cnn").exists()
