"""`make demo`: start the stack, submit the bundled churn data, follow the run, ask for predictions.

The stack keeps running afterwards so you can try the CLI and the HTTP API; `make down` stops it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import requests

from shared.config import load_settings

HERE = Path(__file__).parent
CAUCE = str(Path(sys.executable).parent / "cauce")
ROWS = [
    {
        "tenure_months": 2,
        "monthly_charges": 95.5,
        "total_charges": 190.0,
        "contract": "month-to-month",
        "internet": "fiber",
        "payment_method": "check",
        "support_calls": 4,
        "senior": True,
    },
    {
        "tenure_months": 60,
        "monthly_charges": 45.0,
        "total_charges": 2700.0,
        "contract": "two-year",
        "internet": "dsl",
        "payment_method": "bank",
        "support_calls": 0,
        "senior": False,
    },
]


def step(title: str) -> None:
    """Print a step heading."""
    print(f"\n==> {title}", flush=True)


def cauce(*args: str) -> None:
    """Run the cauce CLI, stopping the demo if it fails."""
    print(f"$ cauce {' '.join(args)}", flush=True)
    if subprocess.run([CAUCE, *args]).returncode != 0:
        sys.exit(f"demo stopped: `cauce {' '.join(args)}` failed")


def wait_served(url: str, version: int, timeout: float = 30) -> float:
    """Seconds until the prediction service answers with `version` of the churn model."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        response = requests.get(f"{url}/v2/models/churn", timeout=5)
        if response.ok and str(version) in map(str, response.json().get("versions", [])):
            return time.monotonic() - start
        time.sleep(0.2)
    sys.exit(f"demo stopped: churn v{version} was not served within {timeout}s")


def main() -> None:
    """Run the demo end to end."""
    step(
        "Start the local stack: broker, S3 store, watcher, one worker for each of the five "
        "stages, a batch worker, the prediction service and the console (11 processes)"
    )
    cauce("up")
    settings = load_settings()

    step("Drop the bundled churn data (2,000 rows) into the bucket and follow the run")
    dropped = time.monotonic()
    cauce("submit", str(HERE / "churn.csv"), "--pipeline", "churn", "--target", "churned", "--wait")
    runs = json.loads(
        subprocess.run(
            [CAUCE, "runs", "--pipeline", "churn", "--json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    run = runs[-1]
    version = run["model_version"]

    step(f"Wait until the prediction service serves churn v{version}")
    served = wait_served(settings.serve_url, version)
    print(
        f"served {served:.1f}s after the run ended; "
        f"{time.monotonic() - dropped:.1f}s from drop to served model"
    )

    step("Ask for predictions (MLflow scoring format)")
    body = {"dataframe_records": ROWS}
    print(
        f"$ curl -s {settings.serve_url}/invocations/churn -H 'Content-Type: application/json'"
        f" -d '{json.dumps(body)}'"
    )
    answer = requests.post(f"{settings.serve_url}/invocations/churn", json=body, timeout=10)
    print(json.dumps(answer.json(), indent=2))
    if not answer.ok:
        sys.exit("demo stopped: the prediction service refused the request")

    step("Done. The stack is still running:")
    print("\n".join(closing_lines(settings.home)))


def closing_lines(home: Path) -> list[str]:
    """What to try next: how to reach `cauce` (it is in the venv, not on PATH) and where data is."""
    venv = Path(CAUCE).parent
    return [
        f"  `cauce` is in the virtualenv: run {CAUCE}, or first: source {venv}/activate",
        "  cauce runs | cauce run RUN_ID | cauce models | cauce status",
        f"  make down    # stop it (data stays in {home.resolve()}; CAUCE_HOME={home.resolve()})",
    ]


if __name__ == "__main__":
    main()
