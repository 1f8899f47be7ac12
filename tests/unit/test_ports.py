"""Ports chosen for servers the tests and `cauce up` start."""

from __future__ import annotations

import socket
from pathlib import Path

from shared.stack.servers import free_port, port_is_free


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
