"""``tvq sample``: draw series from a trained model (Algorithm 4)."""
from __future__ import annotations

import argparse
import math
import time

from pathlib import Path

import numpy as np
import torch

from .config import SEED_MAX
from .sampling import SAMPLERS
from .device import compile_modules, seed_everything, set_threads
from .errors import ConfigError, EvaluationError
from .io import check_output, save_npys


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="draw series from a trained model")
    p.add_argument("run", help="run folder written by `tvq train`")
    p.add_argument("-n", type=int, default=None, help="number of series (default: the run's n_samples)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--class", dest="klass", type=int, default=None,
                       help="class index 0..C-1 for every series; default unconditional")
    which.add_argument("--by-proportion", action="store_true",
                       help="class-conditional with the training class proportions (thesis protocol)")
    p.add_argument("--sampler", choices=SAMPLERS, default=None,
                   help="ancestral (Algorithm 3, the thesis's; default: the run's) or a deterministic ODE solver")
    p.add_argument("--steps", type=int, default=None, help="denoising steps for LF and HF")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance weight w >= 0")
    p.add_argument("--rescale", type=float, default=None, help="rescale gamma in [0, 1]")
    p.add_argument("--rescale-mode", choices=("global", "per_sample", "lin"), default=None)
    p.add_argument("--t-max", type=float, default=None, help="where the sampler starts, in (0, 1]")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: the run's `threads`; pin it for bitwise reruns)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a sampling parameter of the run's config ({', '.join(SAMPLING_KEYS)}); "
                        "the flags above are shorthands for some of them")
    p.add_argument("-o", "--output", required=True, help="samples .npy (N, L) float32")
    p.add_argument("--labels-output", default=None, help="class labels .npy for conditional sampling")
    p.set_defaults(func=_cli_sample)


# The Config fields a trained model can be sampled with differently (everything else was fixed by training).
SAMPLING_KEYS = ("sampler", "steps_uncond", "steps_cond", "guidance", "rescale", "rescale_mode", "t_max",
                 "sample_batch_size", "sample_bf16", "sample_noise", "sample_noise_cond", "uncond_labels", "n_samples",
                 "seed", "threads", "compile")


def _cli_sample(args: argparse.Namespace) -> int:
    from .config import parse_overrides
    from .sampling import SamplerOptions
    from .train import load_model

    overrides = parse_overrides(args.param)
    fixed = sorted(set(overrides) - set(SAMPLING_KEYS))
    if fixed:
        raise ConfigError(f"-p {', '.join(fixed)}: not a sampling parameter (training fixed it); "
                          f"tvq sample takes {', '.join(SAMPLING_KEYS)}")

    if args.n is not None and args.n <= 0:
        raise ConfigError(f"-n must be positive, got {args.n}")
    if args.steps is not None and args.steps <= 0:
        raise ConfigError(f"--steps must be positive, got {args.steps}")
    if args.t_max is not None and not 0.0 < args.t_max <= 1.0:
        raise ConfigError(f"--t-max must lie in (0, 1], got {args.t_max}")
    if args.guidance is not None and args.guidance < 0:
        raise ConfigError(f"--guidance must be >= 0, got {args.guidance}")
    if args.rescale is not None and not 0.0 <= args.rescale <= 1.0:
        raise ConfigError(f"--rescale must lie in [0, 1], got {args.rescale}")
    for flag, value in (("--guidance", args.guidance), ("--rescale", args.rescale), ("--t-max", args.t_max)):
        if value is not None and not math.isfinite(value):
            raise ConfigError(f"{flag} must be a finite number, got {value}")
    if args.seed is not None and not 0 <= args.seed <= SEED_MAX:
        raise ConfigError(f"--seed must lie in 0..2**63-1, got {args.seed}")
    if args.threads is not None and args.threads < 0:
        raise ConfigError(f"--threads must be >= 0, got {args.threads}")
    if args.labels_output and args.klass is None and not args.by_proportion:
        raise ConfigError("--labels-output needs conditional samples: add --class K or --by-proportion")
    # Every output is checked before the (possibly long) sampling starts.
    check_output(args.output, "-o")
    if args.labels_output:
        check_output(args.labels_output, "--labels-output")
        if Path(args.labels_output).resolve() == Path(args.output).resolve():
            raise ConfigError("-o and --labels-output name the same file")
    model, meta = load_model(args.run, device=args.device)
    cfg = model.cfg.replace(**overrides)   # validated like any config
    set_threads(cfg.threads if args.threads is None else args.threads)
    compile_modules((model.unet_lf, model.unet_hf), cfg.compile)   # the networks the sampler evaluates
    n = args.n or cfg.n_samples
    generator = seed_everything(cfg.seed if args.seed is None else args.seed)
    conditional = args.klass is not None or args.by_proportion
    labels = None
    if args.klass is not None:
        if not 0 <= args.klass < meta["n_classes"]:
            raise EvaluationError(f"--class {args.klass} is out of range: {meta['dataset']} has classes 0..{meta['n_classes'] - 1}")
        labels = torch.full((n,), args.klass, dtype=torch.long)
    else:   # by proportion, or unconditional: the null class or the training proportions (uncond_labels)
        from .sampling import unconditional_labels

        route = "train_prior" if args.by_proportion else cfg.uncond_labels
        labels = unconditional_labels(route, meta["class_counts"], n, generator)
    options = SamplerOptions.from_config(cfg, conditional).replace(
        steps=args.steps, guidance=args.guidance if conditional else None, rescale=args.rescale,
        rescale_mode=args.rescale_mode, t_max=args.t_max, sampler=args.sampler)
    t0 = time.monotonic()
    x = model.sample(n, class_labels=labels, options=options, generator=generator)
    x = x.cpu().numpy().astype(np.float32)
    if not np.isfinite(x).all():
        raise EvaluationError("sampling produced non-finite values; nothing was written")
    if args.labels_output:   # the samples and their labels: both files or neither
        save_npys([args.output, args.labels_output], [x, labels.cpu().numpy().astype(np.int64)])
    else:
        save_npys([args.output], [x])
    print(f"{n} series of length {x.shape[1]} from {meta['dataset']} in {time.monotonic() - t0:.1f} s "
          f"({'class-conditional' if conditional else 'unconditional'}, {options.sampler}, {options.steps} steps) "
          f"-> {args.output}")
    return 0
