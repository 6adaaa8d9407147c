"""The StreetSense HIL pytest plugin: fixtures that read like the bench (labgrid's layout).

Registered as the ``pytest11`` entry point ``streetsense_hil``; pytest finds the hooks and
fixtures of its three modules here:

* `options` — the "hil" option group (each with an environment fallback), `HilOptions`,
  scenario `Durations` and ``short_and_soak``;
* `hooks` — markers declared, HIL tests marked, ``needs_*`` markers enforced (a test that
  uses a capability fixture must carry its marker; one needing what the rig lacks is skipped
  with the reason, before anything starts), soak variants deselected, artefacts of failures;
* `fixtures` — ``broker`` (+ ``mqtt_proxy``), ``board``, ``environment``, ``power``,
  ``console``, ``link``, ``injector``, ``gateway``, ``observer``, ``strategy``, ``durations``,
  ``artefacts``.
"""

from ..keys import node_key
from .fixtures import *  # noqa: F403 (pytest collects the fixtures from this module)
from .fixtures import FAST_AIR_SETTINGS, FAST_SETTINGS
from .hooks import *  # noqa: F403 (and the hooks)
from .options import Durations, HilOptions, short_and_soak

__all__ = ["FAST_AIR_SETTINGS", "FAST_SETTINGS", "Durations", "HilOptions", "node_key",
           "short_and_soak"]
