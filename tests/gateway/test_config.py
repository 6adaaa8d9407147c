"""Gateway config: typed sections, defaults, and every problem reported with key and line."""

import re
import shutil
import subprocess
import textwrap
import tomllib
from pathlib import Path

import pytest

from streetsense.gateway.bench.config import RelayLine
from streetsense.gateway.config import (
    WHEN_FULL,
    BleSection,
    ConfigError,
    GatewayConfig,
    check_config,
    load_config,
)
from streetsense.hil.ble.bleak_backend import gateway_settings
from streetsense.hil.gateway_proc import to_toml

EXAMPLE = Path(__file__).resolve().parents[2] / "gateway" / "example.toml"
MINIMAL = """\
[gateway]
id = "gw-01"
site = "hanoi"

[mqtt]
url = "mqtt://broker.example:1884"
"""


def write(folder: Path, text: str, name: str = "gateway.toml") -> Path:
    """``text`` (dedented) as a config file in ``folder``, next to an empty nodes.toml."""
    (folder / "nodes.toml").touch()
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_by_key(path: Path) -> dict[str, tuple[int | None, str]]:
    """check_config's problems as {key: (line, message)}."""
    return {p.key: (p.line, p.message) for p in check_config(path)}


def test_example_loads(tmp_path: Path) -> None:
    """The shipped example is a valid config and shows the documented defaults."""
    config = load_config(write(tmp_path, EXAMPLE.read_text()))
    assert isinstance(config, GatewayConfig)
    assert (config.gateway.id, config.gateway.site) == ("gw-01", "hanoi")
    assert config.mqtt.client_id == "streetsense-gw-01"
    assert config.registry_path == tmp_path / "nodes.toml"
    assert config.journal.path == Path("/var/lib/streetsense/journal.sqlite3")
    assert config.journal.when_full == WHEN_FULL[0]
    assert [(p.name, p.baud) for p in config.serial] == [("pole-12", 115200)]
    assert config.http.listen == "127.0.0.1:9180" and not config.hil.enabled


def test_every_commented_option_is_real(tmp_path: Path) -> None:
    """Uncommenting every option in the example gives no unknown key and no type error."""
    lines = []
    for line in EXAMPLE.read_text().splitlines():
        option = re.match(r"^# ?((?:\[\[?[\w.-]+\]\]?)|(?:\w+ = .*))$", line)
        lines.append(option.group(1) if option else line)
    path = write(tmp_path, "\n".join(lines) + "\n")
    found = check_config(path)
    # What remains is expected of the sample values: absolute files that are not on this
    # machine, password next to password_file, TLS files with an mqtt:// url.
    assert found, "the example should have commented-out options"
    for problem in found:
        assert re.search(r"file not found|not both|mqtts://|both cert_file", problem.message), str(
            problem
        )


def test_minimal_config_defaults(tmp_path: Path) -> None:
    """Only gateway.id/site and mqtt.url are required; the rest has documented defaults."""
    config = load_config(write(tmp_path, MINIMAL))
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.tls) == ("broker.example", 1884, False)
    assert config.mqtt.protocol == "5" and config.mqtt.inflight == 50
    assert config.serial == () and not config.ble.enabled
    assert config.availability.offline_after_s == 180.0 and config.health.interval_s == 60.0
    assert config.derived.pcu == {} and config.derived.aqi and config.derived.traffic
    assert config.source == tmp_path / "gateway.toml"


def test_all_problems_with_keys_and_lines(tmp_path: Path) -> None:
    """One check reports every problem: unknown keys, types, ranges, choices, requirements."""
    path = write(
        tmp_path,
        """\
        colour = "blue"
        [gateway]
        id = "gw/01"

        [mqtt]
        url = "http://broker"
        protocol = 5
        inflight = 0
        "keep alive" = 3

        [[serial]]
        path = "/dev/ttyUSB0"

        [[serial]]
        path = "/dev/ttyUSB1"
        baud = "fast"

        [journal]
        when_full = "panic"

        [hil.relays.pole-9]
        power = { pin = 1.5 }
        """,
    )
    assert problems_by_key(path) == {
        "colour": (1, "unknown key"),
        "gateway.id": (3, "\"gw/01\" is not a name of letters, digits, '_', '-' and '.'"),
        "gateway.site": (2, "is required"),
        "mqtt.url": (6, '"http://broker" is not mqtt://host[:port] or mqtts://host[:port]'),
        "mqtt.protocol": (7, "must be a string, not an integer"),
        "mqtt.inflight": (8, "0 is out of range: must be between 1 and 1000"),
        "mqtt.keep alive": (9, "unknown key"),
        "serial[1].baud": (16, "must be an integer, not a string"),
        "journal.when_full": (
            19,
            '"panic" is not one of "drop-delivered-then-reject", "drop-delivered-then-drop-oldest"',
        ),
        "hil.relays.pole-9": (21, "no [[serial]] port has this name"),
        "hil.relays.pole-9.power.pin": (
            22,
            'must be a GPIO number or name (17, "GPIO17"), not a number',
        ),
    }
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert len(caught.value.problems) == 11
    assert f"{path}: line 16: serial[1].baud: must be an integer" in str(caught.value)


def test_problems_come_in_line_order(tmp_path: Path) -> None:
    """Problems are listed in file order, whatever order the sections are read in."""
    path = write(
        tmp_path,
        """\
        [http]
        listen = "nowhere"
        [gateway]
        id = "a"
        site = "b"
        extra = 1
        [mqtt]
        url = "mqtt://h"
        """,
    )
    assert [(p.line, p.key) for p in check_config(path)] == [
        (2, "http.listen"),
        (6, "gateway.extra"),
    ]


def test_invalid_toml_reports_its_line(tmp_path: Path) -> None:
    """A syntax error is one problem with the line tomllib names."""
    path = write(tmp_path, MINIMAL + "inflight = = 3\n")
    (problem,) = check_config(path)
    assert problem.line == 7 and "not valid TOML" in problem.message


def test_missing_file_is_a_problem(tmp_path: Path) -> None:
    """A config file that is not there is a problem, not a traceback."""
    (problem,) = check_config(tmp_path / "absent.toml")
    assert problem.line is None and "cannot read" in problem.message


def test_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    """Relative paths are taken from the config's folder; password_file is read; TLS is on."""
    (tmp_path / "secret").write_text("s3cret\n")
    # TLS files are loaded at check time: a real (self-signed) certificate and its key.
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=gw",
                    "-keyout", str(tmp_path / "gw.key"), "-out", str(tmp_path / "gw.crt")],
                   check=True, capture_output=True)
    shutil.copy(tmp_path / "gw.crt", tmp_path / "ca.crt")
    path = write(
        tmp_path,
        """\
        registry_path = "nodes.toml"
        [gateway]
        id = "gw-01"
        site = "hanoi"
        data_dir = "state"
        [mqtt]
        url = "mqtts://broker.example"
        username = "gw"
        password_file = "secret"
        ca_file = "ca.crt"
        cert_file = "gw.crt"
        key_file = "gw.key"
        """,
    )
    config = load_config(path)
    assert config.gateway.data_dir == tmp_path / "state"
    assert config.journal.path == tmp_path / "state" / "journal.sqlite3"
    assert config.mqtt.password == "s3cret" and "s3cret" not in repr(config)
    assert (config.mqtt.tls, config.mqtt.port) == (True, 8883)
    assert config.mqtt.ca_file == tmp_path / "ca.crt"


def test_file_problems(tmp_path: Path) -> None:
    """Missing files, half a client certificate, TLS files on plain MQTT, both passwords."""
    (tmp_path / "gw.crt").write_text("x")
    path = write(
        tmp_path,
        """\
        registry_path = "missing.toml"
        [gateway]
        id = "gw-01"
        site = "hanoi"
        [mqtt]
        url = "mqtt://broker"
        password = "a"
        password_file = "pw"
        cert_file = "gw.crt"
        """,
    )
    found = problems_by_key(path)
    assert found["registry_path"] == (1, f"file not found: {tmp_path / 'missing.toml'}")
    assert found["mqtt.password_file"][1] == "give password or password_file, not both"
    assert found["mqtt.key_file"] == (5, "a client certificate needs both cert_file and key_file")
    assert found["mqtt.url"] == (6, "TLS files are set: use an mqtts:// url")


def test_http_listen_can_be_turned_off(tmp_path: Path) -> None:
    """http.listen = false turns the HTTP server off; a bad address is a problem."""
    config = load_config(write(tmp_path, MINIMAL + "[http]\nlisten = false\n"))
    assert config.http.listen is None
    bad = write(tmp_path, MINIMAL + "[http]\nlisten = true\n", "bad.toml")
    assert problems_by_key(bad) == {
        "http.listen": (8, 'must be "host:port" or false, not a boolean')
    }


def test_duplicate_serial_ports(tmp_path: Path) -> None:
    """Two [[serial]] ports with the same path or name are reported at the second one."""
    path = write(
        tmp_path,
        MINIMAL
        + """
[[serial]]
path = "/dev/ttyUSB0"
[[serial]]
path = "/dev/serial/by-id/x"
name = "ttyUSB0"
[[serial]]
path = "/dev/ttyUSB0"
name = "third"
""",
    )
    assert problems_by_key(path) == {
        "serial[2].path": (14, '"/dev/ttyUSB0" is used by an earlier [[serial]] port'),
        "serial[1].name": (12, '"ttyUSB0" is used by an earlier [[serial]] port'),
    }


def test_hil_needs_a_token_and_reads_relays(tmp_path: Path) -> None:
    """hil.enabled requires token_file; relay lines keep their pins and polarity."""
    text = (
        MINIMAL
        + """
[[serial]]
path = "/dev/ttyUSB0"
name = "bench-a"
[hil]
enabled = true
[hil.relays.bench-a]
power = { pin = 17, active_high = false }
reset = { pin = "GPIO27" }
"""
    )
    found = problems_by_key(write(tmp_path, text))
    assert found == {
        "hil.token_file": (
            11,
            "is required when enabled: remote bench access is authenticated with this shared token",
        )
    }
    (tmp_path / "token").write_text("0123456789abcdef")
    config = load_config(
        write(tmp_path, text.replace("enabled = true", 'enabled = true\ntoken_file = "token"'))
    )
    assert config.hil.relays == {
        "bench-a": {"power": RelayLine(17, active_high=False), "reset": RelayLine("GPIO27")}
    }


def test_pcu_overrides_known_classes_only(tmp_path: Path) -> None:
    """derived.pcu overrides factors of known vehicle classes; others are unknown keys."""
    text = MINIMAL + "[derived.pcu]\nmotorbikes = 0.25\nbicycles = 0.2\n"
    assert problems_by_key(write(tmp_path, text)) == {"derived.pcu.bicycles": (9, "unknown key")}
    config = load_config(write(tmp_path, MINIMAL + "[derived.pcu]\nmotorbikes = 0.25\n"))
    assert config.derived.pcu == {"motorbikes": 0.25}


def test_pm_correction_is_epa_2021_none_or_a_problem(tmp_path: Path) -> None:
    """derived.pm_correction defaults to "epa-2021", takes "none", and names the choices
    for anything else."""
    assert load_config(write(tmp_path, MINIMAL)).derived.pm_correction == "epa-2021"
    text = MINIMAL + '[derived]\npm_correction = "none"\n'
    assert load_config(write(tmp_path, text)).derived.pm_correction == "none"
    problems = problems_by_key(write(tmp_path, MINIMAL + '[derived]\npm_correction = "lrapa"\n'))
    assert problems == {"derived.pm_correction": (8, '"lrapa" is not one of "epa-2021", "none"')}


def test_ble_backend_is_default_or_an_installed_provider(tmp_path: Path) -> None:
    """[ble] backend is "default" or "package.module:Name" of an installed module: the old
    "bumble" and a module that is not there are problems; the rig's provider loads."""
    refused = {"bumble": '"bumble" is not "default" nor "package.module:Name"',
               "no_such_package.radio:Backends": "module no_such_package.radio is not installed",
               "streetsense.no_such_module:Backends": "module streetsense.no_such_module is not "
                                                      "installed"}  # fmt: skip
    for backend, message in refused.items():
        text = MINIMAL + f'[ble]\nenabled = true\nbackend = "{backend}"\n'
        assert problems_by_key(write(tmp_path, text)) == {"ble.backend": (9, message)}
    settings = gateway_settings("tcp-client:127.0.0.1:1234")
    path = tmp_path / "gateway.toml"
    path.write_text(MINIMAL + to_toml({"ble": {"enabled": True, **settings}}))
    assert load_config(path).ble == BleSection(enabled=True, **settings)


def test_hil_harness_config_loads(tmp_path: Path) -> None:
    """The config the HIL harness generates (quoted keys, to_toml) is valid."""
    (tmp_path / "registry.toml").touch()
    document = {
        "registry_path": str(tmp_path / "registry.toml"),
        "gateway": {"id": "gw-hil", "site": "bench", "data_dir": str(tmp_path / "data")},
        "mqtt": {"url": "mqtt://127.0.0.1:1999", "keepalive_s": 2},
        "health": {"interval_s": 1},
        "serial": [{"path": "/dev/pts/7", "name": "n1", "baud": 115200}],
    }
    path = tmp_path / "gateway.toml"
    path.write_text(to_toml(document))
    config = load_config(path)
    assert config.mqtt.keepalive_s == 2 and config.serial[0].name == "n1"
    document["mqtt"] = {"url": "mqtt://127.0.0.1:1999", "keepalive": 2}
    path.write_text(to_toml(document))
    assert [(p.key, p.line) for p in check_config(path)] == [("mqtt.keepalive", 10)]


def example_keys() -> set[str]:
    """Every option of the example (commented ones too), in the docs' notation."""
    text = "\n".join(
        re.sub(r"^# ?((?:\[\[?[\w.-]+\]\]?)|(?:\w+ = .*))$", r"\1", line)
        for line in EXAMPLE.read_text().splitlines()
    )
    keys: set[str] = set()

    def walk(prefix: str, value: object) -> None:
        parts = prefix.split(".")
        placeholders = {"relays": "<port>", "pcu": "<class>", "backend_options": "<option>"}
        if parts[:2] in (["hil", "relays"], ["derived", "pcu"], ["ble", "backend_options"]) \
                and len(parts) > 2:
            parts[2] = placeholders[parts[1]]
        relay_line = parts[:2] == ["hil", "relays"] and len(parts) == 4
        if isinstance(value, dict) and not relay_line:
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                walk(f"{prefix}[]", item)
        else:
            keys.add(".".join(parts))

    walk("", tomllib.loads(text))
    return keys


def test_docs_reference_lists_every_option() -> None:
    """docs/gateway.md's reference table has exactly the options of the example config."""
    docs = (EXAMPLE.parents[1] / "docs" / "gateway.md").read_text()
    reference = docs.split("## Configuration reference", 1)[1]
    documented = set(re.findall(r"^\| `([^`]+)` \|", reference, flags=re.MULTILINE))
    assert documented == example_keys()


def test_mqtt_urls_list_a_clusters_members(tmp_path: Path) -> None:
    """`[mqtt] urls` lists a broker cluster's members in the order they are tried; `url` is
    the first, and a single `url` is the one member."""
    config = load_config(write(tmp_path, MINIMAL.replace(
        'url = "mqtt://broker.example:1884"',
        'urls = ["mqtt://c1.example:1884", "mqtt://c2.example", "mqtt://10.0.0.3:1885"]')))
    assert config.mqtt.members == ("mqtt://c1.example:1884", "mqtt://c2.example",
                                   "mqtt://10.0.0.3:1885")
    assert config.mqtt.addresses == (("c1.example", 1884), ("c2.example", 1883),
                                     ("10.0.0.3", 1885))
    assert config.mqtt.url == "mqtt://c1.example:1884"
    single = load_config(write(tmp_path, MINIMAL))
    assert single.mqtt.addresses == (("broker.example", 1884),)


@pytest.mark.parametrize(("mqtt", "message"), [
    ('url = "mqtt://a"\nurls = ["mqtt://b"]', "give url (one broker) or urls"),
    ("urls = []", "must be a non-empty list of strings, not an array"),
    ('urls = ["mqtt://a", 7]', "must be a non-empty list of strings, not an array"),
    ('urls = ["mqtt://a", "http://b"]', '"http://b" is not mqtt://host[:port]'),
    ('urls = ["mqtt://a", "mqtts://b"]', "mixes mqtt:// and mqtts://"),
    ('urls = ["mqtt://a:1", "mqtt://a:1"]', '"mqtt://a:1" is listed twice'),
    ('urls = ["mqtt://a"]\nca_file = "ca.pem"', "TLS files are set: use an mqtts:// url"),
])  # fmt: skip
def test_mqtt_urls_problems(tmp_path: Path, mqtt: str, message: str) -> None:
    """A bad member list is reported on `mqtt.urls` with its line, like any other problem."""
    (tmp_path / "ca.pem").touch()
    path = write(tmp_path, f'[gateway]\nid = "gw-01"\nsite = "hanoi"\n\n[mqtt]\n{mqtt}\n')
    found = [(p.key, p.message) for p in check_config(path)]
    assert ("mqtt.urls", next(m for k, m in found if message in m)) in found, found
