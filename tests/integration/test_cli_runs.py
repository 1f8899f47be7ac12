"""`cauce runs` as a user runs it (the installed command, over real S3): the newest runs only,
a page at a time, filtered by pipeline and state."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ulid import ULID

from shared.config import Settings
from shared.pipeline import STAGES
from shared.runs import create_run, write_status
from shared.stack.local import child_env
from shared.storage import Store

CAUCE = str(Path(sys.executable).parent / "cauce")


def seed(store: Store, count: int) -> list[tuple[str, str, str]]:
    """`count` runs a minute apart, oldest first: (run id, pipeline, state); every fourth fails."""
    start = datetime.now(UTC) - timedelta(days=1)
    runs = []
    for index in range(count):
        run_id = str(ULID.from_datetime(start + timedelta(minutes=index)))
        pipeline = "fraud" if index % 3 == 0 else "churn"
        failed = index % 4 == 0
        source = {"key": f"incoming/{pipeline}/data.csv", "etag": '"0"', "size": 1, "modified": ""}
        create_run(store, run_id=run_id, pipeline=pipeline, source=source, spec_text=None)
        began = (start + timedelta(minutes=index)).isoformat()
        for stage in STAGES[: 1 if failed else len(STAGES)]:
            state = "failed" if failed else "succeeded"
            fields = {"state": state, "started": began, "finished": began, "attempts": 1}
            write_status(store, run_id, stage, **fields, **({"error": "bad"} if failed else {}))
        runs.append((run_id, pipeline, "failed" if failed else "succeeded"))
    return runs


def cauce_runs(settings: Settings, *args: str) -> tuple[list[dict], str]:
    done = subprocess.run(
        [CAUCE, "runs", "--json", *args],
        env=child_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout), done.stderr


def test_the_newest_runs_a_page_at_a_time(settings: Settings, store: Store) -> None:
    runs = seed(store, 30)
    ids = [run_id for run_id, _, _ in runs]

    shown, hint = cauce_runs(settings, "--limit", "5")
    assert [r["run_id"] for r in shown] == ids[-5:]  # the newest five, oldest first
    assert f"cauce runs --before {ids[-5]}" in hint
    older, _ = cauce_runs(settings, "--limit", "5", "--before", ids[-5])
    assert [r["run_id"] for r in older] == ids[-10:-5]
    default, _ = cauce_runs(settings)
    assert [r["run_id"] for r in default] == ids[-20:]

    fraud, _ = cauce_runs(settings, "--pipeline", "fraud", "--limit", "50")
    assert [r["run_id"] for r in fraud] == [r for r, p, _ in runs if p == "fraud"]
    failed, _ = cauce_runs(settings, "--state", "failed", "--limit", "3")
    assert [r["run_id"] for r in failed] == [r for r, _, s in runs if s == "failed"][-3:]
    assert all(r["state"] == "failed" and r["error"] for r in failed)
