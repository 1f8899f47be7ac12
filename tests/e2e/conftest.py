"""The whole local stack, started through the CLI as a user would, on free ports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.config import Settings, load_settings
from shared.stack.servers import free_port
from shared.storage import Store

CAUCE = str(Path(sys.executable).parent / "cauce")


@dataclass
class Stack:
    """A running local stack and the means to drive it."""

    home: Path
    env: dict[str, str]
    settings: Settings
    store: Store
    started: str = ""  # what `cauce up` printed

    def cli(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run `cauce ARGS` against this stack."""
        result = subprocess.run(
            [CAUCE, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"cauce {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def cli_json(self, *args: str) -> Any:
        """Run a `cauce ... --json` command and parse its output."""
        return json.loads(self.cli(*args, "--json").stdout)


def stack_env(home: Path, **overrides: str) -> dict[str, str]:
    """An environment for a stack in `home` whose every port is free."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAUCE_")}
    env.update(
        CAUCE_HOME=str(home),
        CAUCE_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0",
        CAUCE_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port(also_free_at=10000)}",
        CAUCE_SERVE_PORT=str(free_port()),
        CAUCE_CONSOLE_PORT=str(free_port()),
        CAUCE_EVENTS_PORT=str(free_port()),
        CAUCE_SERVE_POLL_SECONDS="0.5",
        CAUCE_WATCH_POLL_SECONDS="0.3",
        CAUCE_MAX_UPLOAD_BYTES=str(32 * 1024 * 1024),
        CAUCE_STALE_SECONDS="6",
        # The blend of the best trials costs several fits and exports per run; the tests of it
        # ask for it in their specs (test_loop), the rest keep to one model.
        CAUCE_ENSEMBLE="off",
    )
    env.update(overrides)
    return env


@contextmanager
def running_stack(home: Path, *args: str, **env_overrides: str) -> Iterator[Stack]:
    """`cauce up ARGS` in `home` (CAUCE_ settings overridden as given), `cauce down` after."""
    env = stack_env(home, **env_overrides)
    up = subprocess.run([CAUCE, "up", *args], env=env, capture_output=True, text=True, timeout=300)
    try:
        assert up.returncode == 0, f"cauce up failed:\n{up.stdout}\n{up.stderr}"
        settings = _settings(env)
        yield Stack(home, env, settings, Store.from_settings(settings), up.stderr + up.stdout)
    finally:
        subprocess.run([CAUCE, "down"], env=env, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The shared stack most end-to-end tests drive, with two train workers."""
    with running_stack(tmp_path_factory.mktemp("cauce-home"), "--workers", "train=2") as running:
        yield running


def _settings(env: dict[str, str]) -> Settings:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
