"""CONFIG and COMMAND (SPEC.md §5.10, §5.11) and the provisioning exchange (§6.6).

Every request gets one RESULT. The core knows the interval settings and the commands
`reboot`, `identify` and `factory_reset`; everything else goes to the kind app
(`setting_error`, `reconfigure`, `command`). Values beyond `protocol.limits` (the gateway
checks the same table) are refused with BAD_ARGS before anything else sees them.
"""

import asyncio

from micropython import const

from streetsense.protocol import limits
from streetsense.protocol import messages as m

from . import config as config_file

INTERVALS = ("report_interval_s", "sample_interval_s", "status_interval_s", "retry_max_s")
LINKS = ("serial", "ble")
_IDENTIFY_S = const(10)  # default blinking time of `identify`


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _key_error(value):
    if not isinstance(value, str) or len(value) % 2 or not 32 <= len(value) <= 128:
        return "hex string of 16 to 64 bytes"
    try:
        int(value, 16)
    except ValueError:
        return "not hex"
    return None


class Control:
    def __init__(self, node):
        self.node = node
        self._action = None  # the last reboot/identify/reset/app-command task, kept referenced

    def _start(self, coro):
        self._action = asyncio.create_task(coro)

    def setting_error(self, name, value):
        """Why `value` is not acceptable for `name`, or None."""
        beyond = limits.setting_error(name, value)
        if beyond:
            return beyond
        if name in INTERVALS:
            return None  # within its limits
        if name == "link":
            return None if value in LINKS else "serial or ble"
        if name in ("node_id", "key", "kind"):
            return "set by provisioning (factory_reset first)"
        app = self.node.app
        if app is None:
            return "unknown setting"
        return app.setting_error(name, value)

    def config(self, request, settings):
        node = self.node
        if not node.provisioned:
            self._provision(request, settings)
            return
        errors = []
        for name, value in settings.items():
            error = self.setting_error(name, value)
            if error:
                errors.append(f"{name}: {error}")
        if errors:  # BAD_ARGS applies none of them
            node.result(request, m.RESULT_BAD_ARGS, "; ".join(errors))
            return
        node.config.update(settings)
        config_file.save(node.config)
        if "retry_max_s" in settings:
            node.link.retry_max_ms = settings["retry_max_s"] * 1000
        if node.app is not None:
            node.app.reconfigure()
        node.result(request, m.RESULT_OK, None, settings)

    def _provision(self, request, settings):
        """Factory state: take node_id, key, kind (and any other settings), answer signed
        with the new identity, reset as the provisioned node."""
        node = self.node
        node_id = settings.get("node_id")
        errors = []
        if not _positive_int(node_id) or node_id > 0xFFFFFFFF:
            errors.append("node_id: 1 to 4294967295")
        key_error = _key_error(settings.get("key"))
        if key_error:
            errors.append("key: " + key_error)
        kind = settings.get("kind")
        if not isinstance(kind, str) or not kind:
            errors.append("kind: a node kind")
        for name, value in settings.items():
            if name in INTERVALS or name == "link":
                error = self.setting_error(name, value)
                if error:
                    errors.append(f"{name}: {error}")
        if errors:
            node.result(request, m.RESULT_BAD_ARGS, "; ".join(errors))
            return
        node.config.update(settings)
        config_file.save(node.config)
        node.provision(node_id, settings["key"])
        node.log(m.LOG_INFO, f"provisioned as node {node_id} ({kind})")
        seq = node.result(request, m.RESULT_OK, None, {"node_id": node_id, "kind": kind})
        self._start(node.restart(seq))

    def command(self, request, name, args):
        node = self.node
        beyond = limits.argument_error(name, args)
        if beyond:
            node.result(request, m.RESULT_BAD_ARGS, beyond)
        elif name == "reboot":
            seq = node.result(request, m.RESULT_OK)
            self._start(self._reboot(seq, args.get("delay_s", 0)))
        elif name == "identify":
            self._start(self._blink(args.get("seconds", _IDENTIFY_S)))
            node.result(request, m.RESULT_OK)
        elif name == "factory_reset":
            node.config["node_id"] = 0
            node.config["key"] = ""
            config_file.save(node.config)
            seq = node.result(request, m.RESULT_OK)
            self._start(node.restart(seq, wipe=True))
        else:
            self._app_command(request, name, args)

    def _app_command(self, request, name, args):
        node = self.node
        answer = None if node.app is None else node.app.command(name, args)
        if answer is None:
            node.result(request, m.RESULT_UNKNOWN_COMMAND, "unknown command " + name)
        elif isinstance(answer, tuple):
            node.result(request, answer[0], answer[1], answer[2])
        else:  # a command that takes time answers from a coroutine: the link goes on meanwhile
            self._start(self._answer_later(request, answer))

    async def _answer_later(self, request, pending):
        code, message, data = await pending
        self.node.result(request, code, message, data)

    async def _reboot(self, seq, delay_s):
        await asyncio.sleep(delay_s)
        await self.node.restart(seq)

    async def _blink(self, seconds):
        led = self.node.board.led()
        print(f"I identify {seconds} s")
        for _ in range(seconds * 4):
            led.value(not led.value())
            await asyncio.sleep_ms(250)
        led.value(0)
