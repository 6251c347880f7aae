"""Memorisation check of the two unconditional routes on retrained GunPoint priors (issue: quality parity).

For each seed given, draws the protocol's first unconditional run (32 steps, sigma^2 delta) through the
class prior and through the null class, and writes tvq.metrics.memorisation of each (nearest-training-
series distances of the samples beside those of the real test series) to
results/parity/GunPoint-memorisation.json.

    python scripts/parity_memorisation.py 1        # runs/parity/GunPoint-prior-s1
"""
import sys, json, numpy as np, torch
sys.path.insert(0, "scripts")
from parity_marginal import protocol_draw
from tvq.train import load_model
from tvq.data import load_ucr
from tvq.metrics import memorisation
torch.set_num_threads(1)
out = {}
for s in sys.argv[1:]:
    model, meta = load_model(f"runs/parity/GunPoint-prior-s{s}", "cpu")
    ds = load_ucr("GunPoint")
    cfg = model.cfg.replace(steps_uncond=32, sample_noise="variance")
    for route in ("train_prior", "null"):
        x = protocol_draw(model, route, 1024, np.bincount(ds.y_train, minlength=2), cfg)
        m = memorisation(x, ds.x_train, ds.x_test)
        out[f"s{s} {route}"] = m
        print(s, route, json.dumps(m), flush=True)
from tvq.io import write_json  # noqa: E402
path = __import__("pathlib").Path("results/parity/GunPoint-memorisation.json")
old = json.loads(path.read_text()) if path.is_file() else {}
write_json(path, {**old, **out})
