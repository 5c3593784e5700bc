"""Prints the markdown tables of docs/quantization.md from the JSON that ablation.sh leaves.

    python3 packaging/quant/table.py OUT FP_BUNDLE
"""
import json
import os
import sys

out, fp_dir = sys.argv[1], sys.argv[2]


def load(name, kind):
    path = os.path.join(out, f"{name}.{kind}.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):  # not run yet, or still being written
        return None


SETS = [("btcv", "BTCV"), ("chaos", "CHAOS CT liver"), ("mr", "CHAOS MR")]
fp = {kind: load("fp", kind) for kind, _ in SETS}
fp_bench = load("fp", "bench")
fp_bytes = os.path.getsize(os.path.join(fp_dir, "encoder.onnx"))


def row(name, label):
    bench, quant = load(name, "bench"), load(name, "quant")
    cells = [label]
    for kind, _ in SETS:
        run = load(name, kind)
        if run is None or fp[kind] is None:
            cells += ["", ""]
            continue
        d = run["overall"]["dice"]
        cells += [f"{100 * d:.2f}", f"{100 * (d - fp[kind]['overall']['dice']):+.2f}"]
    if all(c == "" for c in cells[1:]):
        return None
    size = quant["encoder_bytes"] if quant else fp_bytes
    cells.append(f"{size / 1e6:.2f} MB ({100 * size / fp_bytes:.1f}%)")
    if bench:
        speed = fp_bench["embed"]["p50_ms"] / bench["embed"]["p50_ms"]
        cells.append(f"{bench['embed']['p50_ms']:.1f} ms ({speed:.2f}×)")
    else:
        cells.append("")
    cells.append(f"{quant['self_check_mask_iou']:.3f}" if quant else "")
    return "| " + " | ".join(cells) + " |"


def header(first):
    sets = " | ".join(f"{label} Dice | change (points)" for _, label in SETS)
    print(f"| {first} | {sets} | encoder file | encoder p50 | self-check IoU |")
    print("|---" * (len(first.split(" | ")) + 2 * len(SETS) + 3) + "|")


header("model")
for name, label in [("fp", "FP32"), ("dfq-w8a8", "W8A8"), ("dfq-w6a6", "W6A6"),
                    ("dfq-w4a8", "W4A8"), ("dfq-w4a4", "W4A4")]:
    r = row(name, label)
    if r:
        print(r)
print()
print("Ablation at W4A4 (calibration source × RepQ reparameterization):")
print()
header("calibration | reparam")
for source, label in [("noise", "Gaussian noise"), ("pse-only", "PSE only"),
                      ("dfq", "DFQ-SAM (PSE + label evolution)"), ("real", "real BTCV slices (upper bound)")]:
    for rep, rlabel in [("rep", "yes"), ("norep", "no")]:
        name = "dfq-w4a4" if (source, rep) == ("dfq", "rep") else f"abl-{source}-{rep}-w4a4"
        r = row(name, label)
        if r:
            print(r.replace(f"| {label} |", f"| {label} | {rlabel} |", 1))
print()
print("Mixed precision (the costliest layers per weight keep 8-bit weights, --eight-bit-budget):")
print()
header("model")
for name, label in [("w4a8-rep", "W4A8, RepQ"), ("w4a8-mixed5", "W4A8, budget 0.05"),
                    ("w4a8-mixed10", "W4A8, budget 0.10"), ("w6a6-mixed5", "W6A6, budget 0.05"),
                    ("w4a4-mixed5", "W4A4, budget 0.05")]:
    r = row(name, label)
    if r:
        print(r)
print()
print("Per organ (BTCV Dice ×100):")
names = [o["name"] for o in fp["btcv"]["organs"]]
models = [m for m in ["fp", "dfq-w8a8", "dfq-w6a6", "dfq-w4a8", "dfq-w4a4"] if load(m, "btcv")]
print("| organ | " + " | ".join(models) + " |")
print("|---|" + "---|" * len(models))
for n in names:
    vals = []
    for m in models:
        o = [x for x in load(m, "btcv")["organs"] if x["name"] == n]
        vals.append(f"{100 * o[0]['dice']:.1f}" if o else "")
    print(f"| {n} | " + " | ".join(vals) + " |")
