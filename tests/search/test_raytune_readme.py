"""README.md's Ray job recipe, taken from README.md and run as printed against a fresh local
head with token authentication on (Ray 2.60's default), so the README cannot drift from what
works; and bitnas's own message when the token is missing."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import default_sigint

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RECIPE = re.compile(r"<!-- ray-job-recipe -->\n```bash\n(.*?)```\n<!-- /ray-job-recipe -->", re.S)
#: The recipe's placeholders: the head's address and the head's data folder.
HOST, DATA = "HOST:8265", "/data/bitnas"


def readme_recipe() -> str:
    found = RECIPE.findall((ROOT / "README.md").read_text())
    assert len(found) == 1, "README.md must hold one <!-- ray-job-recipe --> bash block"
    recipe: str = found[0]
    return recipe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env(home: Path) -> dict[str, str]:
    """This shell as a new user's: bitnas and ray on PATH, no Ray token or address set, and a
    HOME of its own (the head writes its token to ~/.ray/auth_token; other heads on this
    machine keep theirs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
               RAY_USAGE_STATS_ENABLED="0")  # fmt: skip
    return env


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], int, int]]:
    """`ray start --head` on 127.0.0.1 with Ray's defaults for authentication, stopped by its
    own PID: (environment of a shell on the head's machine, GCS port, dashboard port)."""
    tmp_path = tmp_path_factory.mktemp("head")
    home = tmp_path / "home"
    home.mkdir()
    env = _clean_env(home)
    gcs, dash, client, agent, metrics = (_free_port() for _ in range(5))
    short_tmp = tempfile.mkdtemp(prefix="bnrd", dir="/tmp")  # Unix socket paths are short
    log = (tmp_path / "head.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
         f"--port={gcs}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
         f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent}",
         f"--metrics-export-port={metrics}", "--num-cpus=2", "--disable-usage-stats",
         f"--temp-dir={short_tmp}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=default_sigint,  # it is stopped by SIGINT
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while True:  # the dashboard (the Jobs API) comes up a few seconds after the GCS
            try:
                socket.create_connection(("127.0.0.1", dash), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "head.log").read_text()[-3000:]
                assert time.time() < deadline, "the head's dashboard did not come up"
                time.sleep(0.5)
        yield env, gcs, dash
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)  # `ray start --block` stops what it started
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(short_tmp, ignore_errors=True)


def test_the_recipe_names_the_placeholders_this_test_fills():
    recipe = readme_recipe()
    assert "ray job submit" in recipe and "bitnas run" in recipe
    assert HOST in recipe and DATA in recipe


def test_a_join_ray_refuses_for_want_of_a_token_says_what_to_set(monkeypatch):
    """Ray's own refusal (its AuthenticationError, with Ray's message) becomes one line that
    says where the token comes from, not a Ray traceback. (A driver joining from the head's
    own machine is let in without the token: measured against the head above.)"""
    import ray
    from ray._private.authentication.authentication_constants import (
        TOKEN_AUTH_ENABLED_BUT_NO_TOKEN_FOUND_ERROR_MESSAGE,
    )
    from ray.exceptions import AuthenticationError

    from bitnas.errors import SpecError
    from bitnas.search import ray_cluster

    def refuse(*args: object, **kwargs: object) -> None:
        raise AuthenticationError(TOKEN_AUTH_ENABLED_BUT_NO_TOKEN_FOUND_ERROR_MESSAGE)

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray_cluster, "_reachable", lambda address: None)
    with pytest.raises(SpecError) as e:
        ray_cluster._init_ray("127.0.0.1:6379")
    msg = str(e.value)
    assert "cannot join Ray at 127.0.0.1:6379" in msg
    assert "export RAY_AUTH_TOKEN=$(ray get-auth-token)" in msg and "\n" not in msg
    monkeypatch.setattr(ray, "init", lambda *a, **k: (_ for _ in ()).throw(ConnectionError("x")))
    with pytest.raises(SpecError, match=r"cannot start or join Ray at .*ConnectionError: x"):
        ray_cluster._init_ray("127.0.0.1:6379")


def test_readme_ray_job_recipe_runs_as_printed_against_a_token_auth_head(head, tmp_path):
    env, _, dash = head
    data = tmp_path / "data"
    data.mkdir()
    # Only the placeholders change (the head's address, its data folder), and the study is
    # cut to 2 trials by one flag added at the end of the recipe's last line.
    script = readme_recipe().replace(HOST, f"127.0.0.1:{dash}").replace(DATA, str(data))
    script = script.rstrip("\n") + " --trials 2 --no-progress\n"
    # a head whose dashboard answers may not have its job agent yet: Ray then refuses with
    # "No available agent to submit job, please try again later" and submits nothing, so the
    # recipe is run again, as its user would (seen once in 3 runs of a sibling test)
    deadline = time.time() + 120
    while True:
        p = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        out = p.stdout[-4000:] + p.stderr[-4000:]
        if p.returncode == 0 or "No available agent" not in out or time.time() > deadline:
            break
        time.sleep(2)
    assert p.returncode == 0, out
    assert "succeeded" in out.lower() and "added 2 finished trials" in out, out
    study = optuna.load_study(study_name="digits", storage=f"sqlite:///{data}/digits.db")
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 2 and all(t.user_attrs["backend"] == "ray" for t in done)
