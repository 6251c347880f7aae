"""How close each phase of the protocol runs to this machine's limit, in fp32 and in bf16.

For each phase — a stage-1 optimiser step, a stage-2 optimiser step, a TSTR FCN optimiser step,
and drawing unconditional samples (128 LF + 128 HF network evaluations each) — it prints:

* the median wall seconds (after warm-up);
* the floating-point operations of one call, counted by ``torch.utils.flop_counter`` (matrix
  multiplies and convolutions, forward and backward; element-wise work is not counted, so the
  achieved rate is a lower bound on the work done);
* the achieved GFLOP/s and its fraction of a matrix-multiply peak measured in the same run,
  with the same threads and precision (a square ``torch.mm`` of up to 2048², timed right before
  and right after each phase, the better of the two kept; for bf16, the better of the bf16 and
  the fp32 multiply, since emulated bf16 is no limit), so that a slow day on a shared machine
  moves both sides of the ratio. Run it on an otherwise idle machine: other processes on the same
  cores make the two readings disagree.

bf16 is torch's autocast (the weights stay fp32); on a CPU it pays only where the cores have
bf16 units (AVX512-BF16 / AMX), which the output reports. One JSON object per line; the last
line is a summary table.

    python benchmarks/bench_phases.py                          # ECG5000, 2 threads, fp32 and bf16
    python benchmarks/bench_phases.py --dataset GunPoint --n-samples 256
    python benchmarks/bench_phases.py --device cuda --n-samples 4096
    python benchmarks/bench_phases.py --compile none,default --precisions fp32   # torch.compile vs eager
    python benchmarks/bench_phases.py --device cuda --compile none,reduce-overhead # CUDA graphs

``--compile`` times each phase once per mode (``tvq.device.compile_modules`` on stage 1, the two
U-Nets and the FCN, as ``-p compile=MODE`` does). A compiled row's first call, which compiles, is
reported as ``compile_s`` and left out of the timing; its FLOPs are the eager row's (the same
arithmetic). The summary gives each mode's speed-up over eager per phase, from this one run.
"""
from __future__ import annotations

import contextlib
import json
import platform
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from timing import median_seconds, model_setting_parser, seconds, stage1_step, stage2_step, sync

from tvq.config import load_config
from tvq.data import load_ucr
from tvq.device import compile_modules, resolve_device
from tvq.fcn import FCN
from tvq.model import TimeVQVDM


def cpu_bf16_units() -> dict[str, bool]:
    """Which bf16 instruction sets the CPU reports (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        flags = set(open("/proc/cpuinfo").read().split())
    except OSError:
        flags = set()
    return {f: f in flags for f in ("avx512_bf16", "amx_bf16")}


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def matmul_peak(device: torch.device, bf16: bool, max_n: int = 2048, repeats: int = 5,
                min_seconds: float = 0.05) -> tuple[float, int]:
    """GFLOP/s of an n×n by n×n matrix multiply in the given precision: the machine's practical peak.

    n doubles from 256 until one multiply takes ``min_seconds`` or n reaches ``max_n``: large
    enough to saturate the cores, yet bounded in time where a precision is emulated (bf16 on a
    CPU without bf16 units runs a 2048² multiply at a few GFLOP/s, which made one peak reading
    take minutes). Returns (GFLOP/s, n).
    """
    dtype = torch.bfloat16 if bf16 else torch.float32
    n = 256
    while True:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        torch.mm(a, b)                                   # warm-up at this size
        sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        if time.perf_counter() - t0 >= min_seconds or n >= max_n:
            break
        n *= 2
    sec = median_seconds(lambda: torch.mm(a, b), repeats, device, warmup=1)
    return 2 * n**3 / sec / 1e9, n


def best_matmul_peak(device: torch.device, bf16: bool) -> tuple[float, int, str]:
    """The peak a phase in this precision can be held to: for bf16, the better of the bf16 and the
    fp32 multiply. Where the cores have no bf16 units, bf16 is emulated far below the fp32 rate
    (2 against 100 GFLOP/s on a Zen 4 with oneDNN held to AVX2), and a bf16-only peak would put
    phases at "200 % of peak"; the fp32 multiply is then the machine's real limit."""
    rate, n = matmul_peak(device, bf16)
    best = (rate, n, "bf16" if bf16 else "fp32")
    if bf16:
        rate32, n32 = matmul_peak(device, False)
        if rate32 > rate:
            best = (rate32, n32, "fp32")
    return best


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def fcn_step(n_classes: int, x: torch.Tensor, batch_size: int, generator: torch.Generator,
             compile_mode: str = "none"):
    """One AdamW step of the FCN recipe (appendix D) on ``batch_size`` series of ``x``."""
    model = FCN(n_classes).to(x.device).train()
    compile_modules([model], compile_mode)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-5, foreach=True)
    y = torch.arange(len(x), device=x.device) % n_classes

    def step() -> None:
        idx = torch.randint(len(x), (batch_size,), generator=generator).to(x.device)
        logits = model(x[idx])
        loss = torch.nn.functional.cross_entropy(logits if logits.dim() == 2 else logits[0], y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def main() -> None:
    ap = model_setting_parser(__doc__)
    ap.add_argument("--fcn-batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5, help="timed calls per phase")
    ap.add_argument("--n-samples", type=int, default=128, help="samples per timed sampling call")
    ap.add_argument("--sample-steps", type=int, default=128)
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--compile", default="none",
                    help="comma-separated torch.compile modes to time: none (eager), default, reduce-overhead")
    args = ap.parse_args()
    modes = args.compile.split(",")
    if "none" not in modes:
        modes.insert(0, "none")                        # compiled rows borrow the eager rows' FLOPs

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    ds = load_ucr(args.dataset)
    cfg = load_config("thesis", {"dataset": args.dataset, "device": args.device})
    x = torch.from_numpy(ds.x_train).to(device)
    y = torch.from_numpy(ds.y_train).to(device)
    machine = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
               "device": str(device), "torch": torch.__version__, **cpu_bf16_units()}
    print(json.dumps({"machine": machine, "dataset": args.dataset, "length": ds.length}), flush=True)

    rows, flops_of = [], {}
    for precision, mode in [(p, m) for p in args.precisions.split(",") for m in modes]:
        bf16 = precision == "bf16"
        torch.manual_seed(0)
        model = TimeVQVDM.from_config(cfg.replace(stage1_precision="bf16" if bf16 else "fp32"),
                                      length=ds.length, n_classes=ds.n_classes).to(device)
        torch._dynamo.reset()
        compile_modules((model.stage1, model.unet_lf, model.unet_hf), mode)
        g = torch.Generator().manual_seed(0)
        s1 = stage1_step(model, x, args.batch_size, g)   # stage1_precision sets the autocast of stage 1
        s2_inner = stage2_step(model, x, y, args.batch_size, g)
        # (defaults bind this iteration's values: each phase is timed inside its own iteration)
        s2 = lambda bf16=bf16, inner=s2_inner: _under(autocast(device, bf16), inner)
        f_inner = fcn_step(ds.n_classes, x, args.fcn_batch_size, g, mode)
        f = lambda bf16=bf16, inner=f_inner: _under(autocast(device, bf16), inner)
        model.eval()

        def sample(model=model, bf16=bf16) -> None:
            model.sample(args.n_samples, steps=args.sample_steps, generator=torch.Generator().manual_seed(0),
                         batch_size=args.n_samples, bf16=bf16)

        phases = [("stage1 step", s1, args.steps), ("stage2 step", s2, args.steps), ("fcn step", f, args.steps),
                  (f"{args.n_samples} samples", sample, max(1, args.steps // 2))]
        for name, fn, repeats in phases:
            compile_s = None
            if mode == "none":
                flops = flops_of[(precision, name)] = count_flops(fn)
            else:                                      # the first call compiles (the step's shapes are fixed)
                flops, compile_s = flops_of[(precision, name)], seconds(fn, device)
            before = best_matmul_peak(device, bf16)    # right before the phase: the same load on the machine
            sec = median_seconds(fn, repeats, device, warmup=1)
            after = best_matmul_peak(device, bf16)     # and right after; the better reading is the peak
            peak, peak_n, peak_precision = max(before, after)
            row = {"precision": precision, "compile": mode, "compile_s": compile_s and round(compile_s, 1),
                   "phase": name, "seconds": round(sec, 4), "gflop": round(flops / 1e9, 3),
                   "gflops_per_s": round(flops / sec / 1e9, 1), "matmul_peak_gflops": round(peak, 1),
                   "matmul_peak_n": peak_n, "matmul_peak_precision": peak_precision,
                   "fraction_of_peak": round(flops / sec / 1e9 / peak, 3)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    # the ratio the issue asks for: bf16 over fp32 speed-up per phase, measured in this one run
    by = {(r["precision"], r["compile"], r["phase"]): r for r in rows}
    speedup = {ph: round(by[("fp32", "none", ph)]["seconds"] / by[("bf16", "none", ph)]["seconds"], 2)
               for (p, m, ph) in by if (p, m) == ("fp32", "none") and ("bf16", "none", ph) in by}
    compiled = {f"{p}/{m}": {ph: round(by[(p, "none", ph)]["seconds"] / by[(p, m, ph)]["seconds"], 2)
                             for (p2, m2, ph) in by if (p2, m2) == (p, m)}
                for (p, m, _) in by if m != "none"}
    print(json.dumps({"summary": {"bf16_speedup": speedup, "compile_speedup": compiled,
                                  "peak_gflops": {p: by[(p, m, ph)]["matmul_peak_gflops"] for (p, m, ph) in by}}}))


def _under(ctx, fn) -> None:
    with ctx:
        fn()


if __name__ == "__main__":
    main()
