"""The gateway's TOML configuration: typed, frozen, and checked as a whole.

`load_config(path)` returns a `GatewayConfig` or raises `ConfigError` listing *every*
problem (unknown keys, wrong types, out-of-range values, missing files), each with its
dotted key (``serial[1].baud``) and the line it is on. `check_config(path)` returns that
list without raising. tomllib keeps no positions, so lines come from a scan of the text for
table headers and keys (`LineIndex`). Relative paths are resolved against the config
file's folder. `review_config(path)` also returns the warnings (a serial port that does not
exist now). `gateway/example.toml` documents every option.
"""

from __future__ import annotations

import importlib.util
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .bench.config import HilSection, read_hil_section
from .command_auth import load_operator_key
from .derived.pm_correction import PM_CORRECTIONS
from .derived.tables import PCU_TCVN_4054_2005
from .tomlcheck import (
    ABSENT,
    NAME,
    NAME_WHAT,
    Problem,
    ProblemsError,
    Table,
    finish,
    listen_problem,
    open_toml,
)

__all__ = [
    "LOG_LEVELS",
    "MQTT_PROTOCOLS",
    "WHEN_FULL",
    "AvailabilitySection",
    "BleSection",
    "CommandsSection",
    "ConfigError",
    "DerivedSection",
    "GatewayConfig",
    "GatewaySection",
    "HealthSection",
    "HomeAssistantSection",
    "HttpSection",
    "JournalSection",
    "LogSection",
    "MqttSection",
    "OwnershipSection",
    "Problem",
    "SerialPort",
    "check_config",
    "load_config",
    "review_config",
]

MQTT_PROTOCOLS = ("5", "3.1.1")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# What the journal does when it reaches max_bytes: it always deletes delivered rows first;
# then "reject" stops acking new frames (nodes keep them queued: nothing is lost), while
# "drop-oldest" deletes the oldest undelivered rows (fresh data wins; each drop is counted).
WHEN_FULL = ("drop-delivered-then-reject", "drop-delivered-then-drop-oldest")
# [ble] backend other than "default": "package.module:Name" of a bleak backend provider.
_BACKEND = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


class ConfigError(ProblemsError):
    """The config file has problems; ``.problems`` lists them all, ``.path`` is the file."""


@dataclass(frozen=True)
class GatewaySection:
    """Who this gateway is (``id`` and ``site`` are MQTT topic levels) and where it keeps state."""

    id: str
    site: str
    data_dir: Path


@dataclass(frozen=True)
class MqttSection:
    """The broker connection. ``url`` is ``mqtt://host[:1883]`` or ``mqtts://host[:8883]``
    (TLS); ``urls`` lists the members of a broker cluster instead (``url`` is then the first),
    used in turn when the one in use is lost. ``password`` is the effective one (read from
    ``password_file`` when given)."""

    url: str
    client_id: str
    urls: tuple[str, ...] = ()
    prefix: str = "streetsense"
    protocol: str = "5"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: int = 30
    inflight: int = 50

    @property
    def members(self) -> tuple[str, ...]:
        """The broker's URL, or each cluster member's, in the order they are tried."""
        return self.urls or (self.url,)

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        """(host, port) of each of ``members``."""
        return tuple(self._address(url) for url in self.members)

    @property
    def tls(self) -> bool:
        """Whether the connection uses TLS (an ``mqtts://`` url)."""
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        """The (first) broker's host name or address."""
        return self._address(self.url)[0]

    @property
    def port(self) -> int:
        """The (first) broker's port (1883, or 8883 with TLS, unless the url names one)."""
        return self._address(self.url)[1]

    def _address(self, url: str) -> tuple[str, int]:
        parts = urlsplit(url)
        return parts.hostname or "", parts.port or (8883 if self.tls else 1883)


@dataclass(frozen=True)
class SerialPort:
    """A serial port with nodes on it; ``name`` labels its metrics and logs."""

    path: str
    name: str
    baud: int = 115200


@dataclass(frozen=True)
class BleSection:
    """BLE nodes: off by default. ``backend`` "default" is bleak's own backend for the
    platform (BlueZ on a Pi); "package.module:Name" names a provider of other bleak backends,
    called with ``backend_options`` (how a test rig puts the gateway on a virtual radio)."""

    enabled: bool = False
    adapter: str | None = None
    backend: str = "default"
    backend_options: dict[str, str] = field(default_factory=dict)
    max_connections: int = 4
    scan_interval_s: float = 30.0


@dataclass(frozen=True)
class JournalSection:
    """The SQLite journal: its file, its size bound, and the policy once that is reached."""

    path: Path
    max_bytes: int = 256 * 1024 * 1024
    when_full: str = WHEN_FULL[0]


@dataclass(frozen=True)
class AvailabilitySection:
    """A node is published offline after ``offline_after_s`` without a valid frame."""

    offline_after_s: float = 180.0


@dataclass(frozen=True)
class OwnershipSection:
    """Several gateways hearing the same nodes: each node is published by one owner at a
    time (``gateway/ownership.py``); a gateway claims nothing in its first ``claim_after_s``
    after connecting, while the retained states arrive."""

    enabled: bool = False
    claim_after_s: float = 2.0


@dataclass(frozen=True)
class HealthSection:
    """The gateway's health message is published every ``interval_s``."""

    interval_s: float = 60.0


@dataclass(frozen=True)
class LogSection:
    """The log level; None: ``gateway run --log-level`` (INFO by default). SIGHUP applies a
    changed level without a restart."""

    level: str | None = None


@dataclass(frozen=True)
class HttpSection:
    """``/healthz`` and ``/metrics`` on ``listen`` ("host:port"); None when turned off."""

    listen: str | None = "127.0.0.1:9180"


@dataclass(frozen=True)
class HomeAssistantSection:
    """Home Assistant MQTT discovery: off by default; configs go under ``prefix``."""

    discovery: bool = False
    prefix: str = "homeassistant"


@dataclass(frozen=True)
class CommandsSection:
    """Commands from MQTT: signed with the site's operator key (``operator_key_file``;
    without one every command is refused), at most ``max_age_s`` old, and no more than
    ``per_node_per_minute`` forwarded to one node."""

    operator_key_file: Path | None = None
    max_age_s: float = 30.0
    per_node_per_minute: int = 10


@dataclass(frozen=True)
class DerivedSection:
    """Derived values published next to the raw data (AQI, traffic flow in PCU).

    ``pcu`` overrides passenger-car-unit factors per vehicle class; the others keep the
    defaults of TCVN 4054:2005 (`streetsense.gateway.derived.tables`). ``pm_correction``:
    how PM2.5 of low-cost sensors is corrected in ``data`` and for the AQI ("epa-2021", the
    default, or "none"; `streetsense.gateway.derived.pm_correction`).
    """

    aqi: bool = True
    traffic: bool = True
    pcu: dict[str, float] = field(default_factory=dict)
    pm_correction: str = "epa-2021"


@dataclass(frozen=True)
class GatewayConfig:
    """The whole configuration of one gateway."""

    gateway: GatewaySection
    mqtt: MqttSection
    registry_path: Path
    journal: JournalSection
    serial: tuple[SerialPort, ...] = ()
    ble: BleSection = BleSection()
    availability: AvailabilitySection = AvailabilitySection()
    ownership: OwnershipSection = OwnershipSection()
    health: HealthSection = HealthSection()
    http: HttpSection = HttpSection()
    homeassistant: HomeAssistantSection = HomeAssistantSection()
    hil: HilSection = field(default_factory=HilSection)
    derived: DerivedSection = DerivedSection()
    commands: CommandsSection = CommandsSection()
    log: LogSection = LogSection()
    source: Path | None = None  # the file it was loaded from


def load_config(path: str | Path) -> GatewayConfig:
    """The configuration in ``path``; raises `ConfigError` with every problem found."""
    path = Path(path)
    config, problems, _ = _load(path)
    if problems or config is None:
        raise ConfigError(path, problems)
    return config


def check_config(path: str | Path) -> list[Problem]:
    """Every problem in the config file at ``path`` (an empty list when it is fine)."""
    return _load(Path(path))[1]


def review_config(path: str | Path) -> tuple[list[Problem], list[Problem]]:
    """(problems, warnings) of the config file at ``path``: a warning does not stop the
    gateway (a serial port that does not exist yet is waited for)."""
    _, problems, warnings = _load(Path(path))
    return problems, warnings


# --- the sections ---------------------------------------------------------------------------

# An MQTT topic prefix: levels separated by "/", no wildcards, no empty level.
_TOPIC = re.compile(r"^[^/#+\s]+(/[^/#+\s]+)*$")
_TOPIC_WHAT = 'a topic prefix without wildcards or empty levels (e.g. "streetsense")'


def _load(path: Path) -> tuple[GatewayConfig | None, list[Problem], list[Problem]]:
    root, problems = open_toml(path)
    if root is None:
        return None, problems, []
    config = _read(root, path)
    problems = finish(root)
    return (None if problems else config), problems, root.reader.warnings


def _read(root: Table, path: Path) -> GatewayConfig:
    gateway = _gateway(root.table("gateway"))
    serial = _serial(root)
    journal = _journal(root.table("journal"), gateway.data_dir)
    registry_path = root.path("registry_path", "nodes.toml", must_exist=True)
    availability = root.table("availability")
    ownership = root.table("ownership")
    health = root.table("health")
    homeassistant = root.table("homeassistant")
    config = GatewayConfig(
        gateway=gateway,
        mqtt=_mqtt(root.table("mqtt"), gateway.id),
        registry_path=registry_path or Path(),
        journal=journal,
        serial=serial,
        ble=_ble(root.table("ble")),
        availability=AvailabilitySection(
            offline_after_s=availability.number(
                "offline_after_s", AvailabilitySection.offline_after_s, low=1.0
            )
        ),
        ownership=OwnershipSection(
            enabled=ownership.flag("enabled", OwnershipSection.enabled),
            claim_after_s=ownership.number(
                "claim_after_s", OwnershipSection.claim_after_s, low=0.0
            ),
        ),
        health=HealthSection(
            interval_s=health.number("interval_s", HealthSection.interval_s, low=0.1)
        ),
        http=_http(root.table("http")),
        homeassistant=HomeAssistantSection(
            discovery=homeassistant.flag("discovery", HomeAssistantSection.discovery),
            prefix=homeassistant.text(
                "prefix", HomeAssistantSection.prefix, pattern=_TOPIC, what=_TOPIC_WHAT
            )
            or "",
        ),
        hil=read_hil_section(root.table("hil"), {port.name for port in serial}),
        derived=_derived(root.table("derived")),
        commands=_commands(root.table("commands")),
        log=_log(root.table("log")),
        source=path,
    )
    for table in (availability, ownership, health, homeassistant):
        table.done()
    return config


def _gateway(table: Table) -> GatewaySection:
    section = GatewaySection(
        id=table.text("id", required=True, pattern=NAME, what=NAME_WHAT) or "",
        site=table.text("site", required=True, pattern=NAME, what=NAME_WHAT) or "",
        data_dir=table.path("data_dir", "/var/lib/streetsense") or Path(),
    )
    table.done()
    return section


def _journal(table: Table, data_dir: Path) -> JournalSection:
    section = JournalSection(
        path=table.path("path") or data_dir / "journal.sqlite3",
        max_bytes=table.integer("max_bytes", JournalSection.max_bytes, low=1024 * 1024),
        when_full=table.text("when_full", JournalSection.when_full, choices=WHEN_FULL) or "",
    )
    table.done()
    return section


def _mqtt(table: Table, gateway_id: str) -> MqttSection:
    url, urls = _broker_urls(table)
    password = table.text("password")
    password_file = table.path("password_file", must_exist=True)
    if password is not None and password_file is not None:
        table.problem("password_file", "give password or password_file, not both")
    elif password_file is not None and password_file.is_file():
        password = password_file.read_text(encoding="utf-8").rstrip("\r\n")
    ca_file = table.path("ca_file", must_exist=True)
    cert_file = table.path("cert_file", must_exist=True)
    key_file = table.path("key_file", must_exist=True)
    if (cert_file is None) != (key_file is None):
        table.problem(
            "cert_file" if cert_file is None else "key_file",
            "a client certificate needs both cert_file and key_file",
        )
    for name, problem in _tls_problems(ca_file, cert_file, key_file):
        table.problem(name, problem)
    if (ca_file or cert_file) and url and urlsplit(url).scheme != "mqtts":
        table.problem("urls" if urls else "url", "TLS files are set: use an mqtts:// url")
    section = MqttSection(
        url=url,
        urls=urls,
        client_id=table.text("client_id", f"streetsense-{gateway_id}") or "",
        prefix=table.text("prefix", MqttSection.prefix, pattern=_TOPIC, what=_TOPIC_WHAT) or "",
        protocol=table.text("protocol", MqttSection.protocol, choices=MQTT_PROTOCOLS) or "",
        username=table.text("username"),
        password=password,
        password_file=password_file,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        keepalive_s=table.integer("keepalive_s", MqttSection.keepalive_s, low=1, high=65535),
        inflight=table.integer("inflight", MqttSection.inflight, low=1, high=1000),
    )
    table.done()
    return section


def _tls_problems(ca_file: Path | None, cert_file: Path | None,
                  key_file: Path | None) -> list[tuple[str, str]]:
    """(key, problem) for TLS files that exist but that TLS cannot use: loaded here as the
    publisher will, so a bad file is a config problem, not an SSLError at the connection."""
    problems = []
    if ca_file is not None and ca_file.is_file():
        try:
            ssl.create_default_context(cafile=ca_file)
        except (ssl.SSLError, ValueError):
            problems.append(("ca_file", f"{ca_file} holds no PEM certificate: give the CA "
                             "certificate that signed the broker's (-----BEGIN CERTIFICATE-----)"))
        except OSError as exc:
            problems.append(("ca_file", f"cannot read {ca_file}: {exc.strerror}"))
    if cert_file is not None and key_file is not None and cert_file.is_file() \
            and key_file.is_file():
        try:
            # A key with a passphrase is refused here, never prompted for on a terminal.
            ssl.create_default_context().load_cert_chain(cert_file, key_file,
                                                         password=lambda: b"")
        except ssl.SSLError:
            problems.append(("cert_file", f"{cert_file} and {key_file} are not a PEM client "
                             "certificate and its unencrypted private key"))
        except OSError as exc:
            problems.append(("cert_file", f"cannot read {exc.filename}: {exc.strerror}"))
    return problems


def _broker_urls(table: Table) -> tuple[str, tuple[str, ...]]:
    """``url``, or ``urls`` (a cluster's members) with the first as ``url``; each checked."""
    if "urls" not in table.data:
        url = table.text("url", required=True) or ""
        if url and _url_problem(url):
            table.problem("url", f'"{url}" is not mqtt://host[:port] or mqtts://host[:port]')
        return url, ()
    if "url" in table.data:
        table.problem("urls", "give url (one broker) or urls (a cluster's members), not both")
        table.used.add("url")
    value = table.value("urls", lambda v: isinstance(v, list) and bool(v)
                        and all(isinstance(item, str) for item in v),
                        "a non-empty list of strings", required=True)
    if value is ABSENT:
        return "", ()
    urls: list[str] = value
    for url in urls:
        if _url_problem(url):
            table.problem("urls", f'"{url}" is not mqtt://host[:port] or mqtts://host[:port]')
    if len({urlsplit(url).scheme for url in urls}) > 1:
        table.problem("urls", "mixes mqtt:// and mqtts://: the members share one TLS setting")
    for url in {url for url in urls if urls.count(url) > 1}:
        table.problem("urls", f'"{url}" is listed twice')
    return urls[0], tuple(urls)


def _url_problem(url: str) -> bool:
    """Whether ``url`` is not a usable mqtt:// or mqtts:// broker address."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return True
    return parts.scheme not in ("mqtt", "mqtts") or not parts.hostname


def _serial(root: Table) -> tuple[SerialPort, ...]:
    ports = []
    for table in root.tables("serial"):
        path = table.text("path", required=True) or ""
        if path and not Path(path).exists():
            table.warning("path", f"{path} does not exist now: the gateway opens it when it "
                          "appears (plug the adapter in, or fix the path)")
        ports.append(
            SerialPort(
                path=path,
                name=table.text("name", Path(path).name or "serial", pattern=NAME, what=NAME_WHAT)
                or "",
                baud=table.integer("baud", SerialPort.baud, low=300, high=4_000_000),
            )
        )
        table.done()
    for attribute in ("path", "name"):
        seen: set[str] = set()
        for index, port in enumerate(ports):
            value = getattr(port, attribute)
            if value in seen:
                root.reader.problem(
                    f"serial[{index}].{attribute}",
                    f'"{value}" is used by an earlier [[serial]] port',
                )
            seen.add(value)
    return tuple(ports)


def _ble(table: Table) -> BleSection:
    backend = table.text("backend", BleSection.backend) or ""
    if backend != "default" and (problem := _backend_problem(backend)) is not None:
        table.problem("backend", problem)
    options_table = table.table("backend_options")
    options = {name: options_table.text(name) or "" for name in options_table.data}
    options_table.done()
    section = BleSection(
        enabled=table.flag("enabled", BleSection.enabled),
        adapter=table.text("adapter"),
        backend=backend,
        backend_options=options,
        max_connections=table.integer(
            "max_connections", BleSection.max_connections, low=1, high=32
        ),
        scan_interval_s=table.number("scan_interval_s", BleSection.scan_interval_s, low=1.0),
    )
    table.done()
    return section


def _backend_problem(backend: str) -> str | None:
    """Why ``backend`` does not name an importable bleak backend provider, or None."""
    if not _BACKEND.match(backend):
        return f'"{backend}" is not "default" nor "package.module:Name"'
    module = backend.partition(":")[0]
    try:
        found = importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing
        found = False
    return None if found else f"module {module} is not installed"


def _http(table: Table) -> HttpSection:
    value = table.value(
        "listen", lambda v: v is False or isinstance(v, str), '"host:port" or false', required=False
    )
    listen = HttpSection.listen if value is ABSENT else (value or None)
    if listen is not None and (problem := listen_problem(listen)) is not None:
        table.problem("listen", problem)
    table.done()
    return HttpSection(listen=listen)


def _commands(table: Table) -> CommandsSection:
    key_file = table.path("operator_key_file", must_exist=True)
    if key_file is not None and key_file.is_file():
        try:
            load_operator_key(key_file)
        except ValueError as exc:
            table.problem("operator_key_file", str(exc))
        except OSError as exc:
            table.problem("operator_key_file", f"cannot read it: {exc.strerror}")
    section = CommandsSection(
        operator_key_file=key_file,
        max_age_s=table.number("max_age_s", CommandsSection.max_age_s, low=1.0, high=3600.0),
        per_node_per_minute=table.integer(
            "per_node_per_minute", CommandsSection.per_node_per_minute, low=1, high=600
        ),
    )
    table.done()
    return section


def _log(table: Table) -> LogSection:
    level = table.text("level", choices=LOG_LEVELS)
    table.done()
    return LogSection(level=level)


def _derived(table: Table) -> DerivedSection:
    aqi = table.flag("aqi", DerivedSection.aqi)
    traffic = table.flag("traffic", DerivedSection.traffic)
    pm_correction = table.text("pm_correction", DerivedSection.pm_correction,
                               choices=PM_CORRECTIONS) or DerivedSection.pm_correction
    pcu_table = table.table("pcu")
    pcu = {}
    for name in pcu_table.data:
        if name in PCU_TCVN_4054_2005:
            pcu[name] = pcu_table.number(name, PCU_TCVN_4054_2005[name], low=0.0)
    pcu_table.done()  # any other name is reported as an unknown key
    table.done()
    return DerivedSection(aqi=aqi, traffic=traffic, pcu=pcu, pm_correction=pm_correction)
