"""The wheel holds every file of the package: what `serve` reads at run time (the SQL, the
migrations, the schema, the admin pages, the example `init` writes) is what users install."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def package_files() -> set[str]:
    """The files of bridge/ as git tracks them (a tree with no git: every file but caches)."""
    if shutil.which("git") and (ROOT / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "-z", "bridge"], cwd=ROOT, capture_output=True, check=True
        )
        return {name for name in listed.stdout.decode().split("\0") if name}
    return {
        str(path.relative_to(ROOT))
        for path in (ROOT / "bridge").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The names in the wheel that `pip wheel` builds from this tree, as .ci/run builds it:
    from a copy, since a build in the tree reuses build/, whose stale files would hide a gap."""
    tree = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(ROOT / "bridge", tree / "bridge", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(out), "."],
        cwd=tree,
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("ticketbridge-*.whl")
    return set(zipfile.ZipFile(built).namelist())


def test_the_wheel_holds_every_file_of_the_package(wheel):
    missing = sorted(package_files() - wheel)
    assert not missing, f"the wheel lacks files of bridge/ that users would not get: {missing}"


def test_the_wheel_holds_no_caches_and_nothing_outside_the_package(wheel):
    assert not [name for name in wheel if "__pycache__" in name or name.endswith(".pyc")]
    tops = {name.split("/")[0] for name in wheel}
    assert "bridge" in tops
    assert all(
        top == "bridge" or re.fullmatch(r"ticketbridge-[\w.]+\.dist-info", top) for top in tops
    )


def test_the_example_init_writes_is_the_one_the_repository_shows():
    """`rules/` and `templates/` at the top of the repository (DESIGN §1) are the example in
    the package, not a copy that could drift from it."""
    for name in ("rules", "templates"):
        assert (ROOT / name).resolve() == (ROOT / "bridge" / "example" / name).resolve()
