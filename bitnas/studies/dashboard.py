"""``bitnas dashboard``: optuna-dashboard on a study's storage, with its artifact store wired."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from bitnas.errors import SpecError, StorageError
from bitnas.search.artifacts import open_artifact_store
from bitnas.search.storage import open_storage, redact
from bitnas.studies.study_artifacts import artifact_dir

__all__ = ["DashboardTarget", "resolve_target", "serve"]


@dataclass(frozen=True)
class DashboardTarget:
    """What to serve: a storage URL and the artifact folder (None: no artifacts)."""

    storage_url: str
    artifacts: Path | None


def resolve_target(
    target: str, *, storage: str | None = None, artifacts: str | None = None
) -> DashboardTarget:
    """``target`` is a study file (its storage and [study] artifacts), a storage URL, or a
    SQLite file path. ``storage`` overrides a study file's storage; ``artifacts`` overrides
    the artifact folder (default: the one beside the storage)."""
    configured = ""
    if target.endswith(".toml"):
        from bitnas.studies.loader import load_spec

        spec = load_spec(target)
        url = storage or spec.study.storage
        configured = spec.study.artifacts
    elif "://" in target:
        url = target
    elif Path(target).is_file():
        url = f"sqlite:///{target}"
    else:
        raise SpecError(
            f"`bitnas dashboard` needs a study file (.toml), a storage URL or a SQLite file, "
            f"got {target!r} (no such file)"
        )
    if artifacts is not None:
        folder: Path | None = Path(artifacts)
    elif storage is not None and not target.endswith(".toml"):
        raise SpecError("--storage applies only with a study file; pass the URL as the target")
    else:
        folder = artifact_dir(url, configured)
    return DashboardTarget(url, folder)


class _QuietHandler(WSGIRequestHandler):
    # one log line per request (the page polls every few seconds) would bury the URL
    def log_message(self, format: str, *args: Any) -> None:
        pass


def make_dashboard_server(target: DashboardTarget, host: str, port: int) -> WSGIServer:
    """A bound (not yet serving) HTTP server of optuna-dashboard for ``target``."""
    from optuna_dashboard import wsgi

    storage = open_storage(target.storage_url, create=False)
    store = open_artifact_store(target.artifacts) if target.artifacts is not None else None
    app = wsgi(storage, artifact_store=store)
    try:
        return make_server(host, port, app, handler_class=_QuietHandler)
    except OSError as e:
        raise StorageError(
            f"cannot serve the dashboard on {host}:{port}: {e.strerror or e} (choose another "
            "--port, or --host)"
        ) from None


def serve(target: DashboardTarget, *, host: str, port: int, out: TextIO = sys.stdout) -> None:
    """Serve optuna-dashboard until interrupted; prints its URL once it listens."""
    server = make_dashboard_server(target, host, port)
    bound = server.server_address[1]
    where = f"artifacts in {target.artifacts}" if target.artifacts else "no artifact store"
    print(
        f"optuna-dashboard for {redact(target.storage_url)} ({where}) at "
        f"http://{host}:{bound}/dashboard "
        "(Ctrl-C stops it)",
        file=out,
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
