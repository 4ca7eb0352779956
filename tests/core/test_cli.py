"""``llm-router check``: config mistakes reported with the file's key path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]


def check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "router_core.cli", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_repo_config_checks_ok():
    result = check(REPO / "plugins.toml")
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    assert "providers:" in result.stdout


@pytest.mark.parametrize(
    "toml, expected",
    [
        ('[providers.x]\nkind = "nope"\n', "providers.x.kind: unknown kind 'nope'"),
        ('[providers.x]\nkind = "openai"\nzdr = "yes"\n', "providers.x.zdr: expected a boolean"),
        ("[server]\nport = 70000\n", "server.port: 'port' must be <= 65535"),
        ("[server]\nprot = 1\n", "server: extra fields found (prot)"),
        ('[plugins]\nenabled = ["ghost"]\n', "plugins.enabled: no plugin named 'ghost'"),
        ("[server\n", "plugins.toml"),
        (
            '[providers.x]\nkind = "openai"\nheaders = { "X-Org" = "a\\nInjected: 1" }\n',
            "providers.x: header 'X-Org' has a line break in its value",
        ),
    ],
)
def test_config_mistakes_name_the_key(tmp_path, toml, expected):
    path = tmp_path / "plugins.toml"
    path.write_text(toml)
    result = check(path)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
