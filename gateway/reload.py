"""SIGHUP: what a changed config can change in a running gateway, and what needs a restart.

``reload_config(gateway, path)`` reads the config again. If it has problems, nothing changes
and the log says which (the running config stays). Otherwise the live sections
(``LIVE_SECTIONS``: log level, availability, health interval, command limits and operator
key) are applied, the registry is read again now, and every other section that changed is
named in the log as needing a restart (the broker connection, the ports, the journal...).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from .command_auth import load_operator_key
from .config import ConfigError, GatewayConfig, load_config

if TYPE_CHECKING:
    from .service import Gateway

__all__ = ["LIVE_SECTIONS", "config_changes", "reload_config"]

log = logging.getLogger("streetsense.gateway")

LIVE_SECTIONS = ("log", "availability", "health", "commands")
_NOT_SETTINGS = ("source",)


def config_changes(old: GatewayConfig, new: GatewayConfig) -> tuple[list[str], list[str]]:
    """(live sections that changed, other sections that changed: these need a restart)."""
    changed = [f.name for f in dataclasses.fields(GatewayConfig)
               if f.name not in _NOT_SETTINGS and getattr(old, f.name) != getattr(new, f.name)]
    return ([name for name in changed if name in LIVE_SECTIONS],
            [name for name in changed if name not in LIVE_SECTIONS])


def reload_config(gateway: Gateway, path: Path) -> bool:
    """Apply what ``path`` now says and can change live; False if it was not reloaded."""
    try:
        new = load_config(path)
    except ConfigError as exc:
        details = "; ".join(map(str, exc.problems))
        log.error("SIGHUP: %s not reloaded, the running config stays: %s. Fix it (streetsense "
                  "gateway check-config --config %s) and send SIGHUP again", path, details, path)
        return False
    except OSError as exc:
        log.error("SIGHUP: cannot read %s (%s): the running config stays", path, exc.strerror)
        return False
    old = gateway.config
    live, restart = config_changes(old, new)
    key_file = new.commands.operator_key_file
    key = None if key_file is None else load_operator_key(key_file)  # checked by load_config
    if gateway.commands is not None:
        gateway.commands.per_node_per_minute = new.commands.per_node_per_minute
    if gateway.command_auth is not None:
        gateway.command_auth.configure(key, max_age_s=new.commands.max_age_s)
    if new.log.level is not None:
        logging.getLogger().setLevel(new.log.level)
    gateway.config = dataclasses.replace(old, **{name: getattr(new, name) for name in live})
    gateway.registry.reload_if_changed()
    gateway.registry_changed()  # even unchanged: the node list goes out again
    done = [f"registry ({len(gateway.registry)} nodes)", *(n for n in live if n != "log"),
            f"log level {logging.getLevelName(logging.getLogger().getEffectiveLevel())}"]
    log.warning("SIGHUP: %s reloaded: %s%s", path, ", ".join(done),
                f"; changed but needs a restart to take effect: {', '.join(restart)}"
                if restart else "; nothing that needs a restart changed")
    return True
