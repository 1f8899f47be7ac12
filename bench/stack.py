"""A throwaway local stack on free ports for benchmarks (`with local_stack(train=2)`)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from shared.config import Settings, load_settings
from shared.stack.servers import free_port
from shared.storage import Store

CAUCE = str(Path(sys.executable).parent / "cauce")


@contextmanager
def local_stack(
    env_extra: dict[str, str] | None = None, **workers: int
) -> Iterator[tuple[Store, Settings]]:
    """`cauce up` in a temporary CAUCE_HOME (with `--workers stage=N` and CAUCE_ settings from
    `env_extra`), `cauce down` after."""
    home = Path(tempfile.mkdtemp(prefix="cauce-bench-"))
    env = {
        "CAUCE_HOME": str(home),
        "CAUCE_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0",
        "CAUCE_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port(also_free_at=10000)}",
        "CAUCE_SERVE_PORT": str(free_port()),
        "CAUCE_CONSOLE_PORT": str(free_port()),
        "CAUCE_EVENTS_PORT": str(free_port()),
        **(env_extra or {}),
    }
    saved = dict(os.environ)
    os.environ.update(env)
    flags = [arg for stage, n in workers.items() for arg in ("--workers", f"{stage}={n}")]
    subprocess.run([CAUCE, "up", *flags], check=True)
    try:
        settings = load_settings()
        yield Store.from_settings(settings), settings
    finally:
        subprocess.run([CAUCE, "down"], check=False)
        os.environ.clear()
        os.environ.update(saved)


def machine() -> str:
    """One line naming the machine the numbers come from."""
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"


def peer_venv(venv: Path, pins: Sequence[str]) -> Path:
    """The python of a peer's own virtualenv (MLflow, FLAML), made with `pins` on first use and
    kept under .cache/ (gitignored)."""
    python = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *pins], check=True)
        (venv / ".installed").touch()
    return python
