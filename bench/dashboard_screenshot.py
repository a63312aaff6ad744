"""Browser check of `bitnas dashboard`: headless Chromium renders a study's dashboard page, the
rendered DOM must hold the Pareto front plot with its points, the dashboard's best trials must
be the points `bitnas pareto` prints (and be drawn as that many best-trial points), and a
screenshot is written.

Needs Debian's `chromium` (`apt-get install -y chromium`); CI has none, so this is a script and
its screenshot is committed (docs/img/dashboard_pareto.png, see docs/dashboard.md), taken on
the fresh run of the README's first command that scripts/regenerate_docs.py makes:

    python scripts/regenerate_docs.py --keep /tmp/docs
    python bench/dashboard_screenshot.py /tmp/docs/runs/digits.db --study digits \\
        --out docs/img/dashboard_pareto.png --trial-out docs/img/dashboard_trial.png

The dashboard is a React app that fetches the study after load: Chromium's virtual time budget
lets it finish before the DOM is dumped and the screenshot taken. The server is started with
`python -m bitnas dashboard TARGET --port 0` (a free port) and stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PNG = b"\x89PNG\r\n\x1a\n"


def start_dashboard(target: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bitnas", "dashboard", target, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the server prints its URL once it listens
    m = re.search(r"at (http://127\.0\.0\.1:\d+)/dashboard", line)
    if not m:
        proc.kill()
        raise SystemExit(f"the dashboard did not start: {line}{proc.stdout.read()}")
    return proc, m.group(1)


def chromium(browser: str, url: str, *args: str, wait_ms: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",  # root in a container
            "--disable-gpu",
            "--hide-scrollbars",
            f"--virtual-time-budget={wait_ms}",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )


def screenshot(browser: str, url: str, out: Path, size: str, wait_ms: int) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    chromium(browser, url, f"--window-size={size}", f"--screenshot={out}", wait_ms=wait_ms)
    data = out.read_bytes() if out.exists() else b""
    if not data.startswith(PNG):
        raise SystemExit(f"no screenshot of {url} was written to {out}")
    return len(data)


def red_points(section: str) -> int:
    """Points of the plot's reddest trace: the dashboard draws its best trials (the front) in
    a red colour scale, the other trials in a blue one."""
    best, redness = 0, -1e9
    for trace in re.split(r'<g class="trace scatter', section)[1:]:
        fills = re.findall(r'class="point"[^>]*?fill: rgb\((\d+), (\d+), (\d+)\)', trace)
        if fills:
            r = sum(int(f[0]) - int(f[2]) for f in fills) / len(fills)
            if r > redness:
                best, redness = len(fills), r
    return best


def pareto_numbers(storage: str, study: str) -> list[int]:
    """The trial numbers of the front `bitnas pareto` prints (the rows under its dashes)."""
    p = subprocess.run(
        [sys.executable, "-m", "bitnas", "pareto", study, "--storage", storage],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if p.returncode != 0:
        raise SystemExit(f"bitnas pareto {study} --storage {storage} failed:\n{p.stderr}")
    lines = p.stdout.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("-----"))
    return [int(ln.split()[0]) for ln in lines[start + 1 :] if ln.strip()]


def storage_url(target: str) -> str:
    """What `bitnas pareto --storage` takes for the dashboard's TARGET (a SQLite file or URL)."""
    if "://" in target:
        return target
    return f"sqlite:///{Path(target).resolve()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", help="what `bitnas dashboard` takes: SQLite file, URL or study file")
    ap.add_argument("--study", help="study name (default: the first study of the storage)")
    ap.add_argument("--out", default="docs/img/dashboard_pareto.png", type=Path)
    ap.add_argument("--trial-out", type=Path, help="also a screenshot of a Pareto-front trial")
    ap.add_argument("--chromium", default="chromium", help="Chromium executable")
    ap.add_argument("--wait-ms", type=int, default=15_000, help="virtual time for the page")
    args = ap.parse_args()
    browser = shutil.which(args.chromium)
    if browser is None:
        raise SystemExit(f"{args.chromium} not found: apt-get install -y chromium")

    proc, base = start_dashboard(args.target)
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(f"{base}/api/studies", timeout=60) as r:
            studies = json.load(r)["study_summaries"]
        chosen = [s for s in studies if args.study in (None, s["study_name"])]
        if not chosen:
            raise SystemExit(f"no study {args.study!r} in {args.target}")
        sid = chosen[0]["study_id"]
        page = f"{base}/dashboard/studies/{sid}"

        with urllib.request.urlopen(f"{base}/api/studies/{sid}", timeout=60) as r:
            detail = json.load(r)
        complete = sum(t["state"] == "Complete" for t in detail["trials"])
        # the dashboard's Best Trials (its red front points) are the front bitnas pareto prints
        best = sorted(t["number"] for t in detail["best_trials"])
        front = pareto_numbers(storage_url(args.target), chosen[0]["study_name"])
        if best != sorted(front):
            raise SystemExit(
                f"{page}: the dashboard's best trials {best} are not the {len(front)} points "
                f"`bitnas pareto` prints {front}"
            )

        # the check: the rendered page holds the Pareto front plot (the section from its
        # heading to the next one, "History"), with one point per COMPLETE trial
        dom = chromium(browser, page, "--dump-dom", wait_ms=args.wait_ms).stdout
        start = dom.find("Pareto Front")
        section = dom[start : dom.find(">History<", start)] if start >= 0 else ""
        points = len(re.findall(r'class="point"', section))
        if points != complete or complete == 0:
            raise SystemExit(
                f"{page}: the Pareto front plot shows {points} points, the study has "
                f"{complete} COMPLETE trials"
            )
        red = red_points(section)
        if red != len(front):
            raise SystemExit(
                f"{page}: the Pareto front plot shows {red} red (best) points, `bitnas pareto` "
                f"prints {len(front)}"
            )
        size = screenshot(browser, page, args.out, "1400,1000", args.wait_ms)
        print(
            f"{page}: Pareto front plot with all {points} COMPLETE trials, {red} red: its best "
            f"trials = the {len(front)} points of `bitnas pareto` ({', '.join(map(str, front))}); "
            f"{args.out} ({size:,} B)"
        )

        if args.trial_out is not None:
            best = detail["best_trials"]
            if best:
                n = max(best, key=lambda t: t["values"][0])["number"]
                trial_page = f"{page}/trials?numbers={n}"
                size = screenshot(browser, trial_page, args.trial_out, "1400,1300", args.wait_ms)
                print(f"{trial_page}: {args.trial_out} ({size:,} B)")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"done in {time.perf_counter() - t0:.1f} s; dashboard (pid {proc.pid}) stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
