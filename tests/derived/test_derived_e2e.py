"""End to end through real parts: PTY node -> gateway (default derivers) -> mosquitto ->
subscriber, for the ``aqi`` and ``traffic`` topics and the corrected PM in ``data``."""

from __future__ import annotations

from pathlib import Path

from streetsense.gateway.service import Gateway
from streetsense.hil.broker import Mosquitto
from streetsense.hil.observer import MqttObserver
from streetsense.hil.pty import PtyPort
from streetsense.protocol.messages import DATA
from tests.derived.derived_support import T0
from tests.support.fake_node import PtyNode
from tests.support.gateway_rig import make_config, node_info, topic

PM2_5, PM10, MOTORBIKES, CARS, HEAVY, SPEED, OCCUPANCY = 2, 3, 16, 17, 18, 19, 20
HUMIDITY, PM2_5_CF1 = 6, 9


def pm_body(end_ts: int, pm2_5_tenths: int, pm10: int) -> dict[int, object]:
    """DATA over 5 minutes: PM2.5 in 0.1 µg/m³, PM10 in µg/m³, as interval statistics."""
    return {1: end_ts, 2: 0, 3: 300, 4: [[PM2_5, -1, pm2_5_tenths, pm2_5_tenths,
                                          pm2_5_tenths, 60],
                                         [PM10, 0, pm10, pm10, pm10, 60]]}


def pms_body(end_ts: int) -> dict[int, object]:
    """DATA of a PMS5003 node over 5 minutes: atmospheric PM2.5 70, CF=1 100, PM10 90, RH 60 %."""
    return {1: end_ts, 2: 0, 3: 300, 4: [[PM2_5, -1, 700, 700, 700, 60],
                                         [PM2_5_CF1, -1, 1000, 1000, 1000, 60],
                                         [PM10, 0, 90, 90, 90, 60],
                                         [HUMIDITY, -2, 6000, 6000, 6000, 60]]}


async def test_hourly_aqi_and_traffic_reach_mqtt(tmp_path: Path) -> None:
    """Three hours of PM2.5 31.2 / PM10 60 give VN_AQI 62 and EPA 92 from the raw values (the
    node sends no CF=1 PM2.5 to correct); a PMS5003 node's data carries its PM2.5 corrected
    (epa-2021) and its index is of the corrected values; a traffic minute gives its flows and
    PCU (hand-computed in the unit tests)."""
    aq_port, tr_port = PtyPort(tmp_path / "ttyAQ"), PtyPort(tmp_path / "ttyTR")
    pms_port = PtyPort(tmp_path / "ttyPMS")
    aq, tr, pms = PtyNode(aq_port, 42), PtyNode(tr_port, 43), PtyNode(pms_port, 44)
    with Mosquitto() as broker:
        config = make_config(tmp_path, broker.url, [aq_port.path, tr_port.path, pms_port.path],
                             [node_info(42), node_info(43, kind="traffic"), node_info(44)])
        async with MqttObserver(broker.url, topics=["streetsense/#"]) as observer, \
                Gateway(config).running():
            aq.attach()
            tr.attach()
            pms.attach()
            await aq.send(aq.hello())
            await pms.send(pms.hello())
            for i in range(1, 3 * 12 + 2):  # three hours and the reading that closes the third
                await aq.send(aq.frame(DATA, pm_body(T0 + 300 * i, 312, 60)))
                await pms.send(pms.frame(DATA, pms_body(T0 + 300 * i)))
            aqi = [m.json() for m in await observer.collect(topic("HN-0042", "aqi"), 3)]
            pms_aqi = [m.json() for m in await observer.collect(topic("HN-0044", "aqi"), 3)]
            pms_data = (await observer.expect(topic("HN-0044", "data"))).json()
            aq_data = (await observer.expect(topic("HN-0042", "data"))).json()
            await tr.send(tr.hello())
            lane1 = 1 << 8
            await tr.send(tr.frame(DATA, {1: T0 + 60, 2: 0, 3: 60, 4: [
                [MOTORBIKES, 0, 41], [CARS, 0, 5], [HEAVY, 0, 1], [SPEED, -1, 285],
                [OCCUPANCY, -1, 123], [MOTORBIKES | lane1, 0, 30], [CARS | lane1, 0, 2],
                [HEAVY | lane1, 0, 0]]}))
            traffic = (await observer.expect(topic("HN-0043", "traffic"))).json()
    aq_port.close()
    tr_port.close()
    pms_port.close()

    assert [m["hour"] for m in aqi] == [
        "2026-12-04T00:00:00Z", "2026-12-04T01:00:00Z", "2026-12-04T02:00:00Z"]
    assert aqi[0]["vn_aqi"]["insufficient"]  # one hour: no NowCast yet
    last = aqi[2]
    assert (last["vn_aqi"]["value"], last["vn_aqi"]["name"], last["vn_aqi"]["hours_used"]) == (
        62, "Trung bình", 3)
    assert (last["epa_aqi"]["value"], last["epa_aqi"]["dominant"]) == (92, "pm2_5")
    assert last["pollutants"]["pm10"]["hourly_mean"] == 60.0
    assert last["basis"]["pm2_5"] == "raw" and last["indicative"] is True
    assert aq_data["pm_correction"]["missing"] == ["pm2_5_cf1", "humidity"]
    # 0.524 x 100 - 0.0862 x 60 + 5.75 = 52.98; VN_AQI 50/30 x 3 + 100 = 105.
    assert pms_data["readings"]["pm2_5"]["value"] == 70.0
    assert pms_data["pm_correction"] == {"method": "epa-2021", "rh_above_95": False,
                                         "pm2_5": {"value": 53.0, "unit": "ug/m3"}}
    assert pms_aqi[2]["basis"] == {"pm2_5": "epa-2021", "pm10": "raw"}
    assert pms_aqi[2]["vn_aqi"]["sub_indices"]["pm2_5"] == 105
    assert traffic["total"] == {"vehicles_per_hour": 4740, "pcu_per_hour": 1848.0}
    assert [lane["pcu_per_hour"] for lane in traffic["lanes"]] == [1188.0, 660.0]
    assert traffic["lanes"][0]["speed_mean_kmh"] == 28.5
