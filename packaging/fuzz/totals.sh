#!/usr/bin/env bash
# Prints, per fuzz target, the executions and seconds summed over every crate's fuzz/runs.tsv, as
# the Markdown table docs/hostile-input.md shows.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
echo "| target | executions | seconds | runs | stopped early |"
echo "|---|---:|---:|---:|---:|"
cat "$repo"/app/*/fuzz/runs.tsv "$repo"/engine/fuzz/runs.tsv 2>/dev/null |
  awk -F'\t' '{
      split($3, t, " "); split($5, e, " ");
      execs[$2] += e[1]; secs[$2] += t[1]; runs[$2]++;
      if ($7 ~ /^stopped/) early[$2]++
    }
    END {
      for (k in execs) printf "| `%s` | %.2f M | %d | %d | %d |\n", k, execs[k] / 1e6, secs[k], runs[k], early[k]
    }' | sort
