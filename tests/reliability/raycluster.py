"""A Ray cluster on this machine for tests: a head on 127.0.0.1 with token authentication,
and more nodes joined to it, each a `ray start --block` of its own stopped by its PID; and
what a test needs to find a cluster's processes by PID (/proc, Linux)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import default_sigint

RAY = str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RayCluster:
    """``address`` to join it, ``env`` for a process that joins it (the token)."""

    def __init__(
        self, logs: Path, cpus: int = 2, extra: list[str] | None = None, dashboard: bool = False
    ) -> None:
        """``dashboard``: the head runs Ray's dashboard (its Jobs API, for `ray job submit`)
        on 127.0.0.1, at ``self.dashboard`` (an http:// URL)."""
        self.logs = logs
        self.gcs = _free_port()
        self.address = f"127.0.0.1:{self.gcs}"
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
                    "RAY_AUTH_TOKEN": secrets.token_hex(16)}  # fmt: skip
        self.tmp = tempfile.mkdtemp(prefix="bnrc", dir="/tmp")  # Unix socket paths are short
        self.nodes: list[subprocess.Popen[bytes]] = []
        dash = ["--include-dashboard=false"]
        if dashboard:
            port = _free_port()
            self.dashboard = f"http://127.0.0.1:{port}"
            dash = ["--dashboard-host=127.0.0.1", f"--dashboard-port={port}"]
        self._start("head", ["--head", f"--port={self.gcs}", *dash,
                             f"--ray-client-server-port={_free_port()}", *(extra or [])],
                    cpus, {})  # fmt: skip
        self.wait_for_cpus(cpus)
        if dashboard:  # the Jobs API comes up a few seconds after the GCS
            self._wait_for_port(port)

    def _wait_for_port(self, port: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                assert self.nodes[0].poll() is None, self.log_tail()
                assert time.monotonic() < deadline, f"no dashboard on port {port}"
                time.sleep(0.5)

    def _start(self, name: str, args: list[str], cpus: int, resources: dict[str, float]) -> None:
        log = (self.logs / f"ray-{name}.log").open("wb")
        extra = [f"--resources={json.dumps(resources)}"] if resources else []
        proc = subprocess.Popen(
            [RAY, "start", "--block", "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}",
             "--disable-usage-stats", f"--temp-dir={self.tmp}",
             f"--object-store-memory={200 * 2**20}", f"--metrics-export-port={_free_port()}",
             f"--dashboard-agent-listen-port={_free_port()}", *extra, *args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=default_sigint,  # it is stopped by SIGINT
        )  # fmt: skip
        log.close()
        self.nodes.append(proc)

    def add_node(
        self, name: str, cpus: int, resources: dict[str, float]
    ) -> subprocess.Popen[bytes]:
        """A second node of the cluster (on this machine), with ``resources`` of its own."""
        self._start(name, [f"--address={self.address}"], cpus, resources)
        return self.nodes[-1]

    def alive_cpus(self) -> float:
        """The CPUs of the cluster's live nodes, asked by a process of its own (this one
        must not join the cluster: it would stay joined)."""
        code = (f"import ray; ray.init(address={self.address!r}, log_to_driver=False, "
                "logging_level='ERROR'); print(ray.cluster_resources().get('CPU', 0))")  # fmt: skip
        p = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True,
                           text=True, timeout=120)  # fmt: skip
        try:
            return float(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return 0.0

    def wait_for_cpus(self, cpus: float, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.alive_cpus() < cpus:
            for n in self.nodes:
                assert n.poll() is None, self.log_tail()
            assert time.monotonic() < deadline, f"the cluster has no {cpus} CPUs\n{self.log_tail()}"
            time.sleep(1)

    def log_tail(self) -> str:
        return "\n".join(p.read_text()[-1500:] for p in sorted(self.logs.glob("ray-*.log")))

    def stop(self) -> None:
        for proc in reversed(self.nodes):  # joined nodes first, the head last
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGINT)  # `ray start --block` stops what it started
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)  # its own session, started here
        shutil.rmtree(self.tmp, ignore_errors=True)


def procs() -> dict[int, tuple[int, str]]:
    """PID -> (parent PID, command name) of every process (Linux /proc)."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    head, tail = f.read().rsplit(")", 1)
                out[int(d)] = (int(tail.split()[1]), head.split("(", 1)[1])
            except (OSError, IndexError, ValueError):  # gone meanwhile
                pass
    return out


def below(pid: int, table: dict[int, tuple[int, str]]) -> list[int]:
    """Every descendant of `pid` in ``table`` (``procs()``)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, (ppid, _) in table.items() if ppid == parent]
        found += kids
        todo += kids
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie nobody reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
