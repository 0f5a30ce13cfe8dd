#!/usr/bin/env bash
# Volley Data pipelines on the benchmark dataset: each pipeline in its own process
# (one warm-up, then N runs; median, min-max, peak RSS of the process).
# Usage: benches/run_data.sh [dir] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-${VOLLEY_BENCH_DIR:-/tmp/volley-bench-data}}"
runs="${2:-3}"
# --workspace (not -p): the same feature set as every other build, so nothing is rebuilt.
cargo build --profile bench --workspace --bins
bin="${CARGO_TARGET_DIR:-target}/release/data_bench"
if [ ! -d "$dir/big" ] || [ ! -d "$dir/small" ]; then
  "$bin" generate "$dir"
fi
for p in count full_scan small_files_scan map_write groupby sort_write; do
  "$bin" run "$p" "$dir" "$runs"
done
