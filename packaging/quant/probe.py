#!/usr/bin/env python3
"""Quick probes of a quantized LiteMedSAM encoder against the FP one, for development.

    probe.py compare     FP.onnx Q.onnx [Q2.onnx ...]
    probe.py bypass      FP.onnx Q.onnx REGEX [REGEX ...]
    probe.py sensitivity FP.onnx Q.onnx

On 8 slices of BTCV *training* patients (02, 08, 14, 20; never the held-out ones), in LiteMedSAM's
CT window: the embedding's relative error ||e_q - e_fp|| / ||e_fp|| and the box Dice of the
bundled decoder over every organ's largest component (a box from its extent). `bypass` removes
the activation Q/DQ pairs whose input tensor matches REGEX ("none" removes none), to find which
quantizers cost accuracy. `sensitivity` keeps one activation quantizer at a time (all others
removed) and ranks them by the embedding error each adds alone, on the CT slices and on 4 slices
of CHAOS T2 MR *training* patients 1 and 13 apart. Minutes on 2 cores; `lumen eval` gives the
held-out numbers.
Needs the model venv (packaging/model/litemedsam/requirements.txt) and the shared data.
"""
import pathlib
import re
import sys

import numpy as np
import onnx
import onnxruntime as ort

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "packaging" / "model" / "litemedsam"))
import reference  # noqa: E402  (the official preprocessing)
from finetune import in_litemedsam_window, label_frame, largest_component, mr_slices  # noqa: E402

CASES = ["sabs_case02", "sabs_case08", "sabs_case14", "sabs_case20"]
DECODER = REPO / "assets" / "models" / "litemedsam" / "decoder.onnx"


def dev_slices():
    """(encoder input, label map in the 256 frame) for two slices of each dev patient."""
    out = []
    for case in CASES:
        d = np.load(reference.DATA / "btcv_abdomen_ct" / f"{case}.npz")
        image = np.rot90(d["image"], 1, axes=(1, 2))
        label = np.rot90(d["label"], 1, axes=(1, 2))
        labelled = [z for z in range(len(label)) if label[z].any()]
        for z in (labelled[len(labelled) // 3], labelled[2 * len(labelled) // 3]):
            grey = in_litemedsam_window(np.ascontiguousarray(image[z]).astype(np.uint8))
            out.append((reference.encoder_input(grey)[0], label_frame(np.ascontiguousarray(label[z]))))
    return out


def mr_dev_slices():
    """(encoder input, None) for two slices of CHAOS T2 MR training patients 1 and 13."""
    greys = {}
    for _, case, _, grey, _ in mr_slices(patients=(1, 13)):
        greys.setdefault(case, []).append(grey)
    return [(reference.encoder_input(g[k])[0], None)
            for g in greys.values() for k in (len(g) // 3, 2 * len(g) // 3)]


def session(model):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def embeddings(model, slices):
    s = session(model)
    return [s.run(None, {"image": x})[0] for x, _ in slices]


def relative_error(embs, ref):
    return float(np.mean([np.linalg.norm(a - b) / np.linalg.norm(b) for a, b in zip(embs, ref)]))


def box_dice(embs, slices, decoder):
    scores = []
    for emb, (_, labels) in zip(embs, slices):
        for organ in np.unique(labels[labels > 0]):
            mask = largest_component(labels == organ)
            if mask.sum() < 30:
                continue
            ys, xs = np.nonzero(mask)
            feeds = {
                "image_embeddings": emb,
                "point_coords": np.array([[[xs.min(), ys.min()], [xs.max(), ys.max()]]], np.float32),
                "point_labels": np.array([[2, 3]], np.float32),
                "mask_input": np.zeros((1, 1, 256, 256), np.float32),
                "has_mask_input": np.zeros(1, np.float32),
                "orig_im_size": np.array([256, 256], np.float32),
            }
            pred = decoder.run(["masks"], feeds)[0][0, 0] > 0
            scores.append(2 * (pred & mask).sum() / (pred.sum() + mask.sum()))
    return 100 * float(np.mean(scores)), len(scores)


def activation_quantizers(m):
    """(DequantizeLinear output, the float tensor its QuantizeLinear reads) of every activation."""
    producer = {o: n for n in m.graph.node for o in n.output}
    pairs = []
    for n in m.graph.node:
        q = producer.get(n.input[0]) if n.op_type == "DequantizeLinear" else None
        if q is not None and q.op_type == "QuantizeLinear":
            pairs.append((n.output[0], q.input[0]))
    return pairs


def without_quantizers(path, pattern, keep=None):
    """The quantized graph with the activation Q/DQ pairs on tensors matching `pattern` removed
    (or, given `keep`, every pair but those on the tensor `keep`)."""
    m = onnx.load(path)
    skip = {}
    for dq, source in activation_quantizers(m):
        if (source != keep) if keep is not None else (pattern and re.search(pattern, source)):
            skip[dq] = source
    for n in m.graph.node:
        n.input[:] = [skip.get(x, x) for x in n.input]
    return m.SerializeToString(), len(skip)


def sensitivity(fp, q):
    """Each activation quantizer alone: its embedding error on CT and MR, worst first."""
    ct, mr = dev_slices(), mr_dev_slices()
    ref_ct, ref_mr = embeddings(fp, ct), embeddings(fp, mr)
    sources = sorted({s for _, s in activation_quantizers(onnx.load(q))})
    rows = []
    for i, source in enumerate(sources):
        model, _ = without_quantizers(q, None, keep=source)
        e_ct = relative_error(embeddings(model, ct), ref_ct)
        e_mr = relative_error(embeddings(model, mr), ref_mr)
        rows.append((max(e_ct, e_mr), e_ct, e_mr, source))
        print(f"[{i + 1}/{len(sources)}] {source}: CT {e_ct:.4f}, MR {e_mr:.4f}", flush=True)
    print("worst first:")
    for _, e_ct, e_mr, source in sorted(rows, reverse=True):
        print(f"{e_ct:.4f} {e_mr:.4f} {source}")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "sensitivity":
        return sensitivity(sys.argv[2], sys.argv[3])
    if len(sys.argv) < 4 or sys.argv[1] not in ("compare", "bypass"):
        sys.exit(__doc__)
    command, fp, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    slices = dev_slices()
    decoder = session(str(DECODER))
    ref = embeddings(fp, slices)
    dice, n = box_dice(ref, slices, decoder)
    print(f"FP: box Dice {dice:.2f} over {n} organs", flush=True)
    if command == "compare":
        variants = [(p, p) for p in rest]
    else:
        q = rest[0]
        variants = []
        for pattern in rest[1:]:
            model, k = without_quantizers(q, None if pattern == "none" else pattern)
            variants.append((model, f"{q} without {k} quantizers matching {pattern!r}"))
    for model, name in variants:
        embs = embeddings(model, slices)
        dice, _ = box_dice(embs, slices, decoder)
        print(f"{name}: box Dice {dice:.2f}, embedding error {relative_error(embs, ref):.4f}", flush=True)


if __name__ == "__main__":
    main()
