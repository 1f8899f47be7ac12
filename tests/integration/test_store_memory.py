"""The local stack's SeaweedFS gives back what a big transfer took (`cauce up` runs it with a Go
heap limit, shared/stack/local.py WEED_MEMORY_LIMIT): without it weed held about 450 MiB after
three 130 MiB objects, for as long as it idled."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from shared.config import Settings
from shared.stack.local import plan
from shared.stack.servers import free_port
from shared.storage import Store
from tests.conftest import stop, wait_until

MIB = 1024 * 1024


def pss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no Pss for {pid}")


def test_the_stacks_object_store_gives_back_a_big_transfers_memory(tmp_path: Path) -> None:
    port = free_port(also_free_at=10000)
    settings = Settings(
        home=tmp_path / "home",
        s3_endpoint_url=f"http://127.0.0.1:{port}",
        s3_access_key="memory-test",
        s3_secret_key="memory-test-secret",
        bucket="memory-test",
    )
    s3 = next(proc for proc in plan(settings, {}) if proc.name == "s3")
    env = {k: v for k, v in os.environ.items() if k != "GOMEMLIMIT"}
    log = tmp_path / "weed.log"
    with open(log, "wb") as out:
        weed = subprocess.Popen(
            s3.argv, env={**env, **s3.env}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        store = Store.from_settings(settings)
        wait_until(lambda: _ready(store), "SeaweedFS did not start", log, 60)
        data = os.urandom(MIB) * 130
        for index in range(3):
            store.put_bytes(f"big/{index}", data)
        assert store.get_bytes("big/0") == data
        time.sleep(5)
        held = pss(weed.pid)
        assert held < 300 * MIB, f"SeaweedFS holds {held / MIB:.0f} MiB after the transfers"
    finally:
        stop(weed)


def _ready(store: Store) -> bool:
    try:
        store.ensure_bucket()
        return True
    except Exception:
        return False
