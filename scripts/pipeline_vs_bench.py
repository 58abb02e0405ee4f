"""Summarise scripts/pipeline_vs_bench.sh: per pair, the train run's median log-window img/s over the bench's img/s.

    python scripts/pipeline_vs_bench.py OUT_JSONL
"""
import json
import statistics
import sys


def main(path: str) -> None:
    rows = [json.loads(line) for line in open(path) if line.strip()]
    bench = {r["rep"]: r["img_per_s"] for r in rows if r.get("kind") == "bench"}
    train = {r["rep"]: r for r in rows if r.get("kind") == "train"}
    ratios = []
    print("| pair | bench img/s | train img/s, median window (windows) | train / bench |")
    print("|---|---|---|---|")
    for rep in sorted(set(bench) & set(train)):
        windows = train[rep]["window_img_per_s"]
        median = statistics.median(windows)
        ratios.append(median / bench[rep])
        print(f"| {rep} | {bench[rep]:.1f} | {median:.1f} ({', '.join(f'{w:.1f}' for w in windows)}) "
              f"| {ratios[-1]:.2f}x |")
    if ratios:
        print(f"\nmedian train / bench over {len(ratios)} pairs: {statistics.median(ratios):.2f}x "
              f"(pairs: {', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main(sys.argv[1])
