"""A private PostgreSQL server for tests: ``initdb`` in a temporary folder, on a free port.

The city's database that ``streetsense store`` writes into, as a real server (Debian's
``postgresql`` package gives ``initdb`` and ``postgres`` under ``/usr/lib/postgresql/*/bin``).
``initdb`` refuses to run as root, so as root the cluster belongs to an unprivileged user
(``postgres`` if the machine has it, else ``nobody``) and the server runs as that user.
It listens on 127.0.0.1 only, with trust authentication for its one role ``streetsense``;
its socket folder is its own, so it never meets the machine's own server.

`Postgres` is a `ServerProcess`: ``stop()`` is a fast shutdown (SIGINT), ``kill()`` a crash
(SIGKILL of the postmaster), ``start()`` again recovers from the WAL on the same port.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from streetsense.loopback import LOCALHOST, free_port

from .broker import BrokerError, ServerProcess

__all__ = ["Postgres", "find_postgres_bin"]

ROLE = "streetsense"
POSTGRES_MISSING = "PostgreSQL is missing: install it with 'sudo apt-get install postgresql'"


def find_postgres_bin() -> Path | None:
    """``$PG_BIN``, else the newest ``/usr/lib/postgresql/<version>/bin`` with ``initdb``."""
    override = os.environ.get("PG_BIN")
    if override:
        return Path(override)
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda path: int(path.parent.parent.name)
                   if path.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


def _unprivileged_user() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise BrokerError("running as root and no unprivileged user (postgres, nobody) to run "
                      "PostgreSQL as")


class Postgres(ServerProcess):
    """A PostgreSQL server of its own: ``with Postgres() as pg: connect(pg.url)``."""

    name = "postgres"
    stop_signal = signal.SIGINT  # fast shutdown: SIGTERM would wait for clients to leave

    def __init__(self, *, bin_dir: Path | None = None, start_timeout_s: float = 30.0) -> None:
        found = bin_dir or find_postgres_bin()
        if found is None or not (found / "initdb").exists():
            raise BrokerError(POSTGRES_MISSING)
        self.bin_dir = found
        # Not under pytest's tmp_path: its folders are private to root, and the server's
        # user must reach its data folder.
        workdir = Path(tempfile.mkdtemp(prefix="streetsense-postgres-"))
        data, port, user = workdir / "data", free_port(), _unprivileged_user()
        if user is not None:
            os.chown(workdir, *user)
        super().__init__(
            [str(found / "postgres"), "-D", str(data), "-p", str(port),
             "-c", f"listen_addresses={LOCALHOST}", "-c", f"unix_socket_directories={workdir}"],
            port, workdir, workdir / "postgres.log", start_timeout_s=start_timeout_s, user=user)
        self._initdb(data)

    def _initdb(self, data: Path) -> None:
        uid, gid = self.user if self.user is not None else (None, None)
        result = subprocess.run(
            [str(self.bin_dir / "initdb"), "-D", str(data), "-U", ROLE, "--auth=trust",
             "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions"],
            capture_output=True, text=True, check=False, user=uid, group=gid,
            extra_groups=[] if gid is not None else None, cwd=self.workdir)
        if result.returncode != 0:
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise BrokerError(f"initdb failed ({result.returncode}):\n{result.stdout}"
                              f"{result.stderr}")

    @property
    def url(self) -> str:
        """``postgresql://streetsense@127.0.0.1:<port>/postgres``."""
        return f"postgresql://{ROLE}@{self.host}:{self.port}/postgres"

    def ready(self) -> bool:
        # Accepting TCP is not enough: during crash recovery it refuses sessions.
        result = subprocess.run(
            [str(self.bin_dir / "pg_isready"), "-q", "-h", self.host, "-p", str(self.port),
             "-U", ROLE, "-d", "postgres", "-t", "1"], check=False)
        return result.returncode == 0
