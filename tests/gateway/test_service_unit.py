"""The systemd unit: notify + watchdog, unprivileged in dialout, hardening that keeps serial."""

import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "packaging" / "streetsense-gateway.service"


def unit() -> dict[str, dict[str, list[str]]]:
    """{section: {key: [values]}} of the unit file (keys may repeat)."""
    parsed: dict[str, dict[str, list[str]]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            parsed[section] = {}
        else:
            key, _, value = line.partition("=")
            parsed[section].setdefault(key, []).append(value)
    return parsed


def test_unit_runs_the_gateway_as_a_notify_service() -> None:
    """Type=notify with a watchdog, restart on failure, user streetsense in dialout."""
    service = unit()["Service"]
    assert service["Type"] == ["notify"] and service["WatchdogSec"] == ["30"]
    assert service["Restart"] == ["on-failure"]
    assert service["User"] == ["streetsense"] and service["SupplementaryGroups"] == ["dialout"]
    assert service["ExecStart"][0].endswith(
        "streetsense gateway run --config /etc/streetsense/gateway.toml"
    )
    assert service["StateDirectory"] == ["streetsense"]


def test_hardening_keeps_serial_ports_reachable() -> None:
    """/dev stays real (no PrivateDevices) and USB/ACM/Pi UART ttys are allowed."""
    service = unit()["Service"]
    assert "PrivateDevices" not in service
    assert service["DevicePolicy"] == ["closed"]
    assert {"char-ttyUSB rw", "char-ttyACM rw", "char-ttyAMA rw"} <= set(service["DeviceAllow"])
    assert service["ProtectSystem"] == ["strict"] and service["NoNewPrivileges"] == ["yes"]


def test_unit_is_valid_for_systemd(tmp_path: Path) -> None:
    """systemd-analyze verify accepts the unit (ExecStart pointed at an existing binary)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace("/opt/streetsense/venv/bin/streetsense", "/bin/true"))
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
