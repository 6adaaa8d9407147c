"""Fixtures for the fleet tests: a 3-node NATS JetStream cluster and a private PostgreSQL
server (a fresh database per test), both real servers on free ports."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from streetsense.hil.nats_cluster import NatsCluster
from streetsense.hil.postgres import Postgres

_databases = itertools.count(1)


@pytest.fixture
def nats_cluster() -> Iterator[NatsCluster]:
    """Three clustered nats-server members with MQTT listeners; a test may kill any of them."""
    with NatsCluster(3) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """One PostgreSQL server for the session (initdb as an unprivileged user)."""
    with Postgres() as server:
        yield server


@pytest.fixture
def pg_url(postgres_server: Postgres) -> str:
    """The URL of a new, empty database on the session's PostgreSQL server."""
    import psycopg

    name = f"fleet_{next(_databases)}"
    with psycopg.connect(postgres_server.url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return postgres_server.url.rsplit("/", 1)[0] + f"/{name}"
