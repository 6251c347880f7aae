"""Speed of the thesis architecture: one JSON line with the median seconds per optimizer step of
stage 1 and stage 2, and the wall time of 1024 unconditional samples (128 LF + 128 HF steps).

Setting of the reference figures (the thesis's own code, same machine kind, 2 threads):
ECG5000 (500 training series, length 140: latent widths 17 and 70), batch 128.
The untrained weights do not change the cost of a step.

    python benchmarks/bench_model.py                       # the reference setting
    python benchmarks/bench_model.py --bf16                # sampling under bfloat16 autocast
    python benchmarks/bench_model.py --device cuda --n-samples 4096
"""
from __future__ import annotations

import json
import platform
import time

import torch

from timing import median_seconds, model_setting_parser, stage1_step, stage2_step, sync

from tvq.config import load_config
from tvq.data import load_ucr
from tvq.device import resolve_device
from tvq.model import TimeVQVDM


def main() -> None:
    ap = model_setting_parser(__doc__)
    ap.add_argument("--steps", type=int, default=10, help="timed optimizer steps per stage")
    ap.add_argument("--n-samples", type=int, default=1024)
    ap.add_argument("--sample-steps", type=int, default=128)
    ap.add_argument("--bf16", action="store_true", help="sample under bfloat16 autocast")
    ap.add_argument("--stage1-bf16", action="store_true", help="stage 1 under bfloat16 autocast")
    ap.add_argument("--skip-sampling", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    ds = load_ucr(args.dataset)
    cfg = load_config("thesis", {"dataset": args.dataset, "device": args.device,
                                  "stage1_precision": "bf16" if args.stage1_bf16 else "fp32"})
    torch.manual_seed(0)
    model = TimeVQVDM.from_config(cfg, length=ds.length, n_classes=ds.n_classes).to(device)
    x = torch.from_numpy(ds.x_train).to(device)
    y = torch.from_numpy(ds.y_train).to(device)
    g = torch.Generator().manual_seed(0)
    bs = args.batch_size

    # Stage 1, then stage 2 on the frozen stage 1's latents: one AdamW step each (Algorithms 1, 2).
    stage1 = median_seconds(stage1_step(model, x, bs, g), args.steps, device, warmup=2)
    stage2 = median_seconds(stage2_step(model, x, y, bs, g), args.steps, device, warmup=2)

    out = {
        "dataset": args.dataset, "length": ds.length, "latent_widths": [model.width_lf, model.width_hf],
        "batch_size": bs, "threads": args.threads, "device": str(device),
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
        "stage1_precision": cfg.stage1_precision, "stage1_step_s": round(stage1, 4), "stage2_step_s": round(stage2, 4),
    }
    if not args.skip_sampling:
        model.eval()
        sync(device)
        t0 = time.perf_counter()
        s = model.sample(args.n_samples, steps=args.sample_steps, generator=torch.Generator().manual_seed(0),
                         batch_size=args.n_samples, bf16=args.bf16)
        sync(device)
        out[f"sample_{args.n_samples}_s"] = round(time.perf_counter() - t0, 2)
        out["sample_steps"] = args.sample_steps
        out["bf16"] = args.bf16
        out["samples_finite"] = bool(torch.isfinite(s).all())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
