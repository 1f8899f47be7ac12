"""A small network of hosts on this machine: one Linux network namespace per host, each joined to
one bridge by a veth pair, on a private subnet the tests create and delete.

The root namespace has an address on the bridge too, so the tests reach every host as a client on
the network would. A host is cut off by taking down its end of the veth pair on the bridge: its
own address stays up (its processes keep talking to themselves), the rest of the network is gone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path

PREFIX = "cauce-h-"  # every namespace these tests make, so a crashed run's leftovers are found
BRIDGE = "cauce-hbr0"
SUBNET = "10.231.0"
ROOT_ADDRESS = f"{SUBNET}.1"
HOSTS = {"store": 2, "w1": 3, "w2": 4, "front": 5}  # host -> last byte of its address


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `ip ARGS`; raise with its message when it fails and `check` is set."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


class Network:
    """The hosts' namespaces, their links and the bridge between them."""

    def address(self, host: str) -> str:
        """The host's address on the bridge."""
        return f"{SUBNET}.{HOSTS[host]}"

    def build(self) -> None:
        """Make the bridge, the root namespace's address on it and one namespace per host,
        after removing whatever a crashed earlier run left behind."""
        self.clear()
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{ROOT_ADDRESS}/24", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        for host in HOSTS:
            namespace = PREFIX + host
            ip("netns", "add", namespace)
            ip(
                "link",
                "add",
                _link(host),
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                namespace,
            )
            ip("link", "set", _link(host), "master", BRIDGE, "up")
            ip("-n", namespace, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            ip("-n", namespace, "link", "set", "eth0", "up")
            ip("-n", namespace, "link", "set", "lo", "up")
        _allow_bridged_traffic(True)

    def clear(self) -> None:
        """Stop every process in a namespace of ours and delete the namespaces and the bridge
        (deleting a namespace deletes its veth pair)."""
        for namespace in namespaces():
            for pid in ip("netns", "pids", namespace, check=False).stdout.split():
                _kill(int(pid))
            ip("netns", "del", namespace, check=False)
        if ip("link", "show", BRIDGE, check=False).returncode == 0:
            ip("link", "del", BRIDGE, check=False)
        _allow_bridged_traffic(False)

    def cut(self, host: str) -> None:
        """Take the host off the network (its cable pulled)."""
        ip("link", "set", _link(host), "down")

    def restore(self, host: str) -> None:
        """Put the host back on the network."""
        ip("link", "set", _link(host), "up")

    def pids(self, host: str) -> set[int]:
        """The processes running on the host now."""
        return {int(p) for p in ip("netns", "pids", PREFIX + host, check=False).stdout.split()}

    def start(
        self, host: str, argv: Sequence[str], *, env: Mapping[str, str], log: Path, cwd: Path
    ) -> subprocess.Popen[bytes]:
        """Start a process on the host (`ip netns exec` replaces itself with `argv`)."""
        with open(log, "ab") as out:
            return subprocess.Popen(
                ["ip", "netns", "exec", PREFIX + host, *argv],
                env=dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
            )


def namespaces() -> list[str]:
    """Our namespaces that exist now, from this run or an earlier one."""
    listed = ip("netns", "list", check=False).stdout.splitlines()
    return [line.split()[0] for line in listed if line.startswith(PREFIX)]


def _link(host: str) -> str:
    return f"ch-{host}"  # the bridge's end of the host's veth pair (at most 15 characters)


def _kill(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# Where br_netfilter is loaded (Docker loads it), bridged frames pass iptables' FORWARD chain,
# whose policy Docker sets to DROP: let the bridge's own traffic through while it exists.
_RULE = ["FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"]


def _allow_bridged_traffic(allow: bool) -> None:
    if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists() or not shutil.which(
        "iptables"
    ):
        return
    present = subprocess.run(["iptables", "-C", *_RULE], capture_output=True).returncode == 0
    if allow and not present:
        subprocess.run(["iptables", "-I", *_RULE], capture_output=True, check=False)
    elif not allow and present:
        subprocess.run(["iptables", "-D", *_RULE], capture_output=True, check=False)
