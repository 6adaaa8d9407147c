"""The gateway's status page in a real browser: nodes, readings, VN_AQI, traffic flow, journal
and broker, updated live without a reload; everything it shows is shown as text."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from playwright.async_api import expect

from streetsense.gateway.config import HttpSection
from streetsense.gateway.journal import Row
from streetsense.gateway.registry import Registry
from streetsense.gateway.service import Gateway
from streetsense.hil.broker import Mosquitto
from streetsense.hil.pty import PtyPort
from streetsense.protocol.messages import DATA
from tests.gateway.browser import browser_page
from tests.support.fake_node import PtyNode
from tests.support.gateway_rig import links_up, make_config, node_info

HOUR_S = 3600


def air(node: PtyNode, ts: int, pm2_5_tenths: int) -> tuple[bytes, int]:
    """A DATA frame: the PM2.5 mean of the half hour ending at ``ts`` (UTC clock)."""
    return node.frame(DATA, {1: ts, 2: 0, 3: 1800,
                             4: [[2, -1, pm2_5_tenths, pm2_5_tenths - 5, pm2_5_tenths + 5, 6]]})


def counts(node: PtyNode, ts: int) -> tuple[bytes, int]:
    """A traffic DATA frame: lane 0 counted 41 motorbikes, 5 cars, 1 heavy vehicle in 60 s."""
    return node.frame(DATA, {1: ts, 2: 0, 3: 60, 4: [[16, 0, 41], [17, 0, 5], [18, 0, 1]]})


async def test_status_page_shows_nodes_readings_aqi_and_flow_live(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """The page lists every registry node (kind, link, state, last seen); as frames arrive,
    without a reload, it shows the readings with units, the hourly VN_AQI with its category
    and colour (PM2.5 57 µg/m³: 112, Poor, orange), the traffic flow (2,820 veh/h, 1,188
    PCU/h), the journal and the broker state."""
    port, port1 = PtyPort(tmp_path / "tty0"), PtyPort(tmp_path / "tty1")
    air_node, traffic_node = PtyNode(port, 42), PtyNode(port1, 43)
    config = replace(make_config(tmp_path, mosquitto.url, [port.path, port1.path],
                                 [node_info(42), node_info(43, kind="traffic")]),
                     http=HttpSection(listen="127.0.0.1:0"))
    try:
        async with Gateway(config).running() as gateway, \
                browser_page(tmp_path / "profile") as page:
            assert gateway.http_server is not None and gateway.publisher is not None
            await links_up(gateway, port, port1)
            air_node.attach()
            traffic_node.attach()
            await gateway.publisher.connected.wait()
            await page.goto(gateway.http_server.url)
            row42, row43 = page.locator('tr[data-node="HN-0042"]'), page.locator(
                'tr[data-node="HN-0043"]')
            await expect(row42).to_contain_text("no data yet")
            await expect(row42).to_contain_text("never")
            await expect(page.locator("#broker")).to_contain_text("connected")
            start = (int(time.time()) // HOUR_S - 4) * HOUR_S
            for half_hour in range(1, 8):
                await air_node.send(air(air_node, start + 1800 * half_hour, 570))
            await traffic_node.send(counts(traffic_node, int(time.time())))
            await expect(row42.locator("td").nth(6)).to_contain_text("pm2_5 57 ug/m3")
            aqi = row42.locator("td.aqi")
            await expect(aqi).to_contain_text("112 Poor")
            colour = await aqi.evaluate("cell => getComputedStyle(cell).backgroundColor")
            await expect(row43).to_contain_text("2820 veh/h · 1188 PCU/h · 1 lanes")
            await expect(row42.locator("td").nth(3)).to_have_text("online")
            await expect(row42.locator("td").nth(2)).to_have_text("tty0")
            await expect(row43.locator("td").nth(1)).to_have_text("traffic")
            await expect(page.locator("#journal")).to_contain_text("undelivered")
            await expect(page.locator("#verdict")).to_have_text("healthy")
    finally:
        for node in (air_node, traffic_node):
            node.detach()
            node.port.close()
    assert colour == "rgb(255, 126, 0)"


async def test_status_page_escapes_hostile_names_locations_and_readings(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A node name and location full of markup (from a registry the file checks would
    refuse) and readings with markup in their names, values and units are shown as text:
    no element is made of them and no script of theirs runs; the page forbids inline
    script (Content-Security-Policy)."""
    hostile = '<img src=x onerror="window.__pwned=1">'
    info = replace(node_info(42), name=hostile, location="<script>window.__pwned=2</script>")
    config = replace(make_config(tmp_path, mosquitto.url, [], [node_info(42)]),
                     http=HttpSection(listen="127.0.0.1:0"))
    registry = Registry(config.registry_path, (info,))
    reading = {"readings": {"<b>pm</b>": {"value": "<img src=y onerror=window.__pwned=3>",
                                          "unit": "<i>ug</i>"}}}
    async with Gateway(config, registry=registry).running() as gateway, \
            browser_page(tmp_path / "profile") as page:
        assert gateway.http_server is not None
        gateway.status.on_rows([Row(1, 42, gateway.topics.node(hostile, "data"),
                                    json.dumps(reading).encode(), False, None, True, 0.0)])
        response = await page.goto(gateway.http_server.url)
        assert response is not None
        assert "script-src 'self'" in response.headers["content-security-policy"]
        row = page.locator("#nodes tbody tr")
        await expect(row.locator("td").first).to_have_text(hostile)
        await expect(row.locator(".reading")).to_have_text(
            "<b>pm</b> <img src=y onerror=window.__pwned=3> <i>ug</i>")
        assert await row.locator("td").first.get_attribute("title") == info.location
        assert await page.locator("#nodes img, #nodes b, #nodes i, #nodes script").count() == 0
        assert await page.evaluate("window.__pwned") is None
