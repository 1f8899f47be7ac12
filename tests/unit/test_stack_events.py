"""What `cauce up` writes for events: a token kept with the stack, SeaweedFS's webhook to the
watcher, the longer poll; and polling only when the token is set empty."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import SecretStr

from shared.config import Settings
from shared.stack.local import EVENTS_POLL_SECONDS, filer_events, write_stack_env


def stack_env(home: Path) -> dict[str, str]:
    lines = (home / "stack.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def test_a_stack_gets_events_with_a_token_kept_across_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CAUCE_WATCH_POLL_SECONDS", raising=False)
    settings = Settings(home=tmp_path, events_port=18082, bucket="lake")
    write_stack_env(settings)
    first = stack_env(tmp_path)
    assert len(first["CAUCE_EVENTS_TOKEN"]) >= 24
    assert first["CAUCE_WATCH_POLL_SECONDS"] == str(EVENTS_POLL_SECONDS)
    write_stack_env(settings)  # `cauce down; cauce up`: the same token
    assert stack_env(tmp_path)["CAUCE_EVENTS_TOKEN"] == first["CAUCE_EVENTS_TOKEN"]

    token = SecretStr(first["CAUCE_EVENTS_TOKEN"])
    folder = filer_events(settings.model_copy(update={"events_token": token}), tmp_path / "ev")
    config = tomllib.loads((folder / "notification.toml").read_text())["notification"]["webhook"]
    assert config["enabled"] is True
    assert config["endpoint"] == "http://127.0.0.1:18082/events"
    assert config["bearer_token"] == first["CAUCE_EVENTS_TOKEN"]
    assert config["path_prefixes"] == ["/buckets/lake/incoming", "/buckets/lake/batch"]
    assert (folder / "notification.toml").stat().st_mode & 0o077 == 0  # it holds the token


def test_an_empty_token_means_polling_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAUCE_WATCH_POLL_SECONDS", raising=False)
    settings = Settings(home=tmp_path, events_token=SecretStr(""))
    write_stack_env(settings)
    written = stack_env(tmp_path)
    assert written["CAUCE_EVENTS_TOKEN"] == ""
    assert "CAUCE_WATCH_POLL_SECONDS" not in written  # the 1 s default
    assert not (filer_events(settings, tmp_path / "ev") / "notification.toml").exists()


def test_a_poll_the_user_set_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAUCE_WATCH_POLL_SECONDS", "3")
    write_stack_env(Settings(home=tmp_path))
    assert "CAUCE_WATCH_POLL_SECONDS" not in stack_env(tmp_path)
