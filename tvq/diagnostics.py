"""Where a trained TimeVQVDM's samples fall short: band by band, with the data set's evaluator.

FID says *that* samples differ from the test set; these checks say *where*. Each splits the
generated series into the two bands the model generates separately and asks the evaluator,
and the codebooks, about each:

1. ``classes``: the evaluator's class split of unconditional samples against the training split
   (mode dropping shows here before it shows in FID).
2. ``lf_only``: the evaluator on the LF band alone, real (test reconstructions) and generated:
   how much of the class decision the LF band carries.
3. ``hf_energy``: the variance of the HF band of real test series, per class, and of the
   samples. A prior that averages over the positions of fine detail produces quieter HF bands.
4. ``swap``: generated LF with the HF band of random real test series, and the reverse: which
   prior's output moves the evaluator.
5. ``nearest_train_label``: for each generated latent, the class of its nearest encoded training
   latent (Euclidean), per band: does a prior alone cover both classes?
6. ``quantisation``: the squared distance of each projected latent vector to its nearest token,
   for encoded test series and for samples. Real latents lie near the codebook by training; a
   prior whose samples lie far from it produces latents the decoder never saw before
   quantisation snapped them.

Everything is computed on one draw of ``n`` unconditional samples with a fixed seed.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .fcn import FCN, predict
from .metrics import fid
from .model import TimeVQVDM, from_diffusion_layout


def _split(p: np.ndarray, n_classes: int) -> list[float]:
    return (np.bincount(p.argmax(axis=1), minlength=n_classes) / len(p)).round(4).tolist()


def _score(evaluator: FCN, x: torch.Tensor, f_test: np.ndarray, n_classes: int) -> dict[str, Any]:
    f, p = predict(evaluator, x.detach().cpu().numpy().astype(np.float32))
    return {"fid": float(fid(f, f_test)), "split": _split(p, n_classes)}


@torch.no_grad()
def _quantisation_error(model: TimeVQVDM, z0: torch.Tensor, band: str) -> float:
    scaler = model.scaler_lf if band == "lf" else model.scaler_hf
    z = from_diffusion_layout(scaler.inverse(z0), model.height)
    vq = (model.stage1.lf if band == "lf" else model.stage1.hf).vq
    z_q, _ = vq.quantize(z)
    return float(((z - z_q) ** 2).sum(dim=-1).mean())


@torch.no_grad()
def band_diagnostics(model: TimeVQVDM, ds, evaluator: FCN, n: int = 512, seed: int = 1) -> dict[str, Any]:
    """The six checks of this module on ``n`` unconditional samples drawn with ``seed``."""
    model.eval()
    c = ds.n_classes
    f_test, _ = predict(evaluator, ds.x_test)
    x_test = torch.from_numpy(ds.x_test).to(model.device)
    zt_lf, zt_hf = model.encode(x_test)
    real_lf, real_hf = model.decode_parts(zt_lf, zt_hf)
    g = torch.Generator().manual_seed(seed)
    _, zs_lf, zs_hf = model.sample(n, generator=g, batch_size=n, return_latents=True)
    gen_lf, gen_hf = model.decode_parts(zs_lf, zs_hf)
    pick = torch.randint(0, len(x_test), (n,), generator=g)
    y_test = torch.from_numpy(np.asarray(ds.y_test))
    ztr_lf, ztr_hf = model.encode(torch.from_numpy(ds.x_train).to(model.device))

    def nearest_split(z_gen: torch.Tensor, z_train: torch.Tensor) -> list[float]:
        idx = torch.cdist(z_gen.flatten(1), z_train.flatten(1)).argmin(dim=1).cpu().numpy()
        return (np.bincount(np.asarray(ds.y_train)[idx], minlength=c) / len(idx)).round(4).tolist()

    return {
        "n": n, "seed": seed,
        "classes": {"samples": _score(evaluator, gen_lf + gen_hf, f_test, c)["split"],
                    "train": (np.bincount(ds.y_train, minlength=c) / len(ds.y_train)).round(4).tolist()},
        "samples": _score(evaluator, gen_lf + gen_hf, f_test, c),
        "test_reconstruction": _score(evaluator, real_lf + real_hf, f_test, c),
        "lf_only": {"test": _score(evaluator, real_lf, f_test, c), "samples": _score(evaluator, gen_lf, f_test, c)},
        "hf_energy": {"test": float(real_hf.var()), "samples": float(gen_hf.var()),
                      "test_per_class": [float(real_hf[y_test == k].var()) if (y_test == k).any() else None
                                         for k in range(c)]},
        "swap": {"generated_lf_real_hf": _score(evaluator, gen_lf + real_hf[pick], f_test, c),
                 "real_lf_generated_hf": _score(evaluator, real_lf[pick] + gen_hf, f_test, c)},
        "nearest_train_label": {"lf": nearest_split(zs_lf, ztr_lf), "hf": nearest_split(zs_hf, ztr_hf),
                                "test_lf": nearest_split(zt_lf, ztr_lf), "test_hf": nearest_split(zt_hf, ztr_hf)},
        "quantisation": {"test_lf": _quantisation_error(model, zt_lf, "lf"),
                         "samples_lf": _quantisation_error(model, zs_lf, "lf"),
                         "test_hf": _quantisation_error(model, zt_hf, "hf"),
                         "samples_hf": _quantisation_error(model, zs_hf, "hf")},
    }
