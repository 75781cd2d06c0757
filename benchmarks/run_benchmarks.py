"""Run the benchmark suites once and write the results: JSON (raw + summary), a Markdown table of
ratios measured side by side, and a plot.

    python benchmarks/run_benchmarks.py [--suite SUITE|all] [-k EXPR]

SUITE: fused_loss (default), fused_upsample, attack_e2e, attack_e2e_gpu (CUDA only), attack_step,
evaluation_speed.

Results go to ``benchmarks/results/<suite>/<device>/``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import torch

from fastsegadv.evaluation.report import markdown_table

HERE = Path(__file__).resolve().parent
SUITES = ("fused_loss", "fused_upsample", "attack_e2e", "attack_e2e_gpu", "attack_step", "evaluation_speed")


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} ({torch.get_num_threads()} threads)"


def commit_id() -> str:
    """The commit, without requiring git (a lent GPU machine may have none): git if it answers, else
    ``FASTSEGADV_COMMIT``, else "unknown"."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except OSError:
        pass
    return os.environ.get("FASTSEGADV_COMMIT", "unknown")


def summarise_e2e(raw: dict) -> list[dict]:
    """Attack suite: per-iteration ms (fastest call / steps: on this shared machine the minimum is the
    stable statistic; the median moves by ±20 % between runs) and its ratio to the bare
    forward+input-backward."""
    runs = [(b["stats"]["min"], b["extra_info"]) for b in raw["benchmarks"]
            if b["extra_info"].get("suite") == "attack_e2e"]

    def key(info):  # the bare pass an attack is compared with: same model, input shape and precision
        return info.get("model"), info["shape"], info.get("precision")

    bare = {key(info): t / info["steps"] for t, info in runs if info["provider"].split()[0] == "bare"}
    rows = []
    for t, info in runs:
        per_iter = t / info["steps"]
        row = {"suite": "attack_e2e", "shape": info["shape"], "mode": info["mode"], "provider": info["provider"],
               "per_iter_ms": 1e3 * per_iter}
        if info.get("model"):
            row["model"] = info["model"]
        if key(info) in bare:
            row["x_bare"] = per_iter / bare[key(info)]
        rows.append(row)
    return sorted(rows, key=lambda r: (r["mode"], r["provider"]))


def summarise(raw: dict) -> list[dict]:
    med = defaultdict(dict)
    for b in raw["benchmarks"]:
        info = b["extra_info"]
        if info.get("suite") == "attack_e2e":
            continue
        med[(info["shape"], info.get("mode", "-"))][info["provider"]] = (b["stats"]["median"], info)
    rows = []
    for (shape, mode), prov in med.items():
        if mode == "-":  # the memory-limit baselines themselves (copy_, clone): time, GB/s, peak
            for name, (t, info) in prov.items():
                row = {"shape": shape, "mode": "-", "provider": name, "median_ms": 1e3 * t,
                       "GB/s": info["bytes"] / t / 1e9}
                if "peak_bytes" in info:
                    row["peak_MiB"] = info["peak_bytes"] / 2**20
                rows.append(row)
            continue
        clone = med.get((shape, "-"), {}).get("clone", (None, None))[0]
        copy = med.get((shape, "-"), {}).get("copy_", (None, None))[0]
        for name, (t, info) in prov.items():
            row = {"shape": shape, "mode": mode, "provider": name, "median_ms": 1e3 * t}
            if "bytes" in info:
                row["GB/s"] = info["bytes"] / t / 1e9
            if clone:
                row["x_clone"] = t / clone
            if copy:
                row["x_copy"] = t / copy
            for other in ("reference", "compiled", "upsample+fused", "op"):
                if other in prov and other != name:
                    row[f"speedup_vs_{other}"] = prov[other][0] / t
            if "peak_bytes" in info:
                row["peak_MiB"] = info["peak_bytes"] / 2**20
            rows.append(row)
    return rows


def markdown(rows: list[dict], header: str) -> str:
    e2e = [r for r in rows if r.get("suite") == "attack_e2e"]
    rows = [r for r in rows if r.get("suite") != "attack_e2e"]
    text = _table(rows, header) if rows else header + "\n"
    if e2e:
        lines = [
            "",
            "## Attack iterations on the shipped model (per-iteration ms, fastest of the rounds; "
            "x_bare = / bare forward+input-backward)",
            "",
            "| shape | attack | provider | per_iter_ms | x_bare |",
            "|---|---|---|---|---|",
        ]
        for r in e2e:
            lines.append(
                f"| {r['shape']} | {r['mode']} | {r['provider']} | {r['per_iter_ms']:.2f} | "
                f"{r.get('x_bare', float('nan')):.2f} |"
            )
        text += "\n".join(lines) + "\n"
    return text


def _table(rows: list[dict], header: str) -> str:
    cols = [
        "shape",
        "mode",
        "provider",
        "median_ms",
        "GB/s",
        "x_copy",
        "x_clone",
        "speedup_vs_reference",
        "speedup_vs_compiled",
        "speedup_vs_upsample+fused",
        "speedup_vs_op",
        "peak_MiB",
    ]
    cols = [c for c in cols if any(c in r for r in rows)]
    ordered = sorted(rows, key=lambda r: (r["shape"], r["mode"], r["provider"]))
    return header + "\n\n" + markdown_table([{c: r.get(c, "") for c in cols} for r in ordered], digits=2)


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = sorted({r["shape"] for r in rows if "x_copy" in r})
    provs = sorted({r["provider"] for r in rows if "x_copy" in r})  # one colour per provider in every panel
    colours = {p: f"C{i}" for i, p in enumerate(provs)}
    fig, axes = plt.subplots(1, len(shapes), figsize=(5 * len(shapes), 4), squeeze=False)
    for ax, shape in zip(axes[0], shapes):
        sub = [r for r in rows if r["shape"] == shape and "x_copy" in r]
        modes = sorted({r["mode"] for r in sub})
        width = 0.8 / len(provs)
        for i, p in enumerate(provs):
            vals = [next((r["x_copy"] for r in sub if r["mode"] == m and r["provider"] == p), 0) for m in modes]
            ax.bar([k + i * width for k in range(len(modes))], vals, width, label=p, color=colours[p])
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.axhline(3.0, color="r", lw=0.8, ls=":")  # issue 14's CPU target: within 3x a copy_
        ax.set_xticks([k + 0.4 - width / 2 for k in range(len(modes))], modes, rotation=30)
        ax.set_yscale("log")
        ax.set_title(shape)
        ax.set_ylabel("forward+backward time / copy_ of the logits")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[p]) for p in provs]
    axes[0][0].legend(handles, provs)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_e2e(rows: list[dict], path: Path, title: str) -> None:
    """Per-iteration time of each attack / provider as a multiple of the bare forward+input-backward."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["provider"] != "bare" and "x_bare" in r]
    labels = [f"{r['mode']}\n{r['provider']}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(rows)), 4))
    colours = ["tab:blue" if r["provider"] == "fastsegadv" else "tab:orange" for r in rows]
    ax.bar(range(len(rows)), [r["x_bare"] for r in rows], color=colours)
    ax.axhline(1.0, color="k", lw=1)
    ax.axhline(1.15, color="grey", ls="--", lw=1, label="1.15 x bare (target)")
    ax.set_xticks(range(len(rows)), labels, fontsize=7)
    ax.set_ylabel("per-iteration time / (forward + input backward)")
    ax.set_title(f"Attack iterations, {title}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--suite", default="fused_loss", choices=[*SUITES, "all"],
                    help="which benchmark file to run (default fused_loss); all: every suite")
    ap.add_argument("-k", default=None, help="pytest -k expression to select benchmarks within the suite")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="results/<suite>/<device>/ is written")
    ap.add_argument("--replot", type=Path, default=None, help="redraw the plot and table from a summary.json")
    args = ap.parse_args()
    if args.replot is not None:
        data = json.loads(args.replot.read_text())
        m = data["meta"]
        title = f"{m['device']}, torch {m['torch']}, commit {m['commit']}"
        plot([r for r in data["rows"] if "x_copy" in r], args.replot.parent / "fused_loss.png", title)
        (args.replot.parent / "summary.md").write_text(markdown(data["rows"], f"# Benchmarks: {title}"))
        return 0
    dev = device_name()
    slug = "".join(ch if ch.isalnum() else "_" for ch in dev).strip("_")[:60]
    out = args.out / args.suite / slug
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw_path = Path(tmp) / "raw.json"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            str(HERE) if args.suite == "all" else str(HERE / f"test_{args.suite}.py"),
            "--benchmark-only",
            f"--benchmark-json={raw_path}",
            "-p",
            "no:cacheprovider",
        ]
        if args.k:
            cmd += ["-k", args.k]
        rc = subprocess.call(cmd)
        if not raw_path.exists():  # nothing ran (every case skipped here, e.g. a CUDA suite without a GPU)
            print(f"no benchmark of {args.suite} ran here (pytest exit {rc}); nothing written")
            return rc
        raw = json.loads(raw_path.read_text())
    commit = commit_id()
    meta = {"device": dev, "torch": torch.__version__, "python": platform.python_version(), "commit": commit}
    rows = summarise(raw) + summarise_e2e(raw)
    (out / "raw.json").write_text(json.dumps(raw, indent=1))
    (out / "summary.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    title = f"{dev}, torch {meta['torch']}, commit {commit}"
    (out / "summary.md").write_text(markdown(rows, f"# Benchmarks: {title}"))
    if any("x_copy" in r for r in rows):
        plot([r for r in rows if "x_copy" in r], out / "fused_loss.png", title)
    if any(r.get("suite") == "attack_e2e" for r in rows):
        plot_e2e([r for r in rows if r.get("suite") == "attack_e2e"], out / "attack_e2e.png", title)
    print(markdown(rows, f"# Benchmarks: {title}"))
    print(f"wrote {out}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
