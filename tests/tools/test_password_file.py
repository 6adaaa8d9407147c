"""--password-file of `command`, `bridge` and `store`: an empty file is a usage error naming
it (an IndexError traceback before), found before any broker is contacted."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from streetsense.gateway.command_auth import make_operator_key
from streetsense.tools.bridge import bridge
from streetsense.tools.command import command
from streetsense.tools.store import store

BROKER = "mqtt://127.0.0.1:9"  # never reached: the file is read first


@pytest.mark.parametrize("tool", ["command", "bridge", "store"])
def test_an_empty_password_file_is_a_usage_error_naming_it(tool: str, tmp_path: Path) -> None:
    password_file = tmp_path / "broker-password"
    password_file.write_text("")
    key_file = tmp_path / "operator.key"
    make_operator_key(key_file)
    auth = ["--broker", BROKER, "--site", "hanoi", "--key-file", str(key_file),
            "--password-file", str(password_file), "--timeout", "1"]
    invocations = {
        "command": (command, ["HN-0042", "identify", *auth]),
        "bridge": (bridge, ["log_level", "level=INFO", "--gateway", "gw-01", *auth]),
        "store": (store, ["--broker", BROKER, "--db", f"sqlite:///{tmp_path / 'city.db'}",
                          "--password-file", str(password_file)]),
    }
    main, args = invocations[tool]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{password_file} is empty: its first line must be the broker password" \
        in result.output
