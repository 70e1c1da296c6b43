"""Where ``aggregator poll`` spends its time: py-spy over a cold and a warm poll.

    python3 bench/profile.py --feeds 1000 --items 50

Serves the generated set with nginx, then records ``aggregator poll`` under
py-spy twice on a fresh database (cold, then warm = all 304): flame graphs
in bench/out/profile-{cold,warm}.svg, collapsed stacks in
bench/out/profile-{cold,warm}.txt, and a printed summary of the top costs
(self time by function, time by package, inclusive time of the pipeline
steps). Samples are of running threads only (py-spy's default), so they
approximate CPU, not wall.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import genfeeds  # noqa: E402
from nginx import Nginx  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
#: pipeline steps whose inclusive share is worth a line: (label, function or None, file part)
STEPS = [
    ("imports (module loading)", None, "<frozen importlib._bootstrap>"),
    ("load_config", "load_config", "aggregator/config.py"),
    ("open_store (+ migrations)", "open_store", "aggregator/poll.py"),
    ("fetch", "fetch", "aggregator/fetch/"),
    ("parse_feed", "parse_feed", "aggregator/parse/feed.py"),
    ("  feedparser.parse", "parse", "feedparser/api.py"),
    ("  feedparser sanitizer", None, "feedparser/sanitizer.py"),
    ("dedupe_feed", "dedupe_feed", "aggregator/dedupe.py"),
    ("  clean_html (nh3)", "clean_html", "aggregator/sanitize.py"),
    ("known_versions", "known_versions", "aggregator/store/store.py"),
    ("apply_items", "apply_items", "aggregator/store/store.py"),
    ("save_state", "save_state", "aggregator/store/store.py"),
    ("write_outputs", "write_outputs", "aggregator/outputs.py"),
    ("any SQLAlchemy", None, "sqlalchemy/"),
    ("any SQLite call", None, "sqlalchemy/engine/default.py"),
]


def record(cmd: list[str], out: Path, fmt: str, rate: int, timeout: float) -> None:
    """py-spy in its own process group, killed with its child on timeout or Ctrl-C.

    ``--nonblocking``: py-spy does not pause the target per sample; on two busy
    cores the pausing cost more CPU than the poll itself.
    """
    spy = shutil.which("py-spy")
    if not spy:
        sys.exit("py-spy is not installed (pip install py-spy)")
    args = [spy, "record", "--nonblocking", "-r", str(rate), "-f", fmt, "-o", str(out)]
    proc = subprocess.Popen(
        [*args, "--subprocesses", "--", *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        proc.wait(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def package(path: str) -> str:
    """feedparser/sanitizer.py -> feedparser; aggregator/store/items.py -> aggregator.store."""
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    parts = path.replace("\\", "/").split("/")
    if parts[0] == "aggregator" and len(parts) > 2:
        return ".".join(parts[:2])
    if parts[0].startswith("<frozen"):
        return "(import machinery)"
    if path.startswith("/") or len(parts) == 1:
        return "(stdlib) " + parts[-1].removesuffix(".py")
    return parts[0].removesuffix(".py")


def summarize(raw: Path, top: int = 15) -> str:
    self_time: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    steps: Counter[str] = Counter()
    imports: Counter[str] = Counter()
    children: set[str] = set()
    in_child = child_imports = 0
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        raw_frames = stack.split(";")
        child = len(raw_frames) > 1 and raw_frames[1].startswith("process ")
        if child:  # py-spy nests a child's stacks under its parent's "process" frame
            children.add(raw_frames[1].split(":", 1)[0])
            in_child += n
            child_imports += n if "<frozen importlib._bootstrap>" in stack else 0
        frames = [m for m in (_FRAME.match(f) for f in raw_frames) if m]
        if not frames:
            continue
        leaf = frames[-1]
        self_time[f"{leaf['func']} ({leaf['file']})"] += n
        by_package[package(leaf["file"])] += n
        hit = set()
        for m in frames:
            func = m["func"].rsplit(".", 1)[-1]
            for label, want, part in STEPS:
                if part in m["file"] and (want is None or func == want):
                    hit.add(label)
        for label in hit:
            steps[label] += n
        if "imports (module loading)" in hit:
            # charge the import to the first package outside aggregator that was loading
            for m in frames:
                if m["func"] == "<module>" and not m["file"].startswith(("aggregator/", "<")):
                    imports[package(m["file"])] += n
                    break
    if not total:
        return f"{raw}: no samples\n"
    pct = [f"{raw.name}: {total} samples (running threads, all processes)"]
    if children:
        pct.append(
            f"  in {len(children)} child processes: {in_child / total:.1%} "
            f"(of which importing modules: {child_imports / total:.1%})"
        )
    pct.append("  inclusive, by pipeline step:")
    pct += [f"    {steps[label] / total:6.1%}  {label}" for label, _, _ in STEPS if steps[label]]
    pct.append("  imports, by the package being loaded:")
    pct += [f"    {n / total:6.1%}  {name}" for name, n in imports.most_common(8)]
    pct.append("  self time by package:")
    pct += [f"    {n / total:6.1%}  {name}" for name, n in by_package.most_common(top)]
    pct.append("  self time by function:")
    pct += [f"    {n / total:6.1%}  {name}" for name, n in self_time.most_common(top)]
    return "\n".join(pct) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--rate", type=int, default=50, help="samples per second")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--no-svg", action="store_true", help="collapsed stacks only (one run less)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    set_dir = args.out / "sets" / f"{args.feeds}x{args.items}-s{args.seed}"
    manifest = genfeeds.ensure(set_dir, args.feeds, args.items, args.seed)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    state = args.out / "work" / "profile"
    report = []
    with Nginx(set_dir / "feeds") as web:
        for fmt, ext in (("raw", "txt"), ("flamegraph", "svg")):
            if fmt == "flamegraph" and args.no_svg:
                continue
            shutil.rmtree(state, ignore_errors=True)
            state.mkdir(parents=True)
            cfg = state / "aggregator.toml"
            genfeeds.write_aggregator_config(cfg, manifest, web.url, workers=args.workers)
            cmd = [sys.executable, "-m", "aggregator", "poll", "-c", str(cfg)]
            for phase in ("cold", "warm"):
                out = args.out / f"profile-{phase}.{ext}"
                mark = web.log_mark()
                record(cmd, out, fmt, args.rate, args.timeout)
                print(
                    f"{phase} ({fmt}): nginx {dict(web.statuses_since(mark))} -> {out}", flush=True
                )
                if fmt == "raw":
                    report.append(summarize(out))
    text = "\n".join(report)
    print("\n" + text)
    (args.out / "profile-summary.txt").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
