#!/usr/bin/env bash
# Reproduce the ct-starter bundle end to end:   packaging/model/run_all.sh
# Needs ../shared/data beside the repository (or LUMEN_DATA=/path/to/data) and one CUDA GPU for train.py
# (about 21 GPU-minutes on an H100). README.md says how the shipped weights were made, step by step.
set -euo pipefail
cd "$(dirname "$0")"
python3 prepare_data.py                                   # window estimate + .train/{train,val}.npz
python3 train.py --minutes 8.4 --lr 1e-3 --warmup 250 --out ../../.train/run1
python3 train.py --resume ../../.train/run1 --minutes 8.3 --lr 5e-4 --warmup 100 --seed 20261127 --out ../../.train/run2
python3 train.py --resume ../../.train/run2 --minutes 4.2 --lr 4e-4 --warmup 80 --seed 20261128 --out ../../.train/final
python3 export.py --ckpt ../../.train/final               # ONNX + ORT-vs-torch check + model.toml
python3 evaluate.py                                       # DESIGN.md §4 on the held-out data (onnxruntime)
python3 export.py --manifest-only                         # write the measured accuracy into model.toml
