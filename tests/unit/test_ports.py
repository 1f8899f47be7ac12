"""Ports chosen for servers the tests and `cauce up` start."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from shared.stack.servers import free_port, port_is_free, weed_argv


def _ephemeral_start() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_free_ports_lie_below_the_ephemeral_range_and_are_not_handed_out_twice() -> None:
    # A port inside the ephemeral range can become the local end of an outgoing connection
    # before the server binds it; that is how a CI run once found serve unable to start.
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(10000 <= p < _ephemeral_start() for p in ports)
    paired = free_port(also_free_at=10000)
    assert paired + 10000 < _ephemeral_start()
    assert port_is_free(paired) and port_is_free(paired + 10000)


def test_a_port_held_by_an_outgoing_connection_is_not_free() -> None:
    with socket.socket() as server, socket.socket() as client:
        server.bind(("127.0.0.1", 0))
        server.listen()
        client.connect(server.getsockname())
        assert not port_is_free(client.getsockname()[1])


_DRAW = (
    "from shared.stack.servers import free_port; "
    "print(*[free_port() for _ in range(2000)], flush=True)"
)


def test_processes_choosing_ports_at_once_are_never_handed_the_same_one() -> None:
    # Parallel test workers, and the stacks the tests start, each choose ports in their own
    # process; 2000 random draws each would share a port in all but a vanishing share of runs.
    holder = subprocess.Popen(
        [sys.executable, "-c", f"{_DRAW}; input()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdin is not None
    try:
        held = set(map(int, holder.stdout.readline().split()))
        other = subprocess.run(
            [sys.executable, "-c", _DRAW], capture_output=True, text=True, check=True
        )
        drawn = set(map(int, other.stdout.split()))
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert len(held) == len(drawn) == 2000
    assert held.isdisjoint(drawn)


def test_weed_never_reuses_a_kept_internal_port_that_is_now_the_s3_port(tmp_path: Path) -> None:
    """A stack started again on new ports: the S3 port drawn may be one that the data folder
    kept for the filer, and weed would then fail to bind it, again and again."""
    data = tmp_path / "s3"
    data.mkdir()
    kept = {"master": 21001, "volume": 21002, "filer": 21003, "admin": 21004}
    (data / "cauce-ports.json").write_text(json.dumps(kept))
    argv = weed_argv(s3_port=21003, data_dir=data)
    ports = {arg.split("=")[0]: int(arg.split("=")[1]) for arg in argv if ".port=" in arg}
    assert ports["-s3.port"] == 21003
    internal = [ports[f"-{name}.port"] for name in kept]
    assert 21003 not in internal and 21003 not in [p + 10000 for p in internal]
    assert json.loads((data / "cauce-ports.json").read_text())["filer"] != 21003

    again = weed_argv(s3_port=free_port(also_free_at=10000), data_dir=data)
    assert [a for a in again if ".port=" in a and "s3" not in a] == [
        a for a in argv if ".port=" in a and "s3" not in a
    ]  # with no clash, the kept ports are kept
