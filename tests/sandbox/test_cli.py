"""The kaiten-sandbox command: prints its URL and token, serves, stops cleanly on signals."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest
import requests

COMMAND = [sys.executable, "-m", "kaiten_sandbox"]


@pytest.fixture
def running():
    """Start the CLI on a free port; yield (process, env-style settings)."""
    processes = []

    def start(*args):
        proc = subprocess.Popen(
            [*COMMAND, "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(proc)
        settings = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(2))
        return proc, settings

    yield start
    for proc in processes:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_settings_serves_and_exits_cleanly(running, sig):
    proc, settings = running("--cards", "120", "--seed", "3", "--rate-limit", "0")
    assert set(settings) == {"KAITEN_API_URL", "KAITEN_API_TOKEN"}
    url, token = settings["KAITEN_API_URL"], settings["KAITEN_API_TOKEN"]
    assert url.startswith("http://127.0.0.1:")
    response = requests.get(
        f"{url}/api/latest/cards",
        params={"archived": "true", "limit": 100, "offset": 100},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert len(response.json()) == 20
    proc.send_signal(sig)
    assert proc.wait(timeout=10) == 0
    assert proc.stderr.read() == ""


def test_cli_same_seed_same_token_and_custom_token(running):
    _, first = running("--cards", "5", "--seed", "11")
    _, second = running("--cards", "5", "--seed", "11")
    assert first["KAITEN_API_TOKEN"] == second["KAITEN_API_TOKEN"]
    token = "296a5709-99bc-49a7-96e0-c0a1b236091f"
    _, custom = running("--cards", "5", "--token", token)
    assert custom["KAITEN_API_TOKEN"] == token


def test_cli_rate_limit_defaults_to_five(running):
    _, settings = running("--cards", "5")
    response = requests.get(
        f"{settings['KAITEN_API_URL']}/api/latest/users/current",
        headers={"Authorization": f"Bearer {settings['KAITEN_API_TOKEN']}"},
        timeout=10,
    )
    assert response.headers["x-ratelimit-limit"] == "5"


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["--cards", "-1"], "--cards"),
        (["--cards", "lots"], "--cards"),
        (["--cards", "5000000000"], "--cards"),
        (["--seed", "x"], "--seed"),
        (["--webhook-url", "localhost:9000/hook"], "--webhook-url"),
        (["--activity", "-1"], "--activity"),
        (["--port", "70000"], "--port"),
        (["--fault-rate", "1.5"], "--fault-rate"),
        (["--updated-after", "sometimes"], "--updated-after"),
        (["--token", "Bearer 296a5709-99bc-49a7-96e0-c0a1b236091f"], "--token"),
    ],
)
def test_cli_bad_arguments_get_one_line_and_exit_2(args, mentions):
    result = subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert mentions in lines[0]
    assert "Traceback" not in result.stderr
    assert "296a5709" not in result.stderr  # never echo something that may be a real token


def test_cli_port_in_use_is_one_clear_line():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [*COMMAND, "--port", str(port), "--cards", "1"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(port) in result.stderr


def test_same_seed_same_workspace_across_processes(running, monkeypatch):
    states = []
    for hash_seed in ("1", "2"):
        monkeypatch.setenv("PYTHONHASHSEED", hash_seed)  # set/dict order must not leak in
        _, settings = running("--cards", "300", "--seed", "9")
        states.append(
            requests.get(f"{settings['KAITEN_API_URL']}/_sandbox/state", timeout=30).json()
        )
    assert states[0] == states[1]
    assert len(states[0]["cards"]) == 300


def test_cli_activity_keeps_changing_cards(running):
    _, settings = running("--cards", "50", "--activity", "0.05")
    url = f"{settings['KAITEN_API_URL']}/_sandbox/state"
    first = requests.get(url, params={"streams": "cards"}, timeout=10).json()["cards"]
    for _ in range(200):  # bounded wait for the first background change
        later = requests.get(url, params={"streams": "cards"}, timeout=10).json()["cards"]
        if later != first:
            break
    assert later != first
    assert len(later) > len(first)  # every round creates a card
