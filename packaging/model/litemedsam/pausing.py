"""Checkpoints that survive a kill, and training that pauses and continues across sessions: the
part that finetune.py and distill.py share."""
import os
import shutil
import sys
import time

import torch

EXIT_PAUSED = 75


def save_swapped(folder, payload):
    """`payload` as `folder/ckpt.pt`, written into a fresh folder and swapped in, so a kill
    mid-write keeps the previous checkpoint."""
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    torch.save(payload, tmp / "ckpt.pt")
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


class Pausing:
    """Calls `save` every `every_s` seconds and at the last step; after `LUMEN_TRAIN_SESSION_MIN`
    minutes of this process it saves and exits with 75, and the same command continues."""

    def __init__(self, save, every_s=180):
        self.save, self.every_s = save, every_s
        self.limit_s = float(os.environ.get("LUMEN_TRAIN_SESSION_MIN", "0")) * 60
        self.start = self.last_save = time.time()

    def after_step(self, step, steps):
        """True when it saved (the caller may reseed what depends on the step)."""
        saved = time.time() - self.last_save > self.every_s or step == steps
        if saved:
            self.save()
            self.last_save = time.time()
        if self.limit_s and time.time() - self.start > self.limit_s and step < steps:
            self.save()
            print(f"paused at step {step}; run the same command again to continue")
            sys.exit(EXIT_PAUSED)
        return saved
