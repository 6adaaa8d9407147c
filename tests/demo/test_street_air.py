"""Each street of the demo has its own air: the city's background plus its own traffic."""

from __future__ import annotations

from streetsense.hil.scene import StreetScene
from streetsense.tools.demo import STREETS


def test_busier_street_has_more_traffic_pollution_at_rush_hour_and_similar_nights() -> None:
    """A tree-lined street and an arterial road: the arterial has clearly more PM2.5 and CO2
    at rush hour and a coarser PM (road dust), while at night the shared background makes
    them close."""
    quiet = StreetScene(1, traffic_exposure=0.6)
    busy = StreetScene(2, traffic_exposure=1.7)
    rush_q, rush_b = quiet.conditions(7.5), busy.conditions(7.5)
    assert rush_b.pm2_5 > 1.3 * rush_q.pm2_5 and rush_b.co2 > rush_q.co2 + 30
    assert rush_b.pm10 / rush_b.pm2_5 > rush_q.pm10 / rush_q.pm2_5
    night_q, night_b = quiet.conditions(3.0), busy.conditions(3.0)
    assert abs(night_b.pm2_5 - night_q.pm2_5) < 0.2 * night_q.pm2_5
    assert rush_q.temperature == quiet.conditions(7.5).temperature  # seeded, repeatable


def test_unseeded_streets_differ_and_the_demo_streets_are_far_apart() -> None:
    """Without an exposure each seed draws its own street; the demo's first two air-quality
    nodes stand on streets of very different traffic."""
    assert len({round(StreetScene(seed).traffic_exposure, 3) for seed in range(6)}) == 6
    (_, first), (_, second) = STREETS[:2]
    assert max(first, second) > 2 * min(first, second)
