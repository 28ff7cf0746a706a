"""`buf breaking` for `make lint`: the working tree's protos against the last commit on main.

On a branch the baseline is the last commit of main that the branch contains (its merge
base with main: everything the branch changes is compared, and main moving on is not
mistaken for a deletion); on main it is the commit before HEAD (what the last commit
changed). The baseline is read with `git archive`, so it works
offline, in git worktrees and in fresh clones alike; a shallow clone without the baseline
commit is reported and skipped rather than failed. Rules: buf.yaml (`breaking: FILE`), so
new fields, messages and RPCs pass and renumbered, retyped or removed ones fail.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def baseline() -> str | None:
    """The commit to compare against, or None when there is none to be had."""
    head = _git("rev-parse", "--verify", "-q", "HEAD")
    main = _git("rev-parse", "--verify", "-q", "main") or _git(
        "rev-parse", "--verify", "-q", "origin/main"
    )
    if main and main != head:
        # the last main commit this branch has: main moving on is not this branch's change
        return _git("merge-base", "HEAD", main)
    return _git("rev-parse", "--verify", "-q", "HEAD~1")


def main(argv: list[str]) -> int:
    buf = argv[1] if len(argv) > 1 else "buf"
    ref = baseline()
    if ref is None:
        print("buf breaking: no baseline commit (shallow clone or first commit); skipped")
        return 0
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tempfile.TemporaryDirectory() as folder:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
        if not (Path(folder) / "buf.yaml").is_file():
            print(f"buf breaking: {ref[:12]} has no buf.yaml; skipped")
            return 0
        print(f"buf breaking against {ref[:12]}")
        return subprocess.run([buf, "breaking", "--against", folder], cwd=ROOT).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
