"""tvq.diagnostics on a smoke model: every check is computed and consistent with its parts."""
from __future__ import annotations

import numpy as np
import torch

from tvq.config import load_config
from tvq.data import load_ucr
from tvq.diagnostics import band_diagnostics
from tvq.fcn import FCN
from tvq.train import train


def test_band_diagnostics_on_a_smoke_model(tmp_path):
    cfg = load_config("smoke", dataset="ECG200")
    model = train(cfg, tmp_path / "run", progress=False)
    ds = load_ucr("ECG200")
    torch.manual_seed(0)
    ev = FCN(ds.n_classes).eval()
    out = band_diagnostics(model, ds, ev, n=16, seed=3)
    for split in (out["classes"]["samples"], out["lf_only"]["test"]["split"], out["swap"]["generated_lf_real_hf"]["split"]):
        assert len(split) == ds.n_classes and abs(sum(split) - 1) < 1e-3
    assert out["classes"]["train"] == (np.bincount(ds.y_train) / len(ds.y_train)).round(4).tolist()
    assert out["hf_energy"]["samples"] > 0 and all(v > 0 for v in out["hf_energy"]["test_per_class"])
    q = out["quantisation"]
    assert all(v >= 0 for v in q.values())
    # the same seed gives the same draw, a different one another
    again = band_diagnostics(model, ds, ev, n=16, seed=3)
    assert again["samples"]["fid"] == out["samples"]["fid"]
    assert band_diagnostics(model, ds, ev, n=16, seed=4)["samples"]["fid"] != out["samples"]["fid"]


def test_quantised_latents_have_no_quantisation_error(tmp_path):
    """With stage2_latents=quantized the encoded latents are tokens: their distance to the codebook is 0."""
    from tvq.diagnostics import _quantisation_error

    cfg = load_config("smoke", dataset="ECG200", stage2_latents="quantized")
    model = train(cfg, tmp_path / "run", progress=False)
    ds = load_ucr("ECG200")
    z_lf, z_hf = model.encode(torch.from_numpy(ds.x_test[:8]))
    assert _quantisation_error(model, z_lf, "lf") < 1e-8 and _quantisation_error(model, z_hf, "hf") < 1e-8
    cont = load_config("smoke", dataset="ECG200")
    model_c = train(cont, tmp_path / "run_c", progress=False)
    z_lf, _ = model_c.encode(torch.from_numpy(ds.x_test[:8]))
    assert _quantisation_error(model_c, z_lf, "lf") > 1e-6


def test_retrain_stage2_keeps_stage1_and_applies_the_override(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from tvq.train import load_model

    root = Path(__file__).resolve().parent.parent
    train(load_config("smoke", dataset="ECG200"), tmp_path / "base", progress=False)
    proc = subprocess.run([sys.executable, str(root / "scripts" / "retrain_stage2.py"), str(tmp_path / "base"),
                           str(tmp_path / "s2"), "p_uncond=0.3", "seed=5"], capture_output=True, text=True,
                          timeout=600, cwd=root)
    assert proc.returncode == 0, proc.stderr
    base, _ = load_model(tmp_path / "base", "cpu")
    new, meta = load_model(tmp_path / "s2", "cpu")
    assert meta["config"]["p_uncond"] == 0.3 and meta["config"]["seed"] == 5
    for (k, a), (_, b) in zip(base.stage1.state_dict().items(), new.stage1.state_dict().items()):
        assert torch.equal(a, b), k
    assert not all(torch.equal(a, b) for a, b in zip(base.unet_lf.state_dict().values(), new.unet_lf.state_dict().values()))
