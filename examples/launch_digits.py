"""A launch script: the digits study from Python, with a tighter budget and its own storage.

    python examples/launch_digits.py

It takes the same path as `bitnas run`: load (or build) a spec, run it, read the front.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import bitnas
from bitnas.spaces import Budget

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    spec = bitnas.load_spec(ROOT / "studies" / "digits.toml")
    # Ask the study's question at a tighter budget, in a study of its own.
    spec = dataclasses.replace(spec, budget=Budget(80_000))
    spec = spec.replace(name="digits-80k", storage="sqlite:///runs/digits-80k.db", trials=30)
    result = bitnas.run(spec)
    front = result.front()
    print(front[["number", "val_accuracy", "test_accuracy", "bitops", "timesteps", "summary"]])
    print(f"{len(front)} front points; the study lives in {result.storage_url}")


if __name__ == "__main__":
    main()
