"""Prints the markdown tables of docs/quantization.md from the JSON that ablation.sh leaves."""
import json
import os
import sys

out = sys.argv[1]


def load(name, kind):
    path = os.path.join(out, f"{name}.{kind}.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):  # not run yet, or still being written
        return None


fp_btcv, fp_chaos = load("fp", "btcv"), load("fp", "chaos")
fp_bench = load("fp", "bench")
fp_bytes = os.path.getsize("assets/models/ct-starter/encoder.onnx")


def row(name, label):
    btcv, chaos, bench, quant = (load(name, k) for k in ("btcv", "chaos", "bench", "quant"))
    if btcv is None or chaos is None:
        return None
    b, c = btcv["overall"]["dice"], chaos["overall"]["dice"]
    cells = [label, f"{100 * b:.2f}", f"{100 * (fp_btcv['overall']['dice'] - b):+.2f}",
             f"{100 * c:.2f}", f"{100 * (fp_chaos['overall']['dice'] - c):+.2f}"]
    size = quant["encoder_bytes"] if quant else fp_bytes
    cells.append(f"{size / 1e6:.2f} MB ({100 * size / fp_bytes:.1f}%)")
    if bench:
        speed = fp_bench["embed"]["p50_ms"] / bench["embed"]["p50_ms"]
        cells.append(f"{bench['embed']['p50_ms']:.1f} ms ({speed:.2f}×)")
    else:
        cells.append("")
    cells.append(f"{quant['self_check_mask_iou']:.3f}" if quant else "")
    return "| " + " | ".join(cells) + " |"


print("| model | BTCV Dice | drop (points) | CHAOS liver Dice | drop (points) | encoder file | encoder p50 | self-check IoU |")
print("|---|---|---|---|---|---|---|---|")
for name, label in [("fp", "FP32"), ("dfq-w8a8", "W8A8"), ("dfq-w6a6", "W6A6"),
                    ("dfq-w4a8", "W4A8"), ("dfq-w4a4", "W4A4")]:
    r = row(name, label)
    if r:
        print(r)
print()
print("Ablation at W4A4 (calibration source × RepQ reparameterization):")
print()
print("| calibration | reparam | BTCV Dice | drop (points) | CHAOS liver Dice | drop (points) | encoder file | encoder p50 | self-check IoU |")
print("|---|---|---|---|---|---|---|---|---|")
for source, label in [("noise", "Gaussian noise"), ("pse-only", "PSE only"),
                      ("dfq", "DFQ-SAM (PSE + label evolution)"), ("real", "real BTCV slices (upper bound)")]:
    for rep, rlabel in [("rep", "yes"), ("norep", "no")]:
        name = "dfq-w4a4" if (source, rep) == ("dfq", "rep") else f"abl-{source}-{rep}-w4a4"
        r = row(name, label)
        if r:
            print(r.replace(f"| {label} |", f"| {label} | {rlabel} |", 1))
print()
print("Per organ (BTCV Dice ×100):")
names = [o["name"] for o in fp_btcv["organs"]]
models = [m for m in ["fp", "dfq-w8a8", "dfq-w6a6", "dfq-w4a8", "dfq-w4a4"] if load(m, "btcv")]
print("| organ | " + " | ".join(models) + " |")
print("|---|" + "---|" * len(models))
for n in names:
    vals = []
    for m in models:
        o = [x for x in load(m, "btcv")["organs"] if x["name"] == n]
        vals.append(f"{100 * o[0]['dice']:.1f}" if o else "")
    print(f"| {n} | " + " | ".join(vals) + " |")
