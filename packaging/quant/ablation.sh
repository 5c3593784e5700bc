#!/usr/bin/env bash
# Reproduces the tables of docs/quantization.md: requantizes a bundled model without patient
# data at several bit widths and calibration sources, evaluates every model with the DESIGN.md §4
# protocol on the held-out BTCV patients, CHAOS CT liver and CHAOS T2 MR, benchmarks the
# encoders, and prints the tables. Run from the repository root after `cargo build --release`:
#
#   bash packaging/quant/ablation.sh                                  # the starter model
#   MODEL=litemedsam EVERY=4 OUT=target/quant-litemedsam bash packaging/quant/ablation.sh
#
# Defaults: MODEL=ct-starter EVERY=2 PRESET=standard. LiteMedSAM calibrates on the synthetic set
# its bundle ships (PRESET=standard); a quantization takes about 5 min there on 2 cores.
#
# Finished steps are kept in $OUT, so an interrupted run resumes.
set -euo pipefail
cd "$(dirname "$0")/../.."
LUMEN=${LUMEN:-target/release/lumen}
MODEL=${MODEL:-ct-starter}
FP=assets/models/$MODEL
OUT=${OUT:-target/quant-ablation}
EVERY=${EVERY:-2}
PRESET=${PRESET:-standard}
DATA=${DATA:-../shared/data}
# BTCV training patients (never the held-out ones) for the real-data upper bound.
REAL=${REAL:-$DATA/btcv_abdomen_ct/sabs_case01.npz,$DATA/btcv_abdomen_ct/sabs_case07.npz,$DATA/btcv_abdomen_ct/sabs_case13.npz,$DATA/btcv_abdomen_ct/sabs_case19.npz}
mkdir -p "$OUT"

evaluate() { # name bundle
  local name=$1 dir=$2
  [ -f "$OUT/$name.btcv.json" ] || "$LUMEN" eval --model "$dir" --data "$DATA/btcv_abdomen_ct" \
    --every "$EVERY" --json "$OUT/$name.btcv.json" > "$OUT/$name.btcv.txt"
  [ -f "$OUT/$name.chaos.json" ] || "$LUMEN" eval --model "$dir" --data "$DATA/chaos_ct_liver" \
    --every "$EVERY" --json "$OUT/$name.chaos.json" > "$OUT/$name.chaos.txt"
  [ -f "$OUT/$name.mr.json" ] || "$LUMEN" eval --model "$dir" --data "$DATA/chaos_t2_mr" \
    --every "$EVERY" --json "$OUT/$name.mr.json" > "$OUT/$name.mr.txt"
}

bench() { # name bundle
  [ -f "$OUT/$1.bench.json" ] || "$LUMEN" bench --model "$2" --runs 30 --json > "$OUT/$1.bench.json"
}

quantize() { # name, then lumen quantize flags
  local name=$1
  shift
  # a row whose reports are kept (copied from packaging/quant/results, say) is not made again
  local done=yes
  for kind in quant btcv chaos mr; do [ -s "$OUT/$name.$kind.json" ] || done=no; done
  # no self-check floor: a table row is measured however bad it is (LiteMedSAM's W4A4 on real
  # slices with RepQ had a self-check IoU of 0.46, under the app's 0.5)
  [ -d "$OUT/$name" ] || [ "$done" = yes ] || "$LUMEN" quantize --model "$FP" --preset "$PRESET" \
    --out "$OUT/$name" --json --min-self-check 0 "$@" > "$OUT/$name.quant.json" 2> "$OUT/$name.quant.log"
  evaluate "$name" "$OUT/$name"
}

evaluate fp "$FP"
bench fp "$FP"
for bits in "8 8" "6 6" "4 8" "4 4"; do
  set -- $bits
  quantize "dfq-w$1a$2" -w "$1" -a "$2"
  bench "dfq-w$1a$2" "$OUT/dfq-w$1a$2"
done
# The ablation at W4A4: calibration source × reparameterization.
for source in noise pse-only dfq "real:$REAL"; do
  label=${source%%:*}
  # DFQ-SAM with reparameterization is dfq-w4a4 above.
  [ "$label" = dfq ] || quantize "abl-$label-rep-w4a4" -w 4 -a 4 --calibration "$source"
  quantize "abl-$label-norep-w4a4" -w 4 -a 4 --calibration "$source" --no-reparam
done
# Mixed precision: RepQ at W4A8, and budgets of 8-bit layers (docs/quantization.md, "Mixed
# precision").
quantize w4a8-rep -w 4 -a 8 --reparam
quantize w4a8-mixed5 -w 4 -a 8 --eight-bit-budget 0.05
quantize w4a8-mixed10 -w 4 -a 8 --eight-bit-budget 0.10
quantize w6a6-mixed5 -w 6 -a 6 --eight-bit-budget 0.05
quantize w4a4-mixed5 -w 4 -a 4 --eight-bit-budget 0.05
python3 packaging/quant/table.py "$OUT" "$FP"
