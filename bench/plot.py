#!/usr/bin/env python3
"""Draw one PNG from a bench/run results file (RESULTS-*.json).

    bench/plot.py bench/results/RESULTS-2026-11-23.json out.png

Four panels, one bar group per system: download/upload throughput, new-stream
latency, the concurrent-streams test (p50 and p99), and CPU seconds per GiB
(client and server side). Bars are medians; whiskers span min-max over the
runs. bench/run calls this with matplotlib from a venv under ~/.cache.
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402

COLORS = ["#3465a4", "#73d216", "#f57900", "#75507b", "#c17d11", "#cc0000"]


def measured(systems):
    """The systems that ran (skipped ones have no numbers)."""
    return [(name, s) for name, s in systems.items() if s.get("status") != "skipped"]


def series(stats):
    """(median, lower error, upper error) of a {median,min,max} object, or None."""
    if not stats:
        return None
    m = stats["median"]
    return m, m - stats["min"], stats["max"] - m


def label_of(y):
    """Three significant digits, never in exponent form."""
    return f"{y:.0f}" if y >= 100 else f"{y:.3g}"


def bars(ax, names, groups, ylabel, title, log=False):
    """groups: [(label, [value or (median, err_lo, err_hi) or None per system])]."""
    width = 0.8 / max(len(groups), 1)
    for gi, (label, values) in enumerate(groups):
        xs, ys, lo, hi = [], [], [], []
        for i, v in enumerate(values):
            if v is None:
                continue
            if isinstance(v, tuple):
                y, e_lo, e_hi = v
            else:
                y, e_lo, e_hi = v, 0.0, 0.0
            xs.append(i + (gi - (len(groups) - 1) / 2) * width)
            ys.append(y)
            lo.append(e_lo)
            hi.append(e_hi)
        if not xs:
            continue
        rects = ax.bar(
            xs,
            ys,
            width,
            yerr=[lo, hi] if any(lo) or any(hi) else None,
            capsize=3,
            label=label,
            color=COLORS[gi % len(COLORS)],
        )
        ax.bar_label(rects, labels=[label_of(y) for y in ys], fontsize=7, padding=2)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=8, rotation=15)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)
    if len(groups) > 1:
        ax.legend(fontsize=8)


def cpu(s, key):
    per = s.get("cpu_s_per_gib") or {}
    return per.get(key)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot.py RESULTS.json OUT.png")
    with open(sys.argv[1], encoding="utf-8") as f:
        results = json.load(f)
    systems = measured(results["systems"])
    names = [s["short"] for _, s in systems]
    cfg, machine = results["config"], results["machine"]

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    bars(
        axes[0][0],
        names,
        [
            ("download", [series(s.get("download_mbps")) for _, s in systems]),
            ("upload", [series(s.get("upload_mbps")) for _, s in systems]),
        ],
        "MB/s (10^6 bytes/s)",
        f"Bulk throughput, {cfg['size_mib']} MiB x {cfg['runs']} (higher is better)",
    )
    bars(
        axes[0][1],
        names,
        [
            ("1 KiB fetch", [series(s.get("latency_ms")) for _, s in systems]),
            (
                "optimistic open",
                [series(s.get("latency_fast_ms")) for _, s in systems],
            ),
        ],
        "ms (log scale)",
        f"New-stream latency, {cfg['latency_samples']} fetches (lower is better)",
        log=True,
    )
    streams = [(s.get("streams") or {}).get("latency_ms") or {} for _, s in systems]
    bars(
        axes[1][0],
        names,
        [
            ("p50", [st.get("p50") for st in streams]),
            ("p99", [st.get("p99") for st in streams]),
        ],
        "ms (log scale)",
        f"{cfg['streams']} concurrent streams: per-stream time (lower is better)",
        log=True,
    )
    bars(
        axes[1][1],
        names,
        [
            ("client, download", [cpu(s, "client_download") for _, s in systems]),
            ("server, download", [cpu(s, "server_download") for _, s in systems]),
            ("client, upload", [cpu(s, "client_upload") for _, s in systems]),
            ("server, upload", [cpu(s, "server_upload") for _, s in systems]),
        ],
        "CPU seconds per GiB",
        "CPU per GiB moved (lower is better)",
    )
    fig.suptitle(
        f"httvps benchmark, {machine['date']}: {machine['cores']} cores, {machine['cpu']}; "
        f"load {machine['loadavg_start']}; git {machine['git']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
