#!/usr/bin/env bash
# Reproduce the ct-starter bundle end to end:   packaging/model/run_all.sh
#
# Needs ../shared/data beside the repository (or LUMEN_DATA=/path/to/data). The schedule is counted
# in steps, so it is the same recipe on any hardware:
#   one CUDA GPU   about 21 minutes on an H100;
#   CPU only       about 40 hours on a 2-core VM (README.md); set LUMEN_TRAIN_SESSION_MIN=110 to pause
#                  each training stage after 110 minutes, then run this script again to continue.
# Every stage can be rerun: finished training runs are skipped, paused ones continue exactly where
# they stopped. Exit status 75 means "paused, run again".
#
# LUMEN_RECIPE_SMOKE=1 runs every stage at a tiny scale (a few steps, a few evaluation slices) into
# .train/smoke/, leaving assets/ and results/ alone: it checks that the recipe runs, nothing more.
set -euo pipefail
cd "$(dirname "$0")"
TRAIN="${LUMEN_TRAIN_DIR:-../../.train}"
export LUMEN_TRAIN_DIR="$TRAIN"

steps=(2120 2128 1000)            # the step counts of the three GPU runs behind the shipped weights
batch=(--batch 128)
bundle=../../assets/models/ct-starter
results=results
ckpt="$TRAIN"
eval_args=()
if [[ "${LUMEN_RECIPE_SMOKE:-0}" == 1 ]]; then
    steps=(3 3 3)
    batch=(--batch 8)
    ckpt="$TRAIN/smoke"
    bundle="$TRAIN/smoke/bundle"
    results="$TRAIN/smoke/results"
    eval_args=(--max-slices 2)
fi
device=(--device "$(python3 -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')")
if [[ "${device[1]}" == cpu ]]; then
    batch+=(--micro-batch 16)     # ~6 GiB peak on the CPU; a whole batch of 128 would not fit
    # glibc would hand the big activation buffers back to the kernel every step, and the page faults
    # on fresh ones cost a fifth of the step time; keep them.
    export MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736
fi
pause=()
[[ -n "${LUMEN_TRAIN_SESSION_MIN:-}" ]] && pause=(--stop-after-minutes "$LUMEN_TRAIN_SESSION_MIN")

train() {  # train.py, passing on a pause (exit 75) as this script's own
    local rc=0
    python3 train.py "${device[@]}" "${batch[@]}" "${pause[@]}" "$@" || rc=$?
    if [[ $rc == 75 ]]; then echo "training paused; run $0 again to continue"; exit 75; fi
    return $rc
}

if [[ ! -f "$TRAIN/train.npz" || ! -f "$TRAIN/val.npz" || ! -f "$TRAIN/window.json" ]]; then
    python3 prepare_data.py                               # window estimate + {train,val}.npz
fi
train --steps "${steps[0]}" --lr 1e-3 --warmup 250 --out "$ckpt/run1"
train --resume "$ckpt/run1" --steps "${steps[1]}" --lr 5e-4 --warmup 100 --seed 20261127 --out "$ckpt/run2"
train --resume "$ckpt/run2" --steps "${steps[2]}" --lr 4e-4 --warmup 80 --seed 20261128 --out "$ckpt/final"
python3 export.py --ckpt "$ckpt/final" --out "$bundle" --results "$results"   # ONNX + ORT-vs-torch check
python3 evaluate.py --bundle "$bundle" --out "$results/eval.json" "${eval_args[@]}"  # DESIGN.md §4, onnxruntime
python3 export.py --manifest-only --out "$bundle" --results "$results"         # measured accuracy -> model.toml
echo "bundle: $bundle"
