#!/usr/bin/env python3
"""Charts of `socialdb-bench social` (issue 9) from the social-<scale>.json files it writes.

    python3 scripts/plot-social.py DIR

Reads every DIR/social-*.json (one per scale run with --plot DIR) and writes into DIR:
  social-throughput-<scale>.png  ops/s by mix and client count, socialdb vs SQLite (log scale)
  social-latency-<scale>.png     latency CDFs (quantile vs microseconds) per mix
  social-scale.png               the scale sweep: throughput, peak RSS, disk per tweet, by users
Needs matplotlib (pip install matplotlib).
"""
import glob
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"socialdb": "#1f77b4", "sqlite": "#ff7f0e"}
ORDER = ["small", "medium", "large"]


def load(directory):
    runs = {}
    for path in glob.glob(os.path.join(directory, "social-*.json")):
        with open(path) as f:
            data = json.load(f)
        runs[data["scale"]] = data
    return runs


def rows_by_system(run):
    return {r["system"]: r for r in run["reports"]}


def throughput(run, out):
    systems = rows_by_system(run)
    labels = []
    for row in systems["socialdb"]["rows"]:
        label = f'{row["mix"]}\n{row["clients"]} client{"s" if row["clients"] > 1 else ""}'
        if label not in labels:
            labels.append(label)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.38
    for k, system in enumerate(["socialdb", "sqlite"]):
        values = []
        for label in labels:
            mix, clients = label.split("\n")
            n = int(clients.split()[0])
            match = [r for r in systems[system]["rows"] if r["mix"] == mix and r["clients"] == n]
            values.append(match[0]["opsPerSecond"] if match else 0)
        xs = [i + (k - 0.5) * width for i in range(len(labels))]
        bars = ax.bar(xs, values, width, label=system, color=COLORS[system])
        for x, v in zip(xs, values):
            if v > 0:
                ax.annotate(f"{v:,.0f}", (x, v), ha="center", va="bottom", fontsize=7)
        del bars
    ax.set_yscale("log")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("operations per second (log)")
    ax.set_title(f'social workload, {run["scale"]}: {run["users"]:,} users, {run["follows"]:,} follows, '
                 f'{run["tweets"]:,} tweets ({run["uptime"]})', fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def latency(run, out):
    systems = rows_by_system(run)
    mixes = [r for r in systems["socialdb"]["rows"] if r["cdf"]]
    if not mixes:
        return
    cols = min(3, len(mixes))
    rows = (len(mixes) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for i, row in enumerate(mixes):
        ax = axes[i // cols][i % cols]
        for system in ["socialdb", "sqlite"]:
            match = [r for r in systems[system]["rows"] if r["mix"] == row["mix"] and r["clients"] == row["clients"]]
            if not match or not match[0]["cdf"]:
                continue
            q = [p[0] for p in match[0]["cdf"]]
            us = [max(p[1], 0.01) for p in match[0]["cdf"]]
            ax.plot(us, q, marker=".", label=system, color=COLORS[system])
        ax.set_xscale("log")
        ax.set_xlabel("latency, microseconds (log)", fontsize=8)
        ax.set_ylabel("fraction of operations", fontsize=8)
        ax.set_title(f'{row["mix"]}, {row["clients"]} client{"s" if row["clients"] > 1 else ""}', fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for j in range(len(mixes), rows * cols):
        axes[j // cols][j % cols].axis("off")
    fig.suptitle(f'latency CDFs, {run["scale"]} ({run["uptime"]})', fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def sweep(runs, out):
    scales = [s for s in ORDER if s in runs]
    if not scales:
        return
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    users = [runs[s]["users"] for s in scales]
    for system in ["socialdb", "sqlite"]:
        dsb, rss, disk = [], [], []
        for s in scales:
            report = rows_by_system(runs[s])[system]
            best = [r["opsPerSecond"] for r in report["rows"] if r["mix"] == "dsb"]
            dsb.append(max(best) if best else 0)
            rss.append(report["peakRSS"] / 1e6)
            disk.append((report["diskAfterTweets"] - report["diskAfterGraph"]) / max(1, report["tweets"]))
        axes[0].plot(users, dsb, marker="o", label=system, color=COLORS[system])
        axes[1].plot(users, rss, marker="o", label=system, color=COLORS[system])
        axes[2].plot(users, disk, marker="o", label=system, color=COLORS[system])
    for ax, title in zip(axes, ["dsb ops/s (best client count)", "peak RSS, MB", "disk bytes per tweet"]):
        ax.set_xscale("log")
        ax.set_xlabel("users (log)")
        ax.set_title(title, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_yscale("log")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    directory = sys.argv[1]
    runs = load(directory)
    if not runs:
        print(f"no social-*.json in {directory}")
        return 1
    for scale, run in runs.items():
        throughput(run, os.path.join(directory, f"social-throughput-{scale}.png"))
        latency(run, os.path.join(directory, f"social-latency-{scale}.png"))
    sweep(runs, os.path.join(directory, "social-scale.png"))
    print(f"wrote charts for {', '.join(sorted(runs, key=lambda s: ORDER.index(s) if s in ORDER else len(ORDER)))} into {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
