"""Export a trained checkpoint to the Lumen bundle: encoder.onnx, decoder.onnx, model.toml.

  encoder.onnx: ImageEncoderViT alone (normalization is done by the engine), input `image`
                float32 [1,3,256,256] -> `image_embeddings` [1,256,32,32]; opset 17, batch 1.
  decoder.onnx: segment_anything.utils.onnx.SamOnnxModel(sam, return_single_mask=False) with the
                input/output names and dynamic axes of segment-anything's scripts/export_onnx_model.py.

Both graphs are checked with onnxruntime against PyTorch (max abs diff) before the manifest is
written. `--manifest-only` rewrites model.toml (hashes, accuracy from results/eval.json) without
re-exporting.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from common import BTCV_VAL, BUNDLE, HERE, INPUT_SIZE, MODEL_CFG, PIXEL_MEAN, PIXEL_STD, TRAIN_DIR, build_sam, load_window, read_shards

OPSET = 17
# train.py always gives the decoder NSLOT = 6 prompt tokens, unused ones padded with label -1, so
# the model never saw a prompt without padding tokens (a lone box without a pad token fails:
# CHAOS liver Dice 0.18 vs 0.96 with padding). The exported decoder therefore appends PAD_TOKENS
# "not a point" tokens to whatever the caller sends; callers keep the standard SAM convention.
PAD_TOKENS = 4


def load_model(ckpt: Path):
    meta = json.loads((ckpt / "ckpt.json").read_text()) if (ckpt / "ckpt.json").exists() else {}
    if meta.get("finished") is False:
        raise SystemExit(f"{ckpt}: training is paused at step {meta.get('step')}, not finished; "
                         "run its train.py command again first")
    sam = build_sam()
    sam.load_state_dict({k: v.float() for k, v in read_shards(ckpt).items()})
    sam.eval()
    return sam, meta


def export_encoder(sam, path: Path):
    x = torch.randn(1, 3, INPUT_SIZE, INPUT_SIZE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(sam.image_encoder, (x,), str(path), input_names=["image"],
                          output_names=["image_embeddings"], opset_version=OPSET,
                          do_constant_folding=True, dynamo=False)


def decoder_dummy(sam):
    embed_dim = sam.prompt_encoder.embed_dim
    embed_size = sam.prompt_encoder.image_embedding_size
    mask_input_size = [4 * x for x in embed_size]
    return {
        "image_embeddings": torch.randn(1, embed_dim, *embed_size, dtype=torch.float),
        "point_coords": torch.randint(low=0, high=INPUT_SIZE, size=(1, 5, 2), dtype=torch.float),
        "point_labels": torch.randint(low=0, high=4, size=(1, 5), dtype=torch.float),
        "mask_input": torch.randn(1, 1, *mask_input_size, dtype=torch.float),
        "has_mask_input": torch.tensor([1], dtype=torch.float),
        "orig_im_size": torch.tensor([1500, 2250], dtype=torch.float),  # non-square, as upstream: keeps the crop dynamic
    }


def onnx_decoder(sam):
    """SamOnnxModel(sam, return_single_mask=False), with its crop to the pre-padded size written so
    that current torch.onnx tracing keeps it dynamic (upstream slices with 0-d tensors, which recent
    torch folds into constants of the dummy size). Same inputs, outputs and arithmetic."""
    import torch.nn.functional as F
    from segment_anything.utils.onnx import SamOnnxModel

    class LumenSamOnnxModel(SamOnnxModel):
        def _embed_points(self, point_coords: torch.Tensor, point_labels: torch.Tensor) -> torch.Tensor:
            emb = super()._embed_points(point_coords, point_labels)
            pad = self.model.prompt_encoder.not_a_point_embed.weight.reshape(1, 1, -1)
            return torch.cat([emb, pad.expand(emb.shape[0], PAD_TOKENS, emb.shape[2])], 1)

        def mask_postprocessing(self, masks: torch.Tensor, orig_im_size: torch.Tensor) -> torch.Tensor:
            masks = F.interpolate(masks, size=(self.img_size, self.img_size), mode="bilinear",
                                  align_corners=False)
            pre = self.resize_longest_image_size(orig_im_size, self.img_size).to(torch.int64)
            masks = masks.index_select(2, torch.arange(pre[0]))
            masks = masks.index_select(3, torch.arange(pre[1]))
            orig_im_size = orig_im_size.to(torch.int64)
            h, w = orig_im_size[0], orig_im_size[1]
            return F.interpolate(masks, size=(h, w), mode="bilinear", align_corners=False)

    return LumenSamOnnxModel(sam, return_single_mask=False).eval()


def export_decoder(sam, path: Path):
    onnx_model = onnx_decoder(sam)
    dummy = decoder_dummy(sam)
    dynamic_axes = {"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(onnx_model, tuple(dummy.values()), str(path), export_params=True, verbose=False,
                          opset_version=OPSET, do_constant_folding=True, input_names=list(dummy.keys()),
                          output_names=["masks", "iou_predictions", "low_res_masks"],
                          dynamic_axes=dynamic_axes, dynamo=False)
    return onnx_model


def verify(sam, enc_path: Path, dec_path: Path) -> dict:
    import onnx
    import onnxruntime as ort
    from segment_anything.utils.onnx import SamOnnxModel

    for p in (enc_path, dec_path):
        onnx.checker.check_model(str(p))
    so = ort.SessionOptions()
    enc = ort.InferenceSession(str(enc_path), so, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(dec_path), so, providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, INPUT_SIZE, INPUT_SIZE, generator=g)
    with torch.no_grad():
        ref = sam.image_encoder(x).numpy()
    got = enc.run(None, {"image": x.numpy()})[0]
    res = {"encoder_max_abs_diff": float(np.abs(ref - got).max()), "encoder_out_shape": list(got.shape)}
    # the reference is the upstream module, given the padding tokens explicitly
    m = SamOnnxModel(sam, return_single_mask=False).eval()
    worst = 0.0
    for n, orig in [(2, (257, 257)), (3, (512, 512)), (1, (300, 200))]:
        inputs = {
            "image_embeddings": torch.from_numpy(ref),
            "point_coords": torch.rand(1, n, 2, generator=g) * INPUT_SIZE,
            "point_labels": torch.tensor([[2.0, 3.0, 1.0][:n]]) if n > 1 else torch.tensor([[1.0]]),
            "mask_input": torch.randn(1, 1, 128, 128, generator=g),
            "has_mask_input": torch.tensor([float(n == 3)]),
            "orig_im_size": torch.tensor(orig, dtype=torch.float),
        }
        ref_in = dict(inputs)
        ref_in["point_coords"] = torch.cat([inputs["point_coords"], torch.zeros(1, PAD_TOKENS, 2)], 1)
        ref_in["point_labels"] = torch.cat([inputs["point_labels"], -torch.ones(1, PAD_TOKENS)], 1)
        with torch.no_grad():
            tr = [t.numpy() for t in m(**ref_in)]
        on = dec.run(None, {k: v.numpy() for k, v in inputs.items()})
        for a, b in zip(tr, on):
            assert a.shape == b.shape, (a.shape, b.shape)
            worst = max(worst, float(np.abs(a - b).max()))
        res.setdefault("decoder_out_shapes", []).append([list(o.shape) for o in on])
    res["decoder_max_abs_diff"] = worst
    return res


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def count_macs(sam) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(1, 3, INPUT_SIZE, INPUT_SIZE)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        emb = sam.image_encoder(x)
    enc = fc.get_total_flops() / 2
    from segment_anything.utils.onnx import SamOnnxModel

    m = SamOnnxModel(sam, return_single_mask=False).eval()
    d = decoder_dummy(sam)
    d["image_embeddings"] = emb
    d["point_coords"] = d["point_coords"][:, :2]
    d["point_labels"] = torch.tensor([[2.0, 3.0]])
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        m(**d)
    dec = fc.get_total_flops() / 2
    n_enc = sum(p.numel() for p in sam.image_encoder.parameters())
    n_all = sum(p.numel() for p in sam.parameters())
    return {"encoder_gmacs": enc / 1e9, "decoder_gmacs_512": dec / 1e9, "encoder_params": n_enc,
            "prompt_decoder_params": n_all - n_enc, "total_params": n_all}


def toml_list(xs):
    return "[" + ", ".join(json.dumps(x) for x in xs) + "]"


def write_manifest(out: Path, info: dict, results: Path):
    center, width = load_window()
    enc, dec = out / "encoder.onnx", out / "decoder.onnx"
    ev_path = results / "eval.json"
    ev = json.loads(ev_path.read_text()) if ev_path.exists() else {}
    acc = ev.get("summary", {})
    lines = [
        "format = 1",
        'name = "ct-starter"',
        'description = "Lumen CT starter: small SAM trained on BTCV/CHAOS/TotalSegmentator"',
        f"input_size = {INPUT_SIZE}",
        "",
        "[normalize]",
        f"mean = {toml_list(PIXEL_MEAN)}",
        f"std = {toml_list(PIXEL_STD)}",
        "",
        "[intensity.ct]",
        'rule = "window"',
        f"center = {center:.1f}",
        f"width = {width:.1f}",
        "",
        "[intensity.mr]",
        'rule = "percentile"',
        "low = 0.5",
        "high = 99.5",
        "",
        "[precision]",
        'kind = "fp32"',
        "",
        "[files.encoder]",
        'path = "encoder.onnx"',
        f'sha256 = "{sha256(enc)}"',
        "",
        "[files.decoder]",
        'path = "decoder.onnx"',
        f'sha256 = "{sha256(dec)}"',
        "",
        "[provenance]",
        'recipe = "packaging/model"',
        'training_data = ["BTCV (Synapse multi-atlas abdomen, 20 of 24 patients: sabs_case01-05, 07-11, 13-17, 19-23)", '
        '"TotalSegmentator example CT (example_ct_sm + example_ct_dicom series, model-made labels)", '
        '"TotalSegmentator example MR (example_mr_sm, model-made labels)", "SAM-Med2D demo slices (AMOS, TotalSegmentator)"]',
        f"validation_patients = {toml_list(BTCV_VAL + ['CHAOS CT liver (Data_3D, all 78 slices; never trained on)'])}",
        'licence = "research use only: trained on BTCV (Synapse terms: research only, no redistribution of the data) '
        'and evaluated on CHAOS (CC BY-SA 4.0); TotalSegmentator / AMOS data CC BY 4.0. The weights are for research use, '
        'not for clinical decisions."',
        'architecture = "segment_anything ImageEncoderViT (patch 8, dim {embed_dim}, depth {depth}, heads {num_heads}, '
        'window {window_size}, global blocks {g}) + PromptEncoder + MaskDecoder/TwoWayTransformer (256 ch, 3+1 masks, IoU head)"'.format(
            g=list(MODEL_CFG["global_attn_indexes"]), **{k: v for k, v in MODEL_CFG.items() if k != "global_attn_indexes"}),
        f"encoder_gmacs = {info.get('encoder_gmacs', 0):.3f}",
        f"total_params = {info.get('total_params', 0)}",
        f"training_steps = {info.get('steps', 0)}",
        f'training_hardware = "{info.get("hardware", "")}"',
        f'onnx_opset = {OPSET}',
        f"encoder_max_abs_diff_vs_torch = {info.get('encoder_max_abs_diff', 0):.3g}",
        f"decoder_max_abs_diff_vs_torch = {info.get('decoder_max_abs_diff', 0):.3g}",
        "",
        "[accuracy]",
        f"btcv_mean_dice = {acc.get('btcv_mean_dice', 0.0):.4f}",
    ]
    for k, v in acc.items():
        if k != "btcv_mean_dice" and isinstance(v, (int, float)):
            lines.append(f"{k} = {v:.4f}")
    lines.append('protocol = "DESIGN.md section 4: per labelled slice and organ, tight box of the largest connected '
                 'component (8-connected, >= 20 px), multimask output with the highest predicted IoU, masks at the '
                 'original slice size, threshold 0; Dice against that component, averaged per organ then over organs"')
    lines.append('measured_with = "python packaging/model/evaluate.py (onnxruntime, the shipped ONNX files)"')
    (out / "model.toml").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'model.toml'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", type=Path, default=TRAIN_DIR / "final")
    ap.add_argument("--out", type=Path, default=BUNDLE)
    ap.add_argument("--manifest-only", action="store_true")
    ap.add_argument("--results", type=Path, default=HERE / "results",
                    help="where export.json is written and evaluate.py's eval.json is read")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    info_path = args.results / "export.json"
    info_path.parent.mkdir(parents=True, exist_ok=True)
    if not args.manifest_only:
        sam, meta = load_model(args.ckpt)
        enc, dec = args.out / "encoder.onnx", args.out / "decoder.onnx"
        export_encoder(sam, enc)
        export_decoder(sam, dec)
        info = verify(sam, enc, dec)
        info.update(count_macs(sam))
        info["steps"] = meta.get("step", 0)
        info["train_seconds_total"] = meta.get("train_seconds", 0) + meta.get("prev_train_seconds", 0)
        info["hardware"] = f"1x {meta.get('device', '?')}, {meta.get('precision', 'bf16 autocast')}"
        info["sizes_bytes"] = {p.name: p.stat().st_size for p in (enc, dec)}
        info["sha256"] = {p.name: sha256(p) for p in (enc, dec)}
        print(json.dumps(info, indent=1))
        assert info["encoder_max_abs_diff"] < 1e-3 and info["decoder_max_abs_diff"] < 1e-2, "ONNX does not match PyTorch"
        info_path.write_text(json.dumps(info, indent=1))
    info = json.loads(info_path.read_text())
    write_manifest(args.out, info, args.results)


if __name__ == "__main__":
    main()
