"""Speed of scoring generated series: one JSON line with the wall time of FID + IS + memorisation.

"Scoring" is what :func:`tvq.evaluate.evaluate_samples` does once the data set's FCN
evaluator exists: FCN features and softmax of the samples and of the real test set, FID,
IS over 10 splits, and the nearest-training-series distances of samples and test
series. The test set's features are computed on the first call per evaluator only, so
both a first and a repeated call are timed. Training the evaluator (once per data set,
then cached) and TSTR (a full FCN training run on the samples) are not part of it. The
evaluator's weights do not change the cost, so an untrained FCN is timed.

    python benchmarks/bench_evaluate.py                                # ECG200, 1024 samples
    python benchmarks/bench_evaluate.py --dataset CinCECGTorso         # long series (1639)
    python benchmarks/bench_evaluate.py --synthetic 5000 1000 3000     # n_train n_test length
"""
from __future__ import annotations

import argparse
import json
import platform
import time
import types

import numpy as np
import torch

from tvq.config import load_config
from tvq.device import resolve_device
from tvq.evaluate import evaluate_samples
from tvq.fcn import FCN, predict
from tvq.metrics import fid, inception_score, memorisation


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="ECG200")
    ap.add_argument("--synthetic", type=int, nargs=3, metavar=("N_TRAIN", "N_TEST", "LENGTH"),
                    help="random-walk data of this size instead of a UCR set")
    ap.add_argument("--n-samples", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rng = np.random.default_rng(0)
    if args.synthetic:
        n_tr, n_te, length = args.synthetic
        walk = lambda n: (np.cumsum(rng.standard_normal((n, length)), axis=1) / np.sqrt(length)).astype(np.float32)
        ds = types.SimpleNamespace(name=f"synthetic-{n_tr}x{length}", x_train=walk(n_tr), x_test=walk(n_te),
                                   y_train=np.arange(n_tr) % 2, y_test=np.arange(n_te) % 2, n_classes=2)
    else:
        from tvq.data import load_ucr

        ds = load_ucr(args.dataset)
    # Samples: perturbed training series, so features and distances look like real ones.
    idx = rng.integers(0, ds.x_train.shape[0], args.n_samples)
    samples = ds.x_train[idx] + 0.1 * rng.standard_normal((args.n_samples, ds.x_train.shape[1])).astype(np.float32)

    cfg = load_config(overrides={"device": args.device})
    model = FCN(ds.n_classes).to(device).eval()
    predict(model, samples[:8], device=device)  # warm-up: first-call allocations

    (f_gen, p_gen), t_feat_gen = _timed(lambda: predict(model, samples, device=device))
    (f_test, _), t_feat_test = _timed(lambda: predict(model, ds.x_test, device=device))
    _, t_fid = _timed(lambda: fid(f_gen, f_test))
    _, t_is = _timed(lambda: inception_score(p_gen))
    _, t_mem = _timed(lambda: memorisation(samples, ds.x_train, ds.x_test, device=device))
    # First call computes the test set's features too; later calls with the same evaluator reuse them.
    score = lambda: evaluate_samples(ds, samples, cfg=cfg, device=device, model=model, trtr=0.0)
    _, t_first = _timed(score)
    _, t_repeat = _timed(score)

    print(json.dumps({
        "bench": "evaluate", "dataset": ds.name, "n_samples": args.n_samples,
        "n_train": int(ds.x_train.shape[0]), "n_test": int(ds.x_test.shape[0]), "length": int(ds.x_train.shape[1]),
        "device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "seconds": {"features_samples": round(t_feat_gen, 3), "features_test": round(t_feat_test, 3),
                    "fid": round(t_fid, 3), "is": round(t_is, 3), "memorisation": round(t_mem, 3),
                    "scoring_first": round(t_first, 3), "scoring_repeat": round(t_repeat, 3)},
    }))


if __name__ == "__main__":
    main()
