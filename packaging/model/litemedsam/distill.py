#!/usr/bin/env python3
"""Distil LiteMedSAM's image encoder into the fast student (`student.py`): `assets/models/litemedsam-fast`.

Decoupled distillation, the MobileSAM recipe: the student learns to output the teacher's image
embedding (MSE), no labels and no prompts, so LiteMedSAM's prompt encoder and both its decoders
(box and click) are reused unchanged.

    D=packaging/model/litemedsam/distill.py
    for r in monitor 0; do .venv-model/bin/python $D embed --round $r; done   # teacher embeddings (resumable)
    .venv-model/bin/python $D train --run fast-v1 --rounds 0 --steps 2000 --warmup 50 --monitor-every 250
    #   (the shipped run; checkpoints every 3 min; LUMEN_TRAIN_SESSION_MIN pauses with exit 75)
    .venv-model/bin/python $D export --run fast-v1 # -> assets/models/litemedsam-fast
    # measure by MODEL_CARD.md's commands into fast-accuracy.toml, then:
    .venv-model/bin/python $D export --run fast-v1 --manifest-only

* Data (`views`): every slice of the shared data outside the held-out patients, each round in a
  new random view (flips, crops, CT window / MR percentile jitter, gamma): every 2nd slice of the
  BTCV training patients (all but `finetune.HELD_OUT`), labelled or not, through the HU of BTCV's
  window into a CT window around LiteMedSAM's WL 40 / WW 400; every slice of the CHAOS T2 MR
  training patients (`finetune.MR_TRAIN`) by a jittered MR percentile rule, twice (MR is scarce).
  A monitor set (`--round monitor`): every 8th slice of the held-out BTCV patients and every 4th of
  the held-out CHAOS T2 MR patients, unjittered, for the validation MSE only. CHAOS CT and the
  TotalSegmentator example are never seen. The student's input (LiteMedSAM's preprocessing,
  `reference.encoder_input`, one channel, float32) and the teacher's embedding (fp16, from the
  bundle's `encoder.onnx`) are stored under `.train/litemedsam-distill/round-N/`.
* Training: AdamW, cosine schedule with warm-up, bf16 autocast where the hardware has it (the
  held-out MSE in fp32), batches drawn from every finished round; the
  student starts from the teacher's stage and neck weights (`student.FastEncoder.load_teacher`).
  Checkpoints every 3 minutes into a fresh folder; `LUMEN_TRAIN_SESSION_MIN` pauses with exit 75
  and the same command continues. A GPU is used when there is one.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import sys
import time

import numpy as np
import torch

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import convert  # noqa: E402  (the teacher network, hashing, manifest)
import finetune  # noqa: E402  (the shared data, its split and BTCV's window)
import pausing  # noqa: E402  (checkpoints, pause and continue)
import reference  # noqa: E402  (the official preprocessing)
import student  # noqa: E402  (the student network)

REPO = HERE.parents[2]
WORK = pathlib.Path(os.environ.get("LUMEN_TRAIN_DIR", REPO / ".train")) / "litemedsam-distill"
TEACHER = REPO / "assets" / "models" / "litemedsam"
OUT = REPO / "assets" / "models" / "litemedsam-fast"
SIZE = reference.SIZE
MR_HELD_OUT = [2, 5, 10, 15, 20, 22, 32, 34]


# ---------------------------------------------------------------- the views of the shared data

def jitter_geometry(image, rng):
    """Flips (left-right half the time, up-down a fifth) and, half the time, a crop keeping 55-100 %
    of each side: other fields of view, zooms and aspect ratios (the preprocessing pads them)."""
    if rng.random() < 0.5:
        image = image[:, ::-1]
    if rng.random() < 0.2:
        image = image[::-1, :]
    if rng.random() < 0.5:
        h, w = image.shape
        ch, cw = int(h * rng.uniform(0.55, 1.0)), int(w * rng.uniform(0.55, 1.0))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        image = image[y:y + ch, x:x + cw]
    return np.ascontiguousarray(image)


def gamma(image, rng):
    if rng.random() < 0.5:
        return image
    return (255 * (image / 255.0) ** rng.uniform(0.75, 1.35)).round().astype(np.uint8)


# How a new round's views are drawn (recorded in its meta.json). 1 (round 0): CT in LiteMedSAM's
# window, exact or jittered. 2: a third of the CT views in BTCV's own window (what `lumen eval`
# gives the BTCV patients), and the jitter reaching past it (WL 10-130).
VIEW_RULE = 2


def ct_view(btcv_grey, rng, jitter=True, rule=VIEW_RULE):
    """A BTCV slice in LiteMedSAM's CT window (WL 40 / WW 400), in BTCV's own, or jittered."""
    if not jitter:
        return finetune.in_litemedsam_window(btcv_grey)
    pick = rng.random()
    if rule >= 2 and pick < 1 / 3:
        grey = btcv_grey
    elif pick < (2 / 3 if rule >= 2 else 1 / 2):
        grey = finetune.in_litemedsam_window(btcv_grey)
    else:
        center = rng.uniform(10, 130 if rule >= 2 else 90)
        grey = finetune.in_litemedsam_window(btcv_grey, center, rng.uniform(250, 550))
    return jitter_geometry(gamma(grey, rng), rng)


def mr_view(values, rng, jitter=True):
    """A T2 MR slice by the app's MR rule, half the time with other percentiles (0-2 / 98-100)."""
    if not jitter or rng.random() < 0.5:
        grey = reference.mr_grey(values)
    else:
        nonzero = values[values > 0]
        low, high = np.percentile(nonzero, [rng.uniform(0, 2), rng.uniform(98, 100)]) if nonzero.size else (0, 1)
        grey = (np.clip((values - low) / max(high - low, 1e-6), 0, 1) * 255).round().astype(np.uint8)
    return jitter_geometry(gamma(grey, rng), rng) if jitter else grey


def btcv_slices(cases):
    for path in sorted((finetune.DATA / "btcv_abdomen_ct").glob("sabs_case*.npz")):
        if path.stem in cases:
            image = np.rot90(np.load(path)["image"], 1, axes=(1, 2))
            for z in range(len(image)):
                yield path.stem, z, np.ascontiguousarray(image[z]).astype(np.uint8)


def mr_slices(patients):
    """Every slice of the CHAOS T2 MR patients in display orientation (as finetune.mr_slices)."""
    import nibabel as nib

    for n in patients:
        image = np.asarray(nib.load(finetune.DATA / "chaos_t2_mr" / f"image_{n}.nii.gz").dataobj, np.float32)
        for z in range(image.shape[2]):
            yield f"chaos_mr_{n}", z, np.ascontiguousarray(image[:, ::-1, z].T)


def views(name, seed, rule=VIEW_RULE):
    """[(case, z, grey u8)] of one round (`0`, `1`, ...: training views, drawn by `rule`) or of
    `monitor`."""
    btcv = [p.stem for p in sorted((finetune.DATA / "btcv_abdomen_ct").glob("sabs_case*.npz"))]
    if name == "monitor":
        rng = np.random.default_rng(0)
        held = [s for s in btcv if s in finetune.HELD_OUT]
        out = [(c, z, ct_view(g, rng, False)) for c, z, g in btcv_slices(held) if z % 8 == 0]
        return out + [(c, z, mr_view(v, rng, False)) for c, z, v in mr_slices(MR_HELD_OUT) if z % 4 == 0]
    rng = np.random.default_rng([seed, int(name)])
    train = [s for s in btcv if s not in finetune.HELD_OUT]
    out = [(c, z, ct_view(g, rng, rule=rule)) for c, z, g in btcv_slices(train) if (z + int(name)) % 2 == 0]
    for _ in range(2):
        out += [(c, z, mr_view(v, rng)) for c, z, v in mr_slices(finetune.MR_TRAIN)]
    return out


# ---------------------------------------------------------------- embed: the teacher, once per view

def round_dir(name):
    return WORK / f"round-{name}"


def open_round(folder, n, mode):
    inputs = np.memmap(folder / "inputs.f32", np.float32, mode, shape=(n, SIZE, SIZE))
    embeddings = np.memmap(folder / "embeddings.f16", np.float16, mode, shape=(n, 256, 64, 64))
    return inputs, embeddings


def write_json(path, value):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


def embed(args):
    import onnxruntime as ort

    folder = round_dir(args.round)
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
    # a round is continued with the rule it was started with (rounds before rules were recorded: 1)
    rule = meta.get("view_rule", 1) if meta else VIEW_RULE
    items = views(args.round, args.seed, rule)
    n, encoder_sha = len(items), convert.sha256(TEACHER / "encoder.onnx")
    if meta is None or meta["n"] != n or meta["seed"] != args.seed:
        meta = {"n": n, "done": 0, "seed": args.seed, "encoder_sha256": encoder_sha, "view_rule": rule,
                "items": [[c, z] for c, z, _ in items]}
        for store in open_round(folder, n, "w+"):
            store.flush()
    elif meta["encoder_sha256"] != encoder_sha:
        sys.exit(f"{folder}: embeddings of another encoder; delete the folder to start again")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    teacher = ort.InferenceSession(str(TEACHER / "encoder.onnx"), opts, providers=["CPUExecutionProvider"])
    inputs, embeddings = open_round(folder, n, "r+")
    start, first = time.time(), meta["done"]
    for i in range(first, n):
        x, _ = reference.encoder_input(items[i][2])
        inputs[i] = x[0, 0]
        embeddings[i] = teacher.run(None, {"image": x})[0][0].astype(np.float16)
        if (i + 1) % 25 == 0 or i + 1 == n:
            inputs.flush()
            embeddings.flush()
            meta["done"] = i + 1
            write_json(meta_path, meta)
            print(f"round {args.round}: {i + 1}/{n} ({(time.time() - start) / (i + 1 - first):.2f} s each)", flush=True)
    print(f"{n} views in {folder}")


class Views:
    """Every finished round's (input, teacher embedding) pairs, kept on disk (memory-mapped)."""

    def __init__(self, names):
        self.stores, self.index = [], []
        for name in names:
            folder = round_dir(name)
            meta = json.loads((folder / "meta.json").read_text())
            if meta["done"] != meta["n"]:
                sys.exit(f"{folder}: {meta['done']}/{meta['n']} embedded; run `embed --round {name}` again")
            self.stores.append(open_round(folder, meta["n"], "r"))
            self.index += [(len(self.stores) - 1, i) for i in range(meta["n"])]

    def __len__(self):
        return len(self.index)

    def batch(self, idx):
        pairs = [self.index[i] for i in sorted(idx)]
        x = np.stack([self.stores[s][0][i] for s, i in pairs])
        y = np.stack([self.stores[s][1][i] for s, i in pairs])
        x = torch.from_numpy(x)[:, None].expand(-1, 3, -1, -1)
        return x.contiguous(), torch.from_numpy(y).float()


def finished_rounds():
    names = []
    for folder in sorted(WORK.glob("round-[0-9]*"), key=lambda f: int(f.name.split("-")[1])):
        meta = json.loads((folder / "meta.json").read_text())
        if meta["done"] == meta["n"]:
            names.append(folder.name.split("-")[1])
    return names


# ---------------------------------------------------------------- train

def save(folder, net, opt, state):
    pausing.save_swapped(folder, {"student": net.state_dict(), "optimizer": opt.state_dict(), "state": state})


@torch.no_grad()
def monitor_mse(net, views, device, batch=8):
    net.eval()
    total = 0.0
    for start in range(0, len(views), batch):
        x, y = views.batch(range(start, min(start + batch, len(views))))
        total += float(((net(x.to(device)) - y.to(device)) ** 2).mean(dim=(1, 2, 3)).sum())
    net.train()
    net.freeze_batch_norm()
    return total / len(views)


def train(args):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    # bf16 autocast on a GPU or a CPU with native bf16 (3x fp32 here, AMX); emulated it is slower
    bf16 = device == "cuda" or torch.cpu._is_avx512_bf16_supported()
    rounds = args.rounds or finished_rounds()
    data, held_out = Views(rounds), Views(["monitor"])
    net = student.FastEncoder(**student.CONFIGS[args.student])
    if args.init:
        # a finished earlier run goes on with more views (its schedule is kept in this one's)
        earlier = torch.load(WORK / args.init / "ckpt.pt", weights_only=False, map_location="cpu")
        if earlier["state"]["step"] != earlier["state"]["schedule"]["steps"]:
            sys.exit(f"--init {args.init}: that run has not finished")
        net.load_state_dict(earlier["student"])
    else:
        net.load_teacher(convert.load_network().image_encoder)
    net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.01)
    folder = WORK / args.run
    schedule = {"steps": args.steps, "batch": args.batch, "lr": args.lr, "seed": args.seed, "rounds": rounds,
                "precision": "bf16 autocast" if bf16 else "fp32"}
    if args.student != "v1":
        schedule["student"] = args.student
    if args.init:
        schedule["init"] = {"run": args.init, "schedule": earlier["state"]["schedule"]}
    state = {"step": 0, "log": [], "schedule": schedule, "trained_s": 0.0}
    if (folder / "ckpt.pt").exists():
        saved = torch.load(folder / "ckpt.pt", weights_only=False, map_location=device)
        if saved["state"]["schedule"] != schedule:
            sys.exit(f"{folder} holds a run of another schedule {saved['state']['schedule']}")
        net.load_state_dict(saved["student"])
        opt.load_state_dict(saved["optimizer"])
        state = saved["state"]
        print(f"continuing {folder} at step {state['step']} of {args.steps} ({state['trained_s']:.0f} s trained)")
    else:
        state["log"].append({"step": 0, "monitor_mse": monitor_mse(net, held_out, device)})
        print(f"{len(data)} views of rounds {rounds}; held-out MSE before: {state['log'][0]['monitor_mse']:.5f}", flush=True)
    net.train()
    net.freeze_batch_norm()
    paused = pausing.Pausing(lambda: save(folder, net, opt, state))
    start = time.time()
    trained_before, first_step = state["trained_s"], state["step"]
    while state["step"] < args.steps:
        step = state["step"]
        warm = min(1.0, (step + 1) / args.warmup)
        for g in opt.param_groups:
            g["lr"] = args.lr * warm * 0.5 * (1 + np.cos(np.pi * step / args.steps))
        # the sample order depends on the step alone, so a continued run draws what an unbroken one would
        idx = np.random.default_rng([args.seed, step]).choice(len(data), args.batch, replace=False)
        x, y = data.batch(idx)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            out = net(x.to(device))
        loss = ((out.float() - y.to(device)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        state["step"] = step + 1
        state["trained_s"] = trained_before + time.time() - start
        if state["step"] % 10 == 0:
            pace = (time.time() - start) / (state["step"] - first_step)
            print(f"step {state['step']} mse {float(loss.detach()):.5f} ({pace:.1f} s a step)", flush=True)
        if state["step"] % args.monitor_every == 0 or state["step"] == args.steps:
            mse = monitor_mse(net, held_out, device)
            state["log"].append({"step": state["step"], "monitor_mse": mse})
            print(f"step {state['step']} held-out MSE {mse:.5f}", flush=True)
        paused.after_step(state["step"], args.steps)
    (folder / "log.json").write_text(json.dumps(state["log"], indent=1))
    print("done")


# ---------------------------------------------------------------- export

def compare_student(net, encoder_path, slices):
    """ONNX Runtime against PyTorch (max abs difference) and the student against the teacher
    bundle's encoder (MSE), on convert.py's real slices."""
    import onnxruntime as ort

    fast = ort.InferenceSession(str(encoder_path), providers=["CPUExecutionProvider"])
    teacher = ort.InferenceSession(str(TEACHER / "encoder.onnx"), providers=["CPUExecutionProvider"])
    worst, mse = 0.0, []
    for name, grey, _ in slices:
        x, _ = reference.encoder_input(grey)
        with torch.no_grad():
            torch_out = net(torch.from_numpy(x)).numpy()
        (onnx_out,) = fast.run(None, {"image": x})
        (target,) = teacher.run(None, {"image": x})
        worst = max(worst, float(np.abs(onnx_out - torch_out).max()))
        mse.append(float(((onnx_out - target) ** 2).mean()))
        print(f"  {name}: ONNX vs torch max |Δ| {worst:.2e}, MSE to the teacher {mse[-1]:.5f}")
    return worst, float(np.mean(mse))


def manifest(state, diffs, slices, out):
    """The teacher's model.toml with the student's encoder: the same preprocessing, prompts and
    decoders; provenance with the distillation; `[accuracy]` from fast-accuracy.toml when measured."""
    import tomllib

    text = (TEACHER / "model.toml").read_text()
    teacher = tomllib.loads(text)
    head = text.split("\n[provenance]")[0]
    head = head.replace(f'name = "{teacher["name"]}"', 'name = "litemedsam-fast"')
    head = head.replace(json.dumps(teacher["description"]), json.dumps(
        "LiteMedSAM with a distilled fast image encoder (its own TinyViT stages at a quarter of the "
        "resolution, trained to reproduce LiteMedSAM's embedding); LiteMedSAM's box decoder and "
        "Lumen's click decoder, unchanged."))
    head = head.replace(teacher["files"]["encoder"]["sha256"], convert.sha256(out / "encoder.onnx"))
    schedule, log = state["schedule"], state["log"]
    provenance = {k: teacher["provenance"][k] for k in ("source", "code", "licence", "training_data", "click_decoder")}
    def stage(sched):
        return (f"{sched['steps']} steps of {sched['batch']} views (rounds {', '.join(sched['rounds'])}), "
                f"lr {sched['lr']}, seed {sched['seed']}")

    trained = f"trained for {stage(schedule)}"
    if "init" in schedule:
        trained = f"trained for {stage(schedule['init']['schedule'])} (run {schedule['init']['run']}), then for {stage(schedule)}"
    provenance["distillation"] = (
        f"packaging/model/litemedsam/distill.py: student.FastEncoder ({schedule.get('student', 'v1')}) started "
        f"from LiteMedSAM's stage and neck "
        f"weights, {trained}, MSE to the teacher's embedding; "
        f"BTCV patients other than {', '.join(finetune.HELD_OUT)}, CHAOS T2 MR patients "
        f"{', '.join(map(str, finetune.MR_TRAIN))}; no labels; held-out monitor MSE "
        f"{log[0]['monitor_mse']:.5f} before, {log[-1]['monitor_mse']:.5f} after")
    provenance["conversion"] = "packaging/model/litemedsam/distill.py export: encoder by torch.onnx.export, opset 17; decoders copied from assets/models/litemedsam"
    provenance["onnx_vs_torch_embedding_max_abs_diff"] = float(f"{diffs[0]:.3e}")
    provenance["student_vs_teacher_embedding_mse"] = float(f"{diffs[1]:.3e}")
    lines = [head.rstrip(), "", "[provenance]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in provenance.items()]
    lines.append(f"onnx_vs_torch_slices = {json.dumps([s[0] for s in slices])}")
    measured = HERE / "fast-accuracy.toml"
    if measured.exists():
        lines += [""] + [l for l in measured.read_text().splitlines() if not l.startswith("#")]
    text = "\n".join(lines).rstrip() + "\n"
    tomllib.loads(text)  # a manifest the engine can read, or no bundle
    (out / "model.toml").write_text(text)


def export(args):
    saved = torch.load(WORK / args.run / "ckpt.pt", weights_only=False, map_location="cpu")
    state = saved["state"]
    if state["step"] != state["schedule"]["steps"]:
        sys.exit(f"the run has trained {state['step']} of {state['schedule']['steps']} steps; run `train` again")
    net = student.FastEncoder(**student.CONFIGS[state["schedule"].get("student", "v1")])
    net.load_state_dict(saved["student"])
    net.eval()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.manifest_only:
        torch.onnx.export(net, (torch.zeros(1, 3, SIZE, SIZE),), str(args.out / "encoder.onnx"),
                          input_names=["image"], output_names=["image_embeddings"], opset_version=17, dynamo=False)
        for name in ("decoder.onnx", "click_decoder.onnx"):
            shutil.copyfile(TEACHER / name, args.out / name)
    slices = reference.sample_slices()
    diffs = compare_student(net, args.out / "encoder.onnx", slices)
    manifest(state, diffs, slices, args.out)
    print(f"wrote {args.out} (ONNX vs torch {diffs[0]:.2e}, MSE to the teacher {diffs[1]:.5f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["embed", "train", "export"])
    parser.add_argument("--round", default="0", help="embed: a training round (0, 1, ...) or `monitor`")
    parser.add_argument("--rounds", nargs="*", help="train: the rounds to train on (default: every finished one)")
    parser.add_argument("--run", default="fast-v1", help="train, export: the run's folder under the work folder")
    parser.add_argument("--student", choices=sorted(student.CONFIGS), default="v1",
                        help="train: the student network (student.CONFIGS)")
    parser.add_argument("--init", help="train: start from this finished run's student instead of the teacher's weights")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--monitor-every", type=int, default=250)
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    parser.add_argument("--manifest-only", action="store_true",
                        help="export: keep the bundle's ONNX files, write model.toml again (after measuring)")
    args = parser.parse_args()
    {"embed": embed, "train": train, "export": export}[args.stage](args)


if __name__ == "__main__":
    main()
