"""A throwaway PostgreSQL server for tests: its own data directory, 127.0.0.1 and a unix
socket in a temporary folder, a password-protected user, started and stopped by its PID.

Debian's `postgresql` package (``.ci/run`` installs it) puts the binaries in
/usr/lib/postgresql/<version>/bin, off PATH; both places are looked in. PostgreSQL refuses
to run as root: as root the server runs as the package's ``postgres`` user (``nobody``
where that user is missing), its folders handed to that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PASSWORD = "pg-s3cret-7f3a"
USER = "bitnas"
DB = "studies"


def binaries() -> Path | None:
    """The folder holding ``initdb`` and ``postgres``, None where PostgreSQL is absent."""
    found = shutil.which("initdb")
    if found and shutil.which("postgres"):
        return Path(os.path.realpath(found)).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(f"{folder}/initdb", os.X_OK) and os.access(f"{folder}/postgres", os.X_OK):
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name).pw_name
    raise RuntimeError("running as root with neither a `postgres` nor a `nobody` user")


class PgServer:
    """``start()``/``stop()`` the server (again: a restart keeps the data); ``url`` names the
    database with its password."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.user = _run_as()
        # not under pytest's tmp_path: that folder is root's alone, the server's user must
        # own its folders
        self.root = Path(tempfile.mkdtemp(prefix="bitnas-pg-"))
        self.data, self.sock = self.root / "data", self.root / "sock"
        self.sock.mkdir()
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.root / "server.log"
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.user is not None:
            pw = pwd.getpwnam(self.user)
            for p in (self.root, self.sock, pwfile):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        subprocess.run(
            [str(bindir / "initdb"), "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}",
             "--auth=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C"],
            check=True, capture_output=True, user=self.user, cwd=self.root, timeout=120,
        )  # fmt: skip
        pwfile.unlink()
        self.start()
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as con:
            con.execute(f"CREATE DATABASE {DB}")

    def dsn(self, db: str = DB) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{db}"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DB}"

    def start(self, timeout: float = 30.0) -> None:
        assert self.proc is None, "already started"
        log = open(self.log, "ab")  # noqa: SIM115 (the server keeps it open)
        self.proc = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(self.data), "-h", "127.0.0.1",
             "-p", str(self.port), "-k", str(self.sock), "-c", "fsync=off",
             "-c", "full_page_writes=off", "-c", "max_connections=200"],
            stdout=log, stderr=subprocess.STDOUT, user=self.user, cwd=self.root,
        )  # fmt: skip
        log.close()
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"PostgreSQL did not start: {self.log.read_text()[-2000:]}"
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster, by its PID): clients are disconnected,
        committed data kept."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGQUIT)
                self.proc.wait(timeout=30)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
