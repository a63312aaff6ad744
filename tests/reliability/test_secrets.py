"""No database password from a storage URL in what bitnas prints, raises or stores."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bitnas.errors import StorageError
from bitnas.search.storage import open_storage, redact

SECRET = "s3cr3t-pw"
URL = f"postgresql+psycopg://bitnas:{SECRET}@127.0.0.1:1/studies"  # port 1: nobody answers


def test_redact_masks_the_password_and_keeps_the_rest():
    assert redact(URL) == "postgresql+psycopg://bitnas:***@127.0.0.1:1/studies"
    assert redact("postgresql://bitnas@db/studies") == "postgresql://bitnas@db/studies"
    for url in ("sqlite:///runs/x.db", "journal:///runs/x.log", "not a url"):
        assert redact(url) == url
    said = redact(URL, f"could not connect to {URL} (password {SECRET})")
    assert SECRET not in said and said.count("***") == 2


def test_an_unreachable_database_error_names_it_without_its_password():
    with pytest.raises(StorageError) as e:
        open_storage(URL)
    assert SECRET not in str(e.value) and "bitnas:***@127.0.0.1:1/studies" in str(e.value)


def test_the_cli_error_for_it_shows_no_password():
    p = subprocess.run(
        [sys.executable, "-m", "bitnas", "pareto", "somestudy", "--storage", URL],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode != 0
    assert SECRET not in p.stdout + p.stderr
    assert "***" in p.stderr, p.stderr
