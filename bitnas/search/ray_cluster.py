"""The Ray backend's settings and cluster: ``[ray]`` of a study file (``RaySettings``), joining
or starting Ray (``_init_ray``), and how many trials the cluster runs at once.

Every failure to reach a cluster is a ``SpecError`` of one line that says what to change: an
address that does not answer fails fast instead of waiting on ``ray.init``, a cluster with
token authentication joined without the token says where the token comes from
(``AUTH_HINT``), and a trial no part of the cluster can host is refused instead of hanging.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

from bitnas.errors import SpecError

__all__ = ["AUTH_HINT", "RaySettings"]


@dataclass(frozen=True)
class RaySettings:
    """[ray] in a study file: where and how trials run on Ray.

    ``address``: "" starts a local Ray with this machine's CPUs (or joins the cluster of a
    ``ray job``), "auto" or HOST:PORT joins a running cluster. ``max_concurrent``: 0 means as
    many as the cluster's CPUs allow at ``cpus_per_trial``. ``max_failures``: how often Tune
    restarts a trial whose worker died before the trial is recorded FAIL.
    """

    address: str = ""
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 0
    max_failures: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.address, str):
            raise SpecError(f"`address` must be a string, got {self.address!r}", field="address")
        for name in ("cpus_per_trial", "gpus_per_trial"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise SpecError(f"`{name}` must be a number >= 0, got {v!r}", field=name)
        if self.cpus_per_trial == 0 and self.gpus_per_trial == 0:
            raise SpecError("a trial needs `cpus_per_trial` or `gpus_per_trial` above 0")
        for name in ("max_concurrent", "max_failures"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise SpecError(f"`{name}` must be an integer >= 0, got {v!r}", field=name)


def _concurrency(settings: RaySettings, cluster: dict[str, float]) -> int:
    """Trials that fit at once: what the user asked, else what every requested resource
    allows. A trial no part of the cluster can host is a SpecError, not a silent hang."""
    fits = []
    for name, key in (("cpus_per_trial", "CPU"), ("gpus_per_trial", "GPU")):
        need = getattr(settings, name)
        have = float(cluster.get(key, 0.0))
        if need > 0:
            if need > have:
                raise SpecError(
                    f"`{name}` is {need:g} but the Ray cluster has {have:g} {key} in all: no "
                    "trial could ever start (lower it in [ray], or add nodes)"
                )
            fits.append(int(have // need))
    return settings.max_concurrent or max(1, min(fits))


def _reachable(address: str) -> None:
    """Fail fast on a HOST:PORT that does not answer (ray.init would wait a long time)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise SpecError(f"no Ray cluster answers at --address {address}: {e}") from None


def _init_ray(address: str) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Tune's SIGINT handler turns Ctrl-C into a normal return of fit(): a run would then
    # look finished; let KeyboardInterrupt through instead
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    # Tune's per-trial CSV/JSON/TensorBoard loggers cost time per trial and duplicate what the
    # study records.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # the newer console output prints status tables even at verbose=0
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    if ray.is_initialized():
        return
    if address and address != "auto":
        _reachable(address)
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        elif os.environ.get("RAY_ADDRESS"):  # inside `ray job submit`: join the job's cluster
            ray.init(log_to_driver=False)
        else:  # a private local Ray on this machine's CPUs, reachable on loopback only
            ray.init(
                log_to_driver=False,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                logging_level=logging.WARNING,
            )
    except Exception as e:  # ConnectionError, RuntimeError, ...: all mean "no cluster there"
        where = address or os.environ.get("RAY_ADDRESS", "a new local Ray")
        if _is_auth_error(e):
            raise SpecError(f"cannot join Ray at {where}: {AUTH_HINT}") from None
        raise SpecError(f"cannot start or join Ray at {where}: {type(e).__name__}: {e}") from None


#: What to do when a cluster with token authentication (Ray 2.60's default for clusters
#: started with `ray start`) is joined from a shell without the token.
AUTH_HINT = (
    "the cluster requires an authentication token (Ray's token authentication, on by default "
    "since Ray 2.60) and this shell has none. On the head's machine run "
    "`export RAY_AUTH_TOKEN=$(ray get-auth-token)` (or `export RAY_AUTH_MODE=token`, which reads "
    "~/.ray/auth_token); elsewhere set RAY_AUTH_TOKEN to the head's token. The same applies "
    "to `ray job submit` (README.md, 'On Ray')"
)


def _is_auth_error(e: BaseException) -> bool:
    text = f"{type(e).__name__}: {e}".lower()
    return "authentication" in text or "auth_token" in text or "unauthenticated" in text
