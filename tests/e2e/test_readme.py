"""The README's command examples, run as written against a running stack: every CLI synopsis
(placeholders filled in with the bundled churn data) and every curl example of the prediction
service, from the repository's root as a reader would."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

from tests.e2e.conftest import CAUCE, Stack

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
PLACEHOLDERS = {
    "NAME": "churn",
    "PIPELINE": "churn",
    "COL": "churned",
    "STATE": "succeeded",
    "JSON|FILE": "examples/rows.csv",
}


def section(title: str) -> str:
    """The README's text from the heading `## title` to the next `## ` heading."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def commands(text: str, program: str) -> list[str]:
    """The commands of `program` in the text's code blocks, each with its continuation lines
    (a quoted JSON body spans several), comments and all."""
    found = []
    for block in re.findall(r"^```\n(.*?)^```", text, flags=re.S | re.M):
        current: list[str] = []
        for line in block.splitlines():
            if current and (line.startswith(" ") or not _complete("\n".join(current))):
                current.append(line)
                continue
            if current:
                found.append("\n".join(current))
            current = [line] if line.startswith(f"{program} ") else []
        if current:
            found.append("\n".join(current))
    return found


def _complete(command: str) -> bool:
    """Whether every quote of the command (its comments aside) is closed."""
    try:
        shlex.split(command, comments=True)
    except ValueError:
        return False
    return True


def filled(synopsis: str, *, file: str, run_id: str) -> list[str]:
    """A synopsis line as argv: optional [groups] dropped, placeholders given real values."""
    words = shlex.split(re.sub(r"\[[^\]]*\]", "", synopsis), comments=True)
    values = {**PLACEHOLDERS, "FILE": file, "RUN_ID": run_id}
    return [values.get(word, word) for word in words]


def cauce(stack: Stack, argv: list[str]) -> subprocess.CompletedProcess[str]:
    assert argv[0] == "cauce", argv
    done = subprocess.run(
        [CAUCE, *argv[1:]], env=stack.env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{shlex.join(argv)}:\n{done.stdout}\n{done.stderr}"
    return done


def test_every_cli_and_curl_example_runs_as_written(stack: Stack, tmp_path: Path) -> None:
    spec = tmp_path / "churn.yaml"
    spec.write_text("target: churned  # kept as written\ntuning:\n  trials: 2\n")
    for line in commands(section("Pipeline spec"), "cauce"):
        argv = [str(spec) if w == "churn.yaml" else w for w in filled(line, file="", run_id="")]
        shown = cauce(stack, argv).stdout
    assert "# kept as written" in shown  # `cauce spec show churn` came last

    synopses = commands(section("The CLI"), "cauce")
    assert [s.split()[1] for s in synopses] == [
        "submit",
        "runs",
        "run",
        "models",
        "predict",
        "batch",
        "plugins",
    ]
    submit = cauce(stack, [*filled(synopses[0], file="examples/churn.csv", run_id=""), "--wait"])
    run_id = json.loads(cauce(stack, ["cauce", "runs", "-p", "churn", "--json"]).stdout)[-1][
        "run_id"
    ]
    assert run_id in submit.stdout + submit.stderr
    for synopsis in synopses[1:]:
        file = "examples/rows.csv"
        done = cauce(stack, filled(synopsis, file=file, run_id=run_id))
        assert (done.stdout + done.stderr).strip(), synopsis

    host = stack.settings.serve_url.removeprefix("http://")
    examples = commands(section("The prediction service"), "curl")
    assert len(examples) >= 11, examples
    for example in examples:
        argv = [w.replace("localhost:8080", host) for w in shlex.split(example, comments=True)]
        done = subprocess.run(
            [*argv, "-w", "\n%{http_code}"], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        body, _, status = done.stdout.rpartition("\n")
        assert done.returncode == 0 and status == "200", f"{example}\n-> {status} {body}"
        if not argv[-1].endswith("/metrics"):
            answer = json.loads(body)
            assert "error" not in answer, f"{example}\n-> {answer}"
