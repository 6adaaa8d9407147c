"""``streetsense bridge ACTION [ARGS] --gateway ID``: one signed request to a gateway's bridge.

ACTIONS (docs/mqtt.md "The bridge"): ``node/rename from=HN-0042 to=HN-0099``,
``node/remove node=HN-0042 --confirm``, ``log_level level=DEBUG``. The request is signed with
the site's operator key, as commands are, and published on
``<prefix>/<site>/_gateway/<ID>/request/<ACTION>``; the gateway's answer is printed as one
JSON line. Exit status 0 when its code is ``OK``.
"""

from __future__ import annotations

from typing import Any

import click

from streetsense.gateway.topics import Topics

from .command import Signed, broker_options, parse_values

__all__ = ["bridge"]

ACTIONS = ("node/rename", "node/remove", "log_level")  # streetsense.gateway.bridge.ACTIONS


@click.command()
@click.argument("action", type=click.Choice(ACTIONS))
@click.argument("args", nargs=-1)
@click.option("--gateway", "gateway_id", envvar="STREETSENSE_GATEWAY_ID", required=True,
              help="The gateway's id ([gateway] id).")
@broker_options
def bridge(action: str, args: tuple[str, ...], gateway_id: str, confirm: bool,
           **options: Any) -> None:
    """Sign and send a bridge request to gateway ID, print its answer. ARGS: NAME=VALUE ..."""
    request = parse_values(args)
    if confirm:
        request["confirm"] = request.get("node")
    signed = Signed(**options)
    topics = Topics(signed.prefix, signed.site, gateway_id)
    signed.send(topics.gateway(f"request/{action}"), topics.gateway(f"response/{action}"),
                request)
