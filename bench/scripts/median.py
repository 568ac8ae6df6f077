#!/usr/bin/env python3
"""Median of several `etch-bench compare --json` runs, as a Markdown table.

    python3 bench/scripts/median.py run1.json run2.json run3.json

Each cell is the median over the runs of one engine's figure, with its ratio to etch's median
(above 1: slower or bigger than etch). Also prints the floor and WAL replay medians.
"""
import json
import statistics
import sys

ENGINES = ["etch", "redb", "lmdb", "sqlite", "fjall"]
# Rows in the order etch-bench prints them (its JSON object is sorted by key).
ORDER = [
    "bulk_load_ms", "individual_writes_ms", "batch_writes_ms",
    "commit_1t_us_per_commit", "commit_4t_us_per_commit", "commit_16t_us_per_commit",
    "open_ms", "random_reads_1t_ms", "random_reads_2t_ms", "range_reads_ms", "remove_half_ms",
    "size_after_load_bytes", "size_before_compaction_bytes", "size_after_compaction_bytes",
    "peak_rss_bytes",
]


def fmt(key, value):
    if key.endswith("_bytes"):
        return f"{value / 2**20:.1f} MiB"
    if key.endswith("_us_per_commit"):
        return f"{value:.0f} us"
    if value >= 10_000:
        return f"{value / 1000:.1f} s"
    if value >= 10:
        return f"{value:.0f} ms"
    return f"{value:.2f} ms"


def main(paths):
    runs = [json.load(open(p)) for p in paths]
    present = runs[0]["results"].keys()
    rows = [k for k in ORDER if k in present] + sorted(k for k in present if k not in ORDER)
    print(f"| workload (median of {len(runs)}) | " + " | ".join(ENGINES) + " |")
    print("|---" * (len(ENGINES) + 1) + "|")
    for key in rows:
        med = {e: statistics.median(r["results"][key][e] for r in runs) for e in ENGINES}
        cells = []
        for e in ENGINES:
            cell = fmt(key, med[e])
            if e != "etch":
                cell += f" ({med[e] / med['etch']:.2f}x)"
            cells.append(cell)
        print(f"| {key} | " + " | ".join(cells) + " |")
    floor = {k: statistics.median(r["floor"][k] for r in runs) for k in runs[0]["floor"]}
    replay = {k: statistics.median(r["etch_wal_replay"][k] for r in runs) for k in runs[0]["etch_wal_replay"]}
    print()
    print("floor (median):", {k: round(v, 4) for k, v in floor.items()})
    print("etch WAL replay (median):", replay,
          f"= {replay['records'] / (replay['open_ms'] / 1e3):.0f} records/s,",
          f"{replay['wal_bytes'] / 2**20 / (replay['open_ms'] / 1e3):.0f} MiB/s")


if __name__ == "__main__":
    main(sys.argv[1:])
