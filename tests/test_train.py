"""The whole model: shapes, training that resumes exactly, sampling, and the train/sample CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import tvq.train as train_mod
from tvq.config import load_config
from tvq.data import load_ucr
from tvq.errors import CheckpointError
from tvq.model import TimeVQVDM, from_diffusion_layout, to_diffusion_layout
from tvq.train import load_model, train

from helpers import tiny_model_config


def tiny(**overrides):
    return tiny_model_config(**overrides)


@pytest.fixture(scope="module")
def ecg200():
    return load_ucr("ECG200")


def test_table1_diffusion_latent_shapes_for_wafer():
    model = TimeVQVDM.from_config(load_config("thesis"), length=152, n_classes=2).eval()
    z0_lf, z0_hf = model.encode(torch.randn(3, 152))
    assert tuple(z0_lf.shape) == (3, 20, 19) and tuple(z0_hf.shape) == (3, 20, 76)


def test_diffusion_layout_round_trip():
    z = torch.randn(2, 5, 19, 4)
    z0 = to_diffusion_layout(z)
    assert z0.shape == (2, 20, 19)
    assert torch.equal(from_diffusion_layout(z0, 5), z)
    # the frequency axis is stacked on channels: channel h*d + k is bin h, code entry k
    assert torch.equal(z0[:, 1 * 4 + 2], z[:, 1, :, 2])


@pytest.mark.parametrize("length", [24, 17, 2844])
def test_shortest_odd_and_longest_lengths_sample_to_their_length(length):
    cfg = tiny()
    model = TimeVQVDM.from_config(cfg, length=length, n_classes=3).eval()
    x = model.sample(2, steps=2, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, length) and torch.isfinite(x).all()
    xc = model.sample(2, class_labels=torch.tensor([0, 2]), steps=2, guidance=3.0,
                      generator=torch.Generator().manual_seed(0))
    assert xc.shape == (2, length)


def test_sampling_is_seeded():
    model = TimeVQVDM.from_config(tiny(), length=40, n_classes=2).eval()
    a = model.sample(4, steps=3, generator=torch.Generator().manual_seed(7))
    b = model.sample(4, steps=3, generator=torch.Generator().manual_seed(7))
    c = model.sample(4, steps=3, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_stage2_loss_has_one_field_per_prior():
    model = TimeVQVDM.from_config(tiny(), length=40, n_classes=2)
    z0_lf, z0_hf = model.encode(torch.randn(4, 40))
    terms = model.stage2_loss(z0_lf, z0_hf, torch.tensor([0, 1, 0, 1]), torch.Generator().manual_seed(0))
    assert set(terms) >= {"total", "lf", "hf"}
    assert torch.allclose(terms["total"], terms["lf"] + terms["hf"])
    terms["total"].backward()
    assert all(p.grad is not None for p in model.unet_hf.parameters())


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_interrupted_training_resumes_to_the_same_result(tmp_path, ecg200, monkeypatch):
    cfg = tiny(stage1_epochs=3, stage2_epochs=3, stage1_batch_size=40, stage2_batch_size=40)
    ref = _state(train(cfg, tmp_path / "a", dataset=ecg200, progress=False))

    real_batches, calls = train_mod.batches, {"n": 0}

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] in (3, 5):  # once mid stage 1, once mid stage 2 (after a resume)
            raise KeyboardInterrupt
        return real_batches(*args, **kwargs)

    monkeypatch.setattr(train_mod, "batches", crashing)
    out = tmp_path / "b"
    for _ in range(2):
        with pytest.raises(KeyboardInterrupt):
            train(cfg, out, dataset=ecg200, progress=False, checkpoint_seconds=0.0)
        assert (out / "checkpoint.pt").exists() and not (out / "model.pt").exists()
    resumed = _state(train(cfg, out, dataset=ecg200, progress=False, checkpoint_seconds=0.0))
    assert resumed.keys() == ref.keys()
    for k in ref:
        assert torch.equal(ref[k], resumed[k]), k
    hist_a = json.loads((tmp_path / "a" / "run.json").read_text())["history"]
    hist_b = json.loads((out / "run.json").read_text())["history"]
    assert hist_a == hist_b


def test_run_json_records_the_threads_of_each_stage_over_its_invocations(tmp_path, ecg200, monkeypatch):
    """Stage 1 interrupted on one thread and finished on two, stage 2 on two: run.json says so."""
    cfg = tiny(stage1_epochs=3, stage2_epochs=2, stage1_batch_size=40, stage2_batch_size=40)
    real_batches, calls = train_mod.batches, {"n": 0}

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # mid stage 1, after two checkpointed epochs
            raise KeyboardInterrupt
        return real_batches(*args, **kwargs)

    monkeypatch.setattr(train_mod, "batches", crashing)
    with pytest.raises(KeyboardInterrupt):
        train(cfg.replace(threads=1), tmp_path, dataset=ecg200, progress=False, checkpoint_seconds=0.0)
    train(cfg.replace(threads=2), tmp_path, dataset=ecg200, progress=False, checkpoint_seconds=0.0)
    threads = json.loads((tmp_path / "run.json").read_text())["threads"]
    assert threads == {"stage1": [1, 2], "stage2": [2]}


def test_training_reduces_the_losses(tmp_path, ecg200):
    cfg = tiny(stage1_epochs=25, stage2_epochs=25)
    train(cfg, tmp_path, dataset=ecg200, progress=False)
    hist = json.loads((tmp_path / "run.json").read_text())["history"]
    assert hist["stage1/total"][-1] < 0.7 * hist["stage1/total"][0]
    assert hist["stage2/total"][-1] < hist["stage2/total"][0]


def test_mismatched_or_corrupted_checkpoint_is_refused(tmp_path, ecg200):
    cfg = tiny(stage1_epochs=1, stage2_epochs=1)
    train(cfg, tmp_path, dataset=ecg200, progress=False)
    with pytest.raises(CheckpointError, match="another dataset or training configuration"):
        train(cfg.replace(hidden_dim=16), tmp_path, dataset=ecg200, progress=False)
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable tvq checkpoint"):
        train(cfg, tmp_path, dataset=ecg200, progress=False)
    model, meta = load_model(tmp_path, device="cpu")
    assert meta["dataset"] == "ECG200" and meta["length"] == 96
    (tmp_path / "model.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable tvq model"):
        load_model(tmp_path)


def test_cuda_where_there_is_none_is_refused(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from tvq.errors import DeviceError

    with pytest.raises(DeviceError, match="no CUDA device"):
        train(tiny(device="cuda"), tmp_path, progress=False)


# -- command line -----------------------------------------------------------------------------------
def _tvq(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tvq", *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    out = _tvq("train", "ECG200", "-f", "smoke", "-p", "stage1_epochs=1", "-p", "stage2_epochs=1", "--out", str(run))
    assert out.returncode == 0, out.stderr
    return run


def test_cli_train_then_sample(trained_run, tmp_path):
    out = _tvq("sample", str(trained_run), "-n", "8", "-o", str(tmp_path / "s.npy"))
    assert out.returncode == 0, out.stderr
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (8, 96) and x.dtype == np.float32 and np.isfinite(x).all()
    out = _tvq("sample", str(trained_run), "-n", "6", "--by-proportion", "--guidance", "3", "-o",
               str(tmp_path / "c.npy"), "--labels-output", str(tmp_path / "c_labels.npy"))
    assert out.returncode == 0, out.stderr
    assert np.load(tmp_path / "c.npy").shape == (6, 96)
    assert set(np.load(tmp_path / "c_labels.npy").tolist()) <= {0, 1}
    # unconditional through the class prior: a sampling parameter, taken by -p
    out = _tvq("sample", str(trained_run), "-n", "6", "-p", "uncond_labels=train_prior", "-o", str(tmp_path / "p.npy"))
    assert out.returncode == 0, out.stderr
    assert np.load(tmp_path / "p.npy").shape == (6, 96)


@pytest.mark.parametrize("args, needle", [
    (["--t-max", "1.5"], "--t-max must lie in (0, 1]"),
    (["--t-max", "0"], "--t-max must lie in (0, 1]"),
    (["--guidance", "-1"], "--guidance must be >= 0"),
    (["--class", "2"], "--class 2 is out of range"),
    (["--rescale", "2"], "--rescale must lie in [0, 1]"),
    (["--device", "cuda"], "no CUDA device"),
    (["-p", "compile=fast"], "compile"),
])
def test_cli_sample_bad_input(trained_run, tmp_path, args, needle):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    target = tmp_path / "s.npy"
    out = _tvq("sample", str(trained_run), "-n", "4", *args, "-o", str(target))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], out.stderr
    assert not target.exists()


def test_cli_missing_and_corrupted_runs(tmp_path, trained_run):
    out = _tvq("sample", str(tmp_path / "nope"), "-n", "4", "-o", str(tmp_path / "s.npy"))
    assert out.returncode == 2 and "no trained model" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.pt").write_bytes((trained_run / "model.pt").read_bytes()[:1000])
    out = _tvq("sample", str(bad), "-n", "4", "-o", str(tmp_path / "s.npy"))
    assert out.returncode == 2 and "not a readable tvq model" in out.stderr


def test_cli_train_bad_params(tmp_path):
    out = _tvq("train", "ECG200", "-f", "smoke", "-p", "stage1_epoch=3", "--out", str(tmp_path))
    assert out.returncode == 2 and "did you mean stage1_epochs" in out.stderr
    out = _tvq("train", "NoSuchSet", "-f", "smoke", "--out", str(tmp_path))
    assert out.returncode == 2 and "unknown UCR dataset" in out.stderr


def test_every_thesis_code_option_together_trains_saves_loads_and_samples(tmp_path, ecg200):
    """The options of tvq.quirks combined: a run folder that trains, reloads and samples like any other."""
    from tvq.quirks import thesis_code_overrides

    overrides = {k: v for k, v in thesis_code_overrides().items() if not k.endswith("weight_decay")}
    cfg = tiny(**overrides)
    train(cfg, tmp_path, dataset=ecg200, progress=False)
    model, meta = load_model(tmp_path)
    assert model.cfg.unet_block_padding == "zeros" and model.unet_hf.cond_thesis_code
    x = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, 96) and torch.isfinite(x).all()


def test_stage2_encode_per_batch_train_uses_batch_statistics(ecg200):
    """The thesis code's stage 2 encodes each batch with batch norm in train mode: the latents of a
    series then depend on the batch it is in, which the cached eval-mode latents never do."""
    cfg = tiny(stage2_encode="per_batch_train")
    model = TimeVQVDM.from_config(cfg, length=96, n_classes=2)
    x = torch.from_numpy(ecg200.x_train[:32])
    model.fit_scalers(x)
    model.eval()
    alone, _ = model.encode(x[:8], train_mode=True)
    in_batch, _ = model.encode(x, train_mode=True)
    assert not torch.allclose(alone, in_batch[:8], atol=1e-4)
    assert torch.allclose(model.encode(x[:8])[0], model.encode(x)[0][:8], atol=1e-5)  # eval mode: no dependence
    assert not model.stage1.training  # the mode it had before is restored


def test_latent_scaler_options_fit_what_they_say(ecg200):
    """latents: the priors' inputs get mean 0 and std 1; encoder_output: S is the 64-channel (here
    hidden_dim) encoder output's mean and std, as the thesis code's run_stage.py fits it, so the
    scaled latents keep their own spread; none: identity scalers."""
    from tvq.train import training_fingerprint

    x = torch.from_numpy(ecg200.x_train[:64])
    cfg = tiny()
    base = TimeVQVDM.from_config(cfg, length=96, n_classes=2).eval()
    state = base.state_dict()
    z_lf, z_hf = base._encode_unscaled(x)
    fitted = {}
    for option in ("latents", "encoder_output", "none"):
        model = TimeVQVDM.from_config(tiny(latent_scaler=option), length=96, n_classes=2).eval()
        model.load_state_dict(state)
        model.fit_scalers(x)
        fitted[option] = model
        s_lf, s_hf = model.encode(x)
        if option == "latents":
            assert abs(float(s_lf.mean())) < 1e-4 and abs(float(s_lf.std()) - 1) < 1e-4
            assert abs(float(s_hf.std()) - 1) < 1e-4
        elif option == "none":
            torch.testing.assert_close(s_lf, z_lf)
            torch.testing.assert_close(s_hf, z_hf)
        else:
            h_lf, h_hf = model.stage1.encoder_output(x)
            assert h_lf.shape[1] == cfg.hidden_dim  # before the projection to d channels
            torch.testing.assert_close(model.scaler_lf.std, h_lf.std())
            torch.testing.assert_close(model.scaler_hf.mean, h_hf.mean())
            torch.testing.assert_close(s_lf, (z_lf - h_lf.mean()) / h_lf.std())
    assert not torch.allclose(fitted["encoder_output"].scaler_lf.std, fitted["latents"].scaler_lf.std)
    # a stored run (default) keeps its fingerprint; the other two are other runs
    prints = {o: training_fingerprint(tiny(latent_scaler=o), ecg200) for o in ("latents", "encoder_output", "none")}
    assert len(set(prints.values())) == 3
    assert prints["latents"] == training_fingerprint(tiny(), ecg200)


def test_a_finished_run_is_read_not_rewritten_by_a_caller_with_other_sampling_fields(tmp_path, ecg200):
    """A bf16 draw (or any other sampling setting) meets the finished checkpoint of the fp32 run: it
    gets the same weights under its own settings, and the run folder keeps what it was trained with."""
    from tvq.train import weights_digest

    out = tmp_path / "run"
    first = train(tiny(), out, dataset=ecg200, progress=False)
    files = {name: (out / name).read_bytes() for name in ("model.pt", "run.json", "config.json")}
    again = train(tiny(sample_bf16=True, steps_uncond=5), out, dataset=ecg200, progress=False)
    assert weights_digest(again) == weights_digest(first)
    assert again.cfg.sample_bf16 and again.cfg.steps_uncond == 5        # the caller's sampling settings
    assert {name: (out / name).read_bytes() for name in files} == files   # the folder's record untouched
    model, _ = load_model(out, device="cpu")
    assert model.cfg.sample_bf16 is False and model.cfg.steps_uncond == tiny().steps_uncond
    # a folder whose model.pt went missing gets it written again from the checkpoint
    (out / "model.pt").unlink()
    train(tiny(), out, dataset=ecg200, progress=False)
    assert (out / "model.pt").is_file()
