#!/usr/bin/env bash
# Fuzzes one target for a while, resuming from its corpus, and prints its execution count.
#
#   packaging/fuzz/run.sh TARGET SECONDS [JOBS]
#
# TARGET is one of: read_dicom read_nifti discover_tree (app/study), read_seg reimport_nifti
# (app/annotation), read_npz (app/datasets), read_manifest (engine). The corpus lives in the
# crate's `fuzz/corpus/TARGET` (git-ignored, kept on this machine), seeded from the committed
# `fuzz/regressions/TARGET` and, for the readers of real files, from the shared data. Findings land
# in `fuzz/artifacts/TARGET`; once understood and fixed, a finding is copied into
# `fuzz/regressions/TARGET`, which the test suite replays. Needs the nightly toolchain and
# cargo-fuzz (`cargo install cargo-fuzz`). Each run appends a line to fuzz/runs.tsv: date, target,
# seconds it ran, jobs, executions, commit, and whether it ran its time or stopped early.
set -euo pipefail
target=${1:?target}
seconds=${2:?seconds}
jobs=${3:-1}
repo=$(cd "$(dirname "$0")/../.." && pwd)
shared="$repo/../shared/data"
case "$target" in
  read_dicom | read_nifti | discover_tree) crate=app/study ;;
  read_seg | reimport_nifti) crate=app/annotation ;;
  read_npz) crate=app/datasets ;;
  read_manifest) crate=engine ;;
  *) echo "unknown target $target" >&2; exit 2 ;;
esac
fuzz="$repo/$crate/fuzz"
if [ "$crate" = app/study ]; then
  # openjp2 0.6.1 deallocates a null pointer after every JPEG 2000 frame (a triaged third-party
  # finding, docs/hostile-input.md); with the standard library's UB checks every JPEG 2000 input
  # would abort there, so the DICOM crate's targets run without them (ASan stays on)
  export RUSTFLAGS="${RUSTFLAGS:-} -Zub-checks=no"
fi
corpus="$fuzz/corpus/$target"
mkdir -p "$corpus"
cp -n "$fuzz/regressions/$target/"* "$corpus/" 2>/dev/null || true
case "$target" in
  read_dicom) cp -n "$shared"/pydicom_testfiles/MR_small*.dcm "$shared"/pydicom_testfiles/CT_small.dcm "$corpus/" ;;
  read_nifti) ;; # the shared volumes are megabytes: past -max_len, so the small seeds serve
esac
log=$(mktemp)
started=$SECONDS
commit=$(git -C "$repo" rev-parse --short HEAD) # what the run builds, even if HEAD moves meanwhile
cd "$fuzz"
# -max_len 64 KiB: room for a header, a small image and nested sequences; the RSS limit is the
# crafted cases' 2 GiB, the malloc limit what one input may ask at once
parallel=()
if [ "$jobs" -gt 1 ]; then parallel=(-jobs="$jobs" -workers="$jobs"); fi
rm -f fuzz-*.log
cargo +nightly fuzz run "$target" "$corpus" -- \
  -max_len=65536 -rss_limit_mb=2048 -malloc_limit_mb=2048 -max_total_time="$seconds" \
  -print_final_stats=1 "${parallel[@]}" 2>&1 | tee "$log" | grep -E "^#[0-9]+.*DONE" || true
# one process prints its final stats to the run's output; parallel workers each to fuzz-N.log
if [ "$jobs" -gt 1 ]; then stats=(fuzz-*.log); else stats=("$log"); fi
execs=$(grep -h "stat::number_of_executed_units" "${stats[@]}" | awk '{s += $2} END {print s + 0}')
ended="time limit"
if ! grep -q "DONE" "$log" "${stats[@]}"; then
  # ended before its time: a finding (in fuzz/artifacts/TARGET) or the fuzzer's own failure
  ended="stopped early"
  echo "$target stopped early; its output is kept in $log:" >&2
  grep -vE "NEW|REDUCE|pulse|Uses:" "$log" | tail -n 40 >&2
else
  rm -f "$log"
fi
rm -f fuzz-*.log
echo -e "$(date -u +%F)\t$target\t$((SECONDS - started)) s\t$jobs job(s)\t$execs executions\t$commit\t$ended" | tee -a "$repo/$crate/fuzz/runs.tsv"
