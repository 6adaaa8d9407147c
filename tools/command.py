"""``streetsense command NODE NAME [ARGS]``: sign one command, send it, print its result.

ARGS are ``NAME=VALUE`` pairs, each VALUE read as JSON when it is JSON (``30``, ``true``,
``{"co2": 415}``) and as a string otherwise; they become the ``settings`` of ``config`` and
the ``args`` of any other command. The command is signed with the site's operator key
(``docs/mqtt.md``) and published on ``<prefix>/<site>/NODE/cmd/NAME``; the result the gateway
or the node sends back is printed as one JSON line. Exit status 0 when its code is ``OK``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

if TYPE_CHECKING:
    import aiomqtt

from streetsense.gateway.topics import Topics

__all__ = ["Signed", "broker_client", "broker_options", "command", "parse_values",
           "read_password"]


def read_password(path: Path) -> str:
    """The first line of a ``--password-file``; a usage error when there is none."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0]:
        raise click.BadParameter(f"{path} is empty: its first line must be the broker "
                                 f"password", param_hint="--password-file")
    return lines[0]


def parse_values(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs as a dict, each VALUE read as JSON when it is JSON."""
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise click.UsageError(f"{pair!r}: give arguments as NAME=VALUE, e.g. delay_s=5")
        try:
            values[name] = json.loads(text)
        except ValueError:
            values[name] = text
    return values


def broker_options(function: Callable[..., None]) -> Callable[..., None]:
    """The options every signed request to a site takes (``command``, ``bridge``)."""
    options = [
        click.option("--broker", envvar="STREETSENSE_MQTT_URL", required=True, metavar="URL",
                     help="mqtt://host[:port] or mqtts://host[:port] (TLS)."),
        click.option("--site", envvar="STREETSENSE_SITE", required=True,
                     help="The gateway's site."),
        click.option("--prefix", envvar="STREETSENSE_MQTT_PREFIX", default="streetsense",
                     show_default=True, help="The topic prefix."),
        click.option("--key-file", envvar="STREETSENSE_OPERATOR_KEY_FILE", required=True,
                     type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="The site's operator key (streetsense gateway operator-key)."),
        click.option("--username", envvar="STREETSENSE_MQTT_USERNAME", help="Broker user."),
        click.option("--password-file", envvar="STREETSENSE_MQTT_PASSWORD_FILE",
                     type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="File whose first line is the broker password."),
        click.option("--confirm", is_flag=True,
                     help="Confirm a request that wipes, removes or changes a node's identity."),
        click.option("--id", "request_id", help="Request id (default: a random one)."),
        click.option("--timeout", "timeout_s", default=20.0, show_default=True,
                     help="Seconds to wait for the answer."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@dataclass(frozen=True)
class Signed:
    """Where to send a request and with what: the values of `broker_options`."""

    broker: str
    site: str
    prefix: str
    key_file: Path
    username: str | None
    password_file: Path | None
    request_id: str | None
    timeout_s: float

    def send(self, topic: str, answer_topic: str, fields: dict[str, Any]) -> None:
        """Sign ``fields`` (with an ``id``) for ``topic``, publish, print the answer that
        carries the id from ``answer_topic``; a ClickException unless its code is OK."""
        from streetsense.gateway.command_auth import load_operator_key

        try:
            key = load_operator_key(self.key_file)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        request = {"id": self.request_id or secrets.token_hex(4), **fields}
        password = None
        if self.password_file is not None:
            password = read_password(self.password_file)
        result = asyncio.run(_send(self.broker, topic, answer_topic, key, request,
                                   self.username, password, self.timeout_s))
        click.echo(json.dumps(result, ensure_ascii=False))
        if result.get("code") != "OK":
            hint = " (here: add --confirm)" if result.get("code") == "CONFIRM_REQUIRED" else ""
            raise click.ClickException(f"{result.get('code')}: {result.get('message')}{hint}")


@click.command()
@click.argument("node")
@click.argument("name")
@click.argument("args", nargs=-1)
@broker_options
def command(node: str, name: str, args: tuple[str, ...], confirm: bool,
            **options: Any) -> None:
    """Sign and send command NAME to NODE, print its result. ARGS: NAME=VALUE ..."""
    request: dict[str, Any] = {}
    values = parse_values(args)
    if values:
        request["settings" if name == "config" else "args"] = values
    if confirm:
        request["confirm"] = node
    signed = Signed(**options)
    topics = Topics(signed.prefix, signed.site)
    signed.send(topics.command(node, name), topics.result(node, name), request)


def broker_client(url: str, username: str | None, password: str | None) -> aiomqtt.Client:
    """An MQTT 3.1.1 client for ``--broker`` URL (mqtt:// or mqtts:// with the system's CAs);
    a usage error for any other URL."""
    import aiomqtt

    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise click.BadParameter(f"{url!r} is not mqtt://host[:port] or mqtts://host[:port]",
                                 param_hint="--broker")
    tls = parts.scheme == "mqtts"
    return aiomqtt.Client(
        parts.hostname, parts.port or (8883 if tls else 1883), username=username,
        password=password, protocol=aiomqtt.ProtocolVersion.V311,
        tls_context=ssl.create_default_context() if tls else None)


async def _send(url: str, topic: str, answer_topic: str, key: bytes, request: dict[str, Any],
                username: str | None, password: str | None,
                timeout_s: float) -> dict[str, Any]:
    import aiomqtt

    from streetsense.gateway.command_auth import sign

    client = broker_client(url, username, password)
    try:
        async with client:
            await client.subscribe(answer_topic, qos=1)
            await client.publish(topic, json.dumps(sign(key, topic, request)), qos=1)
            async with asyncio.timeout(timeout_s):
                async for message in client.messages:
                    result = json.loads(bytes(message.payload))
                    if isinstance(result, dict) and result.get("id") == request["id"]:
                        return result
    except aiomqtt.MqttError as exc:
        raise click.ClickException(f"cannot talk to the broker at {url}: {exc}") from None
    except TimeoutError:
        pass
    raise click.ClickException(
        f"no answer within {timeout_s:.0f} s: is the site's gateway running, and may your "
        f"broker user publish on {topic} and read {answer_topic}?")
