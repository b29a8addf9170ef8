"""How far can these 64 px crops go? Three PyTorch runs on one GPU, side by side.

    python3 experiments/ceiling/ceiling.py .gpu/split64.npz OUT_DIR [--quick] [--study]

1. `student`: the shipped network (configs/gender-warm.toml's shape) with the shipped recipe:
   AdamW 1e-3, weight decay 5e-4, 1 warm-up epoch then cosine, batch 64, label smoothing 0.05,
   the `augment` module's augmentations. It checks that this re-implementation trains like burn.
2. `teacher`: a ResNet-18-style network (11 M parameters, about 60x the student's MACs), same
   augmentations, SGD with Nesterov momentum and cosine decay. Its test accuracy estimates what
   this data at 64 px allows a network far too large for the device.
3. `distilled`: the student again, trained on a mix of the labels and the teacher's soft outputs
   (knowledge distillation). The teacher's logits are computed once per crop, unaugmented and
   averaged with its mirror image: what `facegender train` could read from a file.

Writes OUT_DIR/results.json after every run, and OUT_DIR/teacher-logits.csv (one line per crop).
Not part of the product or its tests: an experiment for issue 9, run on the device machine.
"""

import argparse
import copy
import io
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

PARTS = ("train", "val", "test")


def load(pack: Path, limit: int):
    z = np.load(pack)
    jpeg, ends = z["jpeg"], z["ends"]
    starts = np.concatenate([[0], ends[:-1]])
    imgs = np.stack(
        [np.asarray(Image.open(io.BytesIO(jpeg[s:e].tobytes())).convert("RGB")) for s, e in zip(starts, ends)]
    )
    data = {}
    for k, part in enumerate(PARTS):
        idx = np.flatnonzero(z["parts"] == k)
        if limit:
            idx = np.random.default_rng(0).permutation(idx)[:limit]
        data[part] = (
            torch.from_numpy(imgs[idx]).permute(0, 3, 1, 2).contiguous(),  # N,3,H,W uint8
            torch.from_numpy(z["labels"][idx].astype(np.int64)),
            [str(n) for n in z["names"][idx]],
        )
    return data


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """The `augment` module's defaults on a batch of uint8 images: rotate +-8 deg, zoom +-8 %,
    shift +-8 % (bilinear, edges replicated), mirror half, brightness +-0.15, contrast and
    saturation +-25 % / +-30 %. Returns floats in 0..255."""
    n, dev = x.shape[0], x.device
    u = lambda a: (torch.rand(n, device=dev, generator=g) * 2 - 1) * a
    ang, zoom, dx, dy = u(math.radians(8.0)), 1 + u(0.08), u(0.08), u(0.08)
    c, s = torch.cos(ang), torch.sin(ang)
    # output -> source in normalised coordinates: src = R (out - 2 shift) / zoom
    theta = torch.stack(
        [
            torch.stack([c / zoom, s / zoom, -(c * 2 * dx + s * 2 * dy) / zoom], 1),
            torch.stack([-s / zoom, c / zoom, -(-s * 2 * dx + c * 2 * dy) / zoom], 1),
        ],
        1,
    )
    xf = x.float()
    grid = F.affine_grid(theta, list(xf.shape), align_corners=True)
    xf = F.grid_sample(xf, grid, mode="bilinear", padding_mode="border", align_corners=True)
    flip = torch.rand(n, device=dev, generator=g) < 0.5
    xf = torch.where(flip[:, None, None, None], xf.flip(3), xf)
    xf = (xf + u(0.15)[:, None, None, None] * 255).clamp(0, 255)
    mean = xf.mean((1, 2, 3), keepdim=True)
    xf = ((xf - mean) * (1 + u(0.25))[:, None, None, None] + mean).clamp(0, 255)
    grey = (0.299 * xf[:, 0] + 0.587 * xf[:, 1] + 0.114 * xf[:, 2])[:, None]
    xf = ((xf - grey) * (1 + u(0.3))[:, None, None, None] + grey).clamp(0, 255)
    return xf


def to_input(xf: torch.Tensor) -> torch.Tensor:
    return (xf - 128.0) / 128.0


def conv_bn(cin, cout, k=3, stride=1, groups=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class Student(nn.Module):
    """configs/gender-warm.toml: widths 32,32,64,64,128,128,256; stride-2 stem; max pools after
    stages 1, 3, 5; depthwise-separable from stage 5; dropout 0.2."""

    def __init__(self, widths=(32, 32, 64, 64, 128, 128, 256), pool_after=(1, 3, 5), dw_from=5):
        super().__init__()
        layers, cin = [], 3
        for i, w in enumerate(widths):
            if i >= dw_from:
                layers += [conv_bn(cin, cin, 3, groups=cin), conv_bn(cin, w, 1)]
            else:
                layers.append(conv_bn(cin, w, 3, 2 if i == 0 else 1))
            if i in pool_after:
                layers.append(nn.MaxPool2d(2))
            cin = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(cin, 2))

    def forward(self, x):
        return self.head(self.features(x))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.a = conv_bn(cin, cout, 3, stride)
        self.b = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x):
        return F.relu(self.b(self.a(x)) + self.skip(x))


class Teacher(nn.Module):
    """ResNet-18's four stages of two basic blocks (64-512 wide) behind a 3x3 stem at 64 px."""

    def __init__(self, width=64):
        super().__init__()
        w = [width, 2 * width, 4 * width, 8 * width]
        layers, cin = [conv_bn(3, w[0], 3, 1)], w[0]
        for i, c in enumerate(w):
            layers += [Block(cin, c, 1 if i == 0 else 2), Block(c, c, 1)]
            cin = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(cin, 2))

    def forward(self, x):
        return self.head(self.features(x))


@torch.no_grad()
def logits_of(model, x_u8, batch=1024, tta=False):
    model.eval()
    out = []
    for i in range(0, len(x_u8), batch):
        xb = to_input(x_u8[i : i + batch].float())
        with torch.autocast("cuda", torch.bfloat16, enabled=xb.is_cuda):
            y = model(xb).float()
            if tta:
                y = (y + model(xb.flip(3)).float()) / 2
        out.append(y)
    return torch.cat(out)


def accuracy(logits, y):
    return (logits.argmax(1) == y).float().mean().item()


def train(name, model, data, dev, epochs, batch, opt_kind, lr, wd, smoothing, soft=None, alpha=0.5, temp=2.0, slot_s=None):
    """Trains `model`; `soft` (train-set teacher logits) turns on distillation. Keeps the epoch
    with the lowest validation loss, as `facegender train` does. With `slot_s`, fewer epochs are
    run if the requested ones would not fit in that many seconds (timed on the first 30 steps),
    so that the cosine schedule still ends at zero."""
    g = torch.Generator(device=dev).manual_seed(42)
    xtr, ytr, _ = data["train"]
    xva, yva, _ = data["val"]
    xtr, ytr, xva, yva = xtr.to(dev), ytr.to(dev), xva.to(dev), yva.to(dev)
    model = model.to(dev).to(memory_format=torch.channels_last)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    opt = (
        torch.optim.AdamW(groups, lr=lr)
        if opt_kind == "adamw"
        else torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    )
    steps = len(xtr) // batch
    if slot_s:
        epochs = min(epochs, max(1, int(slot_s / (1.15 * steps * step_seconds(model, xtr, ytr, batch, dev, g)))))
    total, warm = epochs * steps, steps
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (0.05 + 0.95 * s / warm) if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm)))
    )
    best, history, t0 = None, [], time.time()
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(len(xtr), device=dev, generator=g)
        for i in range(steps):
            idx = perm[i * batch : (i + 1) * batch]
            xb = to_input(augment(xtr[idx], g)).contiguous(memory_format=torch.channels_last)
            yb = ytr[idx]
            with torch.autocast("cuda", torch.bfloat16, enabled=dev.type == "cuda"):
                out = model(xb).float()
            loss = F.cross_entropy(out, yb, label_smoothing=smoothing)
            if soft is not None:
                kd = F.kl_div(F.log_softmax(out / temp, 1), F.softmax(soft[idx] / temp, 1), reduction="batchmean")
                loss = alpha * loss + (1 - alpha) * temp * temp * kd
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        lv = logits_of(model, xva)
        vloss = F.cross_entropy(lv, yva).item()
        vacc = accuracy(lv, yva)
        history.append({"epoch": epoch, "val_loss": round(vloss, 4), "val_acc": round(vacc, 4), "s": round(time.time() - t0, 1)})
        print(name, history[-1], flush=True)
        if best is None or vloss < best[0]:
            best = (vloss, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[2])
    return model, {"epochs": epochs, "best_epoch": best[1], "epochs_run": len(history), "seconds": round(time.time() - t0, 1), "history": history}


def step_seconds(model, xtr, ytr, batch, dev, g):
    """Seconds per training step, timed on a throw-away copy of the model."""
    m = copy.deepcopy(model).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.0)
    for i in range(35):
        if i == 5:
            torch.cuda.synchronize() if dev.type == "cuda" else None
            t = time.time()
        idx = torch.randint(0, len(xtr), (batch,), device=dev, generator=g)
        xb = to_input(augment(xtr[idx], g)).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", torch.bfloat16, enabled=dev.type == "cuda"):
            loss = F.cross_entropy(m(xb).float(), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
    return (time.time() - t) / 30


def report(model, data, dev):
    r = {}
    for part in ("val", "test"):
        x, y, _ = data[part]
        x, y = x.to(dev), y.to(dev)
        r[part] = {
            "n": len(y),
            "acc": round(accuracy(logits_of(model, x), y), 4),
            "acc_flip_tta": round(accuracy(logits_of(model, x, tta=True), y), 4),
        }
    return r


class Resized(nn.Module):
    """Runs `inner` on its input resized to `side` pixels (bilinear with antialiasing): a
    lower-resolution crop of the same face."""

    def __init__(self, inner, side):
        super().__init__()
        self.inner, self.side = inner, side

    def forward(self, x):
        return self.inner(F.interpolate(x, size=(self.side, self.side), mode="bilinear", antialias=True, align_corners=False))


def study(data, dev, out, budget_s, quick=False):
    """How the accuracy moves with the amount of training data and with the crop's resolution.
    Runs in order of importance and skips what would overrun `budget_s` (estimated from the
    full-data runs of `models`: 90 s for each network)."""
    t0, results = time.time(), {}
    rng = np.random.default_rng(7)
    full = data["train"]
    runs = [
        ("teacher", 0.5, 64, 40, 45),
        ("student", 0.5, 64, 30, 42),
        ("teacher", 0.25, 64, 40, 23),
        ("student", 0.25, 64, 30, 21),
        ("teacher", 1.0, 48, 40, 55),
        ("teacher", 1.0, 32, 40, 30),
        ("teacher", 1.0, 64, 60, 135),
    ]
    for net, frac, side, epochs, est in runs:
        name = f"{net}-data{int(frac * 100)}-px{side}-ep{epochs}"
        if quick:  # one epoch of a narrow teacher: checks the code paths only
            epochs, est = 1, 0
        if time.time() - t0 + est * 1.2 > budget_s:
            results[name] = "skipped: time budget"
            continue
        keep = np.sort(rng.permutation(len(full[1]))[: int(frac * len(full[1]))])
        sub = dict(data, train=(full[0][keep], full[1][keep], [full[2][i] for i in keep]))
        inner = Teacher(8 if quick else 64) if net == "teacher" else Student()
        model = inner if side == 64 else Resized(inner, side)
        if net == "teacher":
            model, info = train(name, model, sub, dev, epochs, 128, "sgd", 0.1, 5e-4, 0.1)
        else:
            model, info = train(name, model, sub, dev, epochs, 64, "adamw", 1e-3, 5e-4, 0.05)
        results[name] = {"train_n": len(keep), **report(model, data, dev), **info}
        (out / "study.json").write_text(json.dumps(results, indent=1))
        print(name, results[name]["val"], results[name]["test"], flush=True)
    results["total_s"] = round(time.time() - t0, 1)
    (out / "study.json").write_text(json.dumps(results, indent=1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pack", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--quick", action="store_true", help="a few hundred crops, one epoch each: checks the script")
    ap.add_argument("--budget-s", type=float, default=420.0, help="stop training runs after this many seconds")
    ap.add_argument("--student-epochs", type=int, default=30)
    ap.add_argument("--teacher-epochs", type=int, default=40)
    ap.add_argument("--study", action="store_true", help="the data-size and resolution study instead")
    a = ap.parse_args()
    torch.manual_seed(42)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    t0 = time.time()
    data = load(a.pack, 256 if a.quick else 0)
    se, te = (1, 1) if a.quick else (a.student_epochs, a.teacher_epochs)
    a.out.mkdir(parents=True, exist_ok=True)
    if a.study:
        return study(data, dev, a.out, a.budget_s, a.quick)
    results = {"device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu", "torch": torch.__version__,
               "n": {p: len(data[p][1]) for p in PARTS}, "load_s": round(time.time() - t0, 1)}
    save = lambda: (a.out / "results.json").write_text(json.dumps(results, indent=1))
    # the three runs share the budget: a fifth, three fifths and a fifth
    slot = None if a.quick else a.budget_s / 5
    student, info = train("student", Student(), data, dev, se, 64, "adamw", 1e-3, 5e-4, 0.05, slot_s=slot)
    results["student"] = {**report(student, data, dev), **info}
    save()
    teacher, info = train("teacher", Teacher(), data, dev, te, 128, "sgd", 0.1, 5e-4, 0.1, slot_s=slot and 3 * slot)
    results["teacher"] = {**report(teacher, data, dev), **info}
    save()
    with open(a.out / "teacher-logits.csv", "w") as f:
        f.write("path,logit_female,logit_male\n")
        for part in PARTS:
            x, _, names = data[part]
            lg = logits_of(teacher, x.to(dev), tta=True).cpu().numpy()
            for n, (l0, l1) in zip(names, lg):
                f.write(f"{n},{l0:.5f},{l1:.5f}\n")
    # the training part again in the file `facegender train` reads ([train.distill] logits =
    # ...; train/src/teacher.rs): name = class/stem, one column per class
    with open(a.out / "teacher-train.csv", "w") as f:
        f.write("name,female,male\n")
        x, _, names = data["train"]
        lg = logits_of(teacher, x.to(dev), tta=True).cpu().numpy()
        for n, (l0, l1) in zip(names, lg):
            f.write(f"{Path(n).parent.name}/{Path(n).stem},{l0:.5f},{l1:.5f}\n")
    soft = logits_of(teacher, data["train"][0].to(dev), tta=True)
    distilled, info = train("distilled", Student(), data, dev, se, 64, "adamw", 1e-3, 5e-4, 0.05, soft=soft, slot_s=slot)
    results["distilled"] = {**report(distilled, data, dev), **info}
    results["total_s"] = round(time.time() - t0, 1)
    save()
    print(json.dumps({k: v for k, v in results.items() if k not in ("student", "teacher", "distilled")}))
    for k in ("student", "teacher", "distilled"):
        print(k, results[k]["val"], results[k]["test"], "best epoch", results[k]["best_epoch"], results[k]["seconds"], "s")


if __name__ == "__main__":
    main()
