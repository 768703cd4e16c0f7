"""RDS instances as real PostgreSQL servers. Each DB instance gets its own cluster
(initdb with the instance's master user, password and database name), TLS required as
with rds.force_ssl, listening on an address of its own; the endpoint name RDS reports
resolves to that address inside every instance (its /etc/hosts). The instance is
`creating` until the creation delay has passed and the server accepts connections."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

from .settings import LOCK, SETTINGS

log = logging.getLogger("localcloud.rds")


def pg_bin() -> str:
    explicit = os.environ.get("PG_BIN")
    if explicit:
        return explicit
    base = "/usr/lib/postgresql"
    for version in sorted(os.listdir(base), reverse=True) if os.path.isdir(base) else []:
        candidate = os.path.join(base, version, "bin")
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql-15, or set PG_BIN")


def as_postgres(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        args = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *args]
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


@dataclass
class Server:
    identifier: str
    address: str
    hostname: str
    data: str
    db: Any
    state: str = "creating"  # creating, starting, available, deleted


class Databases:
    def __init__(self, cloud: Any, state_dir: str):
        self.cloud = cloud
        self.dir = os.path.join(state_dir, "rds")
        os.makedirs(self.dir, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        os.chmod(self.dir, 0o755)
        self.servers: dict[str, Server] = {}
        self.bin = pg_bin()

    def created(self, db: Any) -> None:
        address = self.cloud.net.allocate("database")
        hostname = db.address if isinstance(db.address, str) else str(db.address)
        server = Server(db.db_instance_identifier, address, hostname, os.path.join(self.dir, db.db_instance_identifier), db)
        self.servers[server.identifier] = server
        threading.Thread(target=self._start, args=(server,), daemon=True).start()

    def deleted(self, db: Any) -> None:
        server = self.servers.pop(db.db_instance_identifier, None)
        if server is not None:
            server.state = "deleted"
            threading.Thread(target=self._stop, args=(server,), daemon=True).start()

    def hosts(self) -> dict[str, str]:
        return {s.hostname: s.address for s in self.servers.values()}

    def _start(self, server: Server) -> None:
        db = server.db
        started = time.time()
        try:
            with tempfile.NamedTemporaryFile("w", dir=self.dir, delete=False) as pw:
                pw.write(getattr(db, "_master_user_password", None) or "")
            if os.geteuid() == 0:
                shutil.chown(pw.name, "postgres")
            out = as_postgres(
                [
                    f"{self.bin}/initdb", "-D", server.data, "-U", db.master_username, f"--pwfile={pw.name}",
                    "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                ]
            )
            os.unlink(pw.name)
            if out.returncode != 0:
                raise RuntimeError(out.stderr.strip())
            key, crt = os.path.join(server.data, "server.key"), os.path.join(server.data, "server.crt")
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={server.hostname}",
                 "-keyout", key, "-out", crt],
                check=True, capture_output=True,
            )
            os.chmod(key, 0o600)
            if os.geteuid() == 0:
                shutil.chown(key, "postgres")
                shutil.chown(crt, "postgres")
            with open(os.path.join(server.data, "pg_hba.conf"), "w") as f:
                f.write("local all all trust\nhostssl all all 0.0.0.0/0 scram-sha-256\nhost all all 0.0.0.0/0 reject\n")
            with open(os.path.join(server.data, "postgresql.conf"), "a") as f:
                f.write(
                    f"\nlisten_addresses = '{server.address}'\nport = {db.port}\nssl = on\n"
                    f"unix_socket_directories = '{server.data}'\nmax_connections = 100\nfsync = off\n"
                )
            # RDS takes minutes; the server comes up at the end of the creation delay.
            wait = SETTINGS.delays["rds_create"] - (time.time() - started)
            if wait > 0:
                time.sleep(wait)
            if server.state == "deleted":
                return
            server.state = "starting"
            out = as_postgres([f"{self.bin}/pg_ctl", "-D", server.data, "-l", os.path.join(server.data, "server.log"), "-w", "start"])
            if out.returncode != 0:
                raise RuntimeError(out.stderr.strip() or out.stdout.strip())
            if db.db_name:
                out = as_postgres(
                    [f"{self.bin}/createdb", "-h", server.data, "-p", str(db.port), "-U", db.master_username, "-O", db.master_username, db.db_name]
                )
                if out.returncode != 0:
                    raise RuntimeError(out.stderr.strip())
            with LOCK:
                if server.state != "deleted":
                    db.status = "available"
                    server.state = "available"
            log.info("RDS %s: available at %s:%s after %.1fs", server.identifier, server.address, db.port, time.time() - started)
        except Exception as e:
            log.error("RDS %s: could not start: %s", server.identifier, e)
            with LOCK:
                db.status = "failed"

    def _stop(self, server: Server) -> None:
        if os.path.exists(os.path.join(server.data, "postmaster.pid")):
            as_postgres([f"{self.bin}/pg_ctl", "-D", server.data, "-m", "fast", "-w", "stop"])
        shutil.rmtree(server.data, ignore_errors=True)
        self.cloud.net.release(server.address)

    def close(self) -> None:
        for server in list(self.servers.values()):
            server.state = "deleted"
            self._stop(server)
        self.servers.clear()
