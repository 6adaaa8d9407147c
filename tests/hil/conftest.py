"""The HIL suite runs with the ``streetsense_hil`` plugin (the ``pytest11`` entry point).

Until an install has that entry point, register the plugin here; its options then come
from the environment (``STREETSENSE_HIL_*``) or ``-p streetsense.hil.plugin`` on the command line.
"""

import pytest

from streetsense.hil import plugin


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("streetsense_hil") and \
            not config.pluginmanager.is_registered(plugin):
        config.pluginmanager.register(plugin, "streetsense_hil")
