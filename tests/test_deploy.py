"""The Dockerfile and fly.toml agree with each other and with the service (no Docker engine
runs here: the image itself is built by whoever deploys; see the README)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from bridge.config import Defaults

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
FLY = tomllib.loads((ROOT / "fly.toml").read_text())
CI = (ROOT / ".ci" / "run").read_text()


def dockerfile_env() -> dict[str, str]:
    block = re.search(r"^ENV (.*?)(?=^\S)", DOCKERFILE, re.MULTILINE | re.DOTALL)
    assert block is not None
    pairs = re.findall(r"(\w+)=(\S+)", block.group(1))
    return dict(pairs)


def test_the_image_runs_as_a_user_and_checks_readyz():
    users = re.findall(r"^USER (\S+)", DOCKERFILE, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert "/readyz" in DOCKERFILE.split("HEALTHCHECK", 1)[1]
    assert DOCKERFILE.rstrip().endswith('CMD ["ticketbridge", "serve"]')
    env = dockerfile_env()
    assert env["BRIDGE_HOST"] == "0.0.0.0"
    assert env["BRIDGE_DATABASE_URL"] == "sqlite:////data/bridge.db"


def test_fly_checks_readyz_on_the_port_the_image_listens_on():
    service = FLY["http_service"]
    assert str(service["internal_port"]) == dockerfile_env()["PORT"] == FLY["env"]["PORT"]
    (check,) = service["checks"]
    assert check["path"] == "/readyz"


def test_fly_keeps_sqlite_on_the_volume_and_waits_for_the_shutdown_grace():
    (mount,) = FLY["mounts"]
    assert FLY["env"]["BRIDGE_DATABASE_URL"] == f"sqlite:///{mount['destination']}/bridge.db"
    assert FLY["processes"] == {"app": "ticketbridge serve"}
    assert FLY["kill_signal"] == "SIGTERM"
    assert FLY["kill_timeout"] > Defaults().shutdown_grace
    assert FLY["http_service"]["auto_stop_machines"] == "off"  # the worker lives in it


def pip_commands(text: str, verb: str) -> list[list[str]]:
    """Each `pip VERB ...` command in a Dockerfile or shell script, as words without the
    options that only change what pip prints or caches (-q, --no-cache-dir)."""
    joined = text.replace("\\\n", " ")
    found = re.findall(rf"pip {verb} ([^\n&;)]*)", joined)
    return [[w for w in words.split() if w not in ("-q", "--no-cache-dir")] for words in found]


def test_the_image_installs_the_wheel_as_ci_s_wheel_stage_does():
    """CI cannot build the image; what it tests is the wheel, built and installed the same way."""
    (docker_build,) = pip_commands(DOCKERFILE, "wheel")
    (ci_build,) = pip_commands(CI, "wheel")
    assert docker_build == ["--no-deps", "--wheel-dir", "/dist", "."]
    assert ci_build == ["--no-deps", "--wheel-dir", '"$stage/dist"', "."]
    (docker_install,) = pip_commands(DOCKERFILE, "install")
    assert docker_install == ["/dist/ticketbridge-*.whl"]
    assert 'wheel=$(ls "$stage"/dist/ticketbridge-*.whl)' in CI
    assert '"$stage/venv/bin/pip" install "$wheel[test]"' in CI.replace(" -q", "")
    # the image's configuration is the example the wheel ships, written by `init`
    assert "ticketbridge init /app" in DOCKERFILE
    assert "COPY rules" not in DOCKERFILE and "COPY templates" not in DOCKERFILE
