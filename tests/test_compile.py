"""``compile``: torch.compile of the networks. Each network must trace as one graph (a graph break
splits a step into pieces that CUDA graphs cannot replay whole), and a compiled run must compute
what the eager run computes, up to the rounding of fused kernels."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tvq.data import load_ucr
from tvq.errors import ConfigError
from tvq.fcn import FCN, Recipe, train_fcn
from tvq.model import TimeVQVDM
from tvq.train import load_model, train
from tvq.quantizer import token_counts

from helpers import tiny_model_config


def tiny(**overrides):
    return tiny_model_config(**{"stage1_batch_size": 50, "stage2_batch_size": 50, **overrides})


def breaks(module, *args, **kwargs) -> list[str]:
    torch._dynamo.reset()
    return [str(b.reason).splitlines()[0] for b in torch._dynamo.explain(module)(*args, **kwargs).break_reasons]


def test_every_network_traces_as_one_graph():
    model = TimeVQVDM.from_config(tiny(), length=96, n_classes=2)
    x = torch.randn(8, 96)
    assert breaks(model.stage1.train(), x) == []          # stage 1's training step, EMA update included
    model.eval().fit_scalers(x)
    z_lf, z_hf = model.encode(x)
    y, t = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]), torch.rand(8)
    for unet, z, cond in ((model.unet_lf, z_lf, None), (model.unet_hf, z_hf, z_lf)):
        assert breaks(unet, z, t, y, cond=cond) == []       # stage 2 (per-sample times, labels)
        with torch.no_grad():                               # sampling (one time, the weight cache)
            assert breaks(unet, z, torch.tensor(0.5), None, cond=cond) == []
    assert breaks(FCN(2), x) == []


def test_token_counts_is_bincount_with_a_fixed_shape():
    idx = torch.randint(0, 12, (1000,))
    counts = token_counts(idx, 16, torch.float32)
    assert counts.shape == (16,) and torch.equal(counts, torch.bincount(idx, minlength=16).float())


def test_compile_mode_is_checked():
    with pytest.raises(ConfigError, match="compile"):
        tiny(compile="fast")


@pytest.fixture(scope="module")
def ecg200():
    return load_ucr("ECG200")


def test_compiled_training_and_sampling_match_eager(tmp_path, ecg200):
    """Two float computations of one step agree to rounding, not bit for bit, and Adam's normalised
    steps and the VQ's nearest-token choice carry rounding on to different weights after a few
    steps. So: the two runs' loss curves agree to 1e-3, and the compiled model, once trained,
    samples what the same weights sample eagerly."""
    history = {}
    for mode in ("none", "default"):
        torch._dynamo.reset()
        compiled = train(tiny(compile=mode), tmp_path / mode, dataset=ecg200, progress=False)
        history[mode] = json.loads((tmp_path / mode / "run.json").read_text())["history"]
    assert history["none"].keys() == history["default"].keys()
    for term in history["none"]:
        np.testing.assert_allclose(history["default"][term], history["none"][term], rtol=1e-3, atol=1e-5,
                                   err_msg=term)
    eager, _ = load_model(tmp_path / "default")        # the same weights, eager: the state dict kept its keys
    assert eager.state_dict().keys() == compiled.state_dict().keys()

    def latents(model):  # before decoding, which rounds to the nearest token (a jump, not rounding)
        _, z_lf, z_hf = model.sample(8, generator=torch.Generator().manual_seed(0), return_latents=True)
        return torch.cat((z_lf.flatten(1), z_hf.flatten(1)), dim=1)
    torch.testing.assert_close(latents(compiled), latents(eager), rtol=1e-3, atol=1e-3)


def test_compiled_fcn_step_and_fit_match_eager(ecg200):
    x, y = torch.from_numpy(ecg200.x_train[:50]), torch.from_numpy(ecg200.y_train[:50])
    eager = FCN(ecg200.n_classes)
    compiled = FCN(ecg200.n_classes)
    compiled.load_state_dict(eager.state_dict())
    torch._dynamo.reset()
    compiled.compile(dynamic=False)
    for net in (eager, compiled):                      # one training step's loss and gradients
        torch.nn.functional.cross_entropy(net(x), y).backward()
    for (name, a), b in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-5, msg=name)

    recipe = Recipe(epochs=2, batch_size=50, lr=1e-3, weight_decay=1e-5, seed=0)
    fitted = train_fcn(ecg200.x_train, ecg200.y_train, ecg200.n_classes, recipe, compile_mode="default")
    plain = FCN(ecg200.n_classes)
    plain.load_state_dict(fitted.state_dict())         # the compiled fit's weights, in an eager network
    with torch.no_grad():
        x_test = torch.from_numpy(ecg200.x_test)
        torch.testing.assert_close(fitted(x_test), plain.eval()(x_test), rtol=1e-3, atol=1e-4)
