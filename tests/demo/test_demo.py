"""`streetsense demo` through the real CLI in a subprocess: emulated nodes of both kinds ->
the gateway process -> the embedded amqtt broker, or a real mosquitto given with --broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from streetsense.hil.broker import Mosquitto, free_port

pytestmark = pytest.mark.micropython
DEMO = [sys.executable, "-m", "streetsense.tools.cli", "demo"]
AIR_ROW = re.compile(r"^HN-\d{4}\s+air-quality\s+PM2\.5 [\d.]+ µg/m³, PM10 [\d.]+ µg/m³, "
                     r"CO2 \d+ ppm, [\d.]+ °C, [\d.]+ %RH\s.*~\d+ \w+", re.M)
TRAFFIC_ROW = re.compile(r"^HN-\d{4}\s+traffic\s+motorbikes \d+, cars \d+, heavy \d+ in 5 s", re.M)


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children, and theirs), from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        children = {child for child, parent in parents.items() if parent == current}
        todo.extend(children - found)
        found |= children
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _both_kinds(text: str) -> bool:
    """Both air-quality nodes and the traffic node have shown readings."""
    air = {row.split()[0] for row in AIR_ROW.findall(text)}
    return air == {"HN-0001", "HN-0002"} and bool(TRAFFIC_ROW.search(text))


async def _read_until_both_kinds(stream: asyncio.StreamReader, timeout: float) -> str:
    """Demo output up to the first table that shows readings of every node."""
    text = ""
    async with asyncio.timeout(timeout):
        while not _both_kinds(text):
            line = await stream.readline()
            assert line, f"demo output ended early:\n{text}"
            text += line.decode()
    return text


async def test_demo_shows_both_kinds_and_ends_cleanly_on_ctrl_c() -> None:
    """The table (piped: a snapshot per change) shows both kinds' readings within a minute;
    SIGINT (Ctrl-C) stops nodes, gateway and broker, leaves no process and exits 0."""
    proc = await asyncio.create_subprocess_exec(
        *DEMO, "--duration", "300", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    try:
        shown = await _read_until_both_kinds(proc.stdout, 60)
        children = _descendants(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        rest = (await asyncio.wait_for(proc.stdout.read(), 60)).decode()
        await asyncio.wait_for(proc.wait(), 30)
    assert "broker: amqtt in this process at mqtt://127.0.0.1:" in shown
    assert re.search(r"mosquitto_sub -h 127\.0\.0\.1( -p \d+)? -t 'streetsense/hanoi/#' -v", shown)
    assert proc.returncode == 0, rest
    assert len(children) >= 4  # the gateway and three MicroPython nodes
    assert not [pid for pid in children if _alive(pid)]
    assert re.search(r"demo ended: \d+ messages from 3 nodes", rest), rest
    assert "Traceback" not in shown + rest
    assert re.search(r"\] street time 0[78]:\d\d \(60x\)   broker connected", shown), shown
    assert "VN_AQI (Vietnam, Decision 1459/QĐ-TCMT): 0-50 Good" in rest  # the legend
    # Two streets, two airs: Tràng Tiền's trees against Giải Phóng's trucks at rush hour.
    pm = {node: float(value) for node, value in re.findall(
        r"^(HN-000[12])\s+air-quality\s+PM2\.5 ([\d.]+)", shown, re.M)}
    assert pm["HN-0002"] > 1.2 * pm["HN-0001"], shown


async def test_demo_json_on_a_given_broker(mosquitto: Mosquitto) -> None:
    """--broker: the same topics appear on that broker; --json prints exactly what it publishes
    (one object per line), and --duration ends the demo with status 0."""
    seen: list[tuple[str, Any]] = []
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
        await client.subscribe("streetsense/#", qos=1)
        proc = await asyncio.create_subprocess_exec(
            *DEMO, "--json", "--broker", mosquitto.url, "--duration", "25",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 90)
        assert proc.returncode == 0, err.decode()
        lines = [json.loads(line) for line in out.decode().splitlines()]
        data = {(m["topic"], m["payload"]["seq"]) for m in lines if m["topic"].endswith("/data")}
        async with asyncio.timeout(10):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                seen.append((message.topic.value, json.loads(message.payload)))
                if data <= {(t, p.get("seq")) for t, p in seen if t.endswith("/data")}:
                    break
    kinds = {m["payload"]["kind"] for m in lines if m["topic"].endswith("/data")}
    assert kinds == {"air-quality", "traffic"}
    air = next(m["payload"] for m in lines if m["topic"].endswith("/data")
               and m["payload"]["kind"] == "air-quality")
    assert air["readings"]["pm2_5"]["unit"] == "ug/m3" and air["site"] == "hanoi"
    assert f"broker: {mosquitto.url}" in err.decode()
    assert {"streetsense/hanoi/HN-0001/state", "streetsense/hanoi/_gateway/demo-gw/state"} <= {
        t for t, _ in seen}


def _seqs_by_node(lines: list[dict[str, Any]]) -> dict[tuple[str, int], set[int]]:
    """(node, boot) -> the seqs of its frames' messages (data, event, status, log)."""
    seqs: dict[tuple[str, int], set[int]] = {}
    for line in lines:
        if line["topic"].rsplit("/", 1)[-1] in ("data", "event", "status", "log"):
            payload = line["payload"]
            seqs.setdefault((payload["node"], payload["boot"]), set()).add(payload["seq"])
    return seqs


@pytest.fixture
def persistence_dir() -> Iterator[Path]:
    """A folder mosquitto can save its sessions in: started as root it runs as the user
    mosquitto, who may not enter pytest's private tmp_path."""
    folder = Path(tempfile.mkdtemp(prefix="ssdemo-mosquitto-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder)


async def test_demo_survives_its_brokers_restart_and_catches_up(persistence_dir: Path) -> None:
    """--broker: the broker restarts mid-demo (down 6 s; it keeps sessions, as mosquitto does
    with persistence). The demo keeps running and says so, the gateway catches up from its
    journal ("delayed" messages), and no frame's message is missing: every node's seqs are
    contiguous through the restart. Before, the demo exited 1 at the restart."""
    persistent = ["persistence true", f"persistence_location {persistence_dir}/"]
    with Mosquitto(extra_config=persistent) as broker:
        proc = await asyncio.create_subprocess_exec(
            *DEMO, "--json", "--broker", broker.url, "--duration", "30", "--air-quality", "1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        lines: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(60):
                while not any(m["topic"].endswith("/data") for m in lines):
                    raw = await proc.stdout.readline()
                    assert raw, (await proc.stderr.read()).decode()
                    lines.append(json.loads(raw))
            await asyncio.to_thread(broker.stop)
            await asyncio.sleep(6)  # the outage itself: the gateway journals meanwhile
            await asyncio.to_thread(broker.start)
            out, err = await asyncio.wait_for(proc.communicate(), 90)
        finally:
            if proc.returncode is None:
                proc.kill()
        assert "Saving in-memory database" in broker.log(), broker.log()
        assert "Error saving" not in broker.log(), broker.log()
    assert proc.returncode == 0, err.decode()
    lines += [json.loads(line) for line in out.decode().splitlines()]
    assert "broker connection lost" in err.decode() and "broker connection back" in err.decode()
    data = [(m["payload"]["node"], m["payload"]["seq"], m["payload"]["delayed"],
             m["payload"]["received_at"]) for m in lines if m["topic"].endswith("/data")]
    assert any(delayed for *_, delayed, _ in data), (data, err.decode())
    for (node, boot), seqs in _seqs_by_node(lines).items():
        assert seqs == set(range(min(seqs), max(seqs) + 1)), (node, boot, sorted(seqs))


def test_demo_chaos_loses_nothing() -> None:
    """--chaos (short form): broker restarts and gateway SIGKILLs at seeded moments; every
    frame the nodes sent is published at the end, duplicates only across a fault."""
    run = subprocess.run([*DEMO, "--chaos", "--duration", "60", "--air-quality", "1"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    result = re.search(r"chaos result: frames sent by the nodes (\d+)  published (\d+)  "
                       r"missing 0  duplicates (\d+)  \| broker restarts (\d+), "
                       r"gateway kills (\d+): nothing lost", run.stdout)
    assert result is not None, run.stdout[-3000:]
    sent, published, _, restarts, kills = map(int, result.groups())
    assert sent == published and sent >= 20
    assert restarts >= 1 and kills >= 1
    assert "chaos: gateway SIGKILL" in run.stdout and "Traceback" not in run.stdout + run.stderr


def test_demo_chaos_needs_the_embedded_broker() -> None:
    """--chaos restarts the broker: with --broker it is a usage error saying so."""
    run = subprocess.run([*DEMO, "--chaos", "--broker", "mqtt://127.0.0.1:1"],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "leave out --broker" in run.stderr


def test_demo_unreachable_broker_is_a_plain_error() -> None:
    """A broker nobody listens on: exit 1 and a one-line reason, no traceback."""
    run = subprocess.run([*DEMO, "--broker", f"mqtt://127.0.0.1:{free_port()}",
                          "--duration", "5"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.startswith("Error: MQTT broker:") and "Traceback" not in run.stderr


@pytest.mark.parametrize("url", ["http://example.org", "mqtt://host:99999", "mqtt://host:x"])
def test_demo_bad_broker_url_is_a_usage_error(url: str) -> None:
    run = subprocess.run([*DEMO, "--broker", url], capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "expected mqtt://host[:port]" in run.stderr
