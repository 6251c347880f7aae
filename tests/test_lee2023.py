"""The thesis's evaluators (tvq.lee2023): key mapping, verification, download, and TRTR = Table 5."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import zip_of
from tvq import lee2023
from tvq.config import load_config
from tvq.data import load_ucr
from tvq.errors import CheckpointError, ConfigError, DownloadError
from tvq.evaluate import evaluate_samples, get_evaluator
from tvq.results import thesis_table


# -- a published-format state dict, and the published network written out by hand ------------------
def lee_state_dict(n_classes: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights *and* batch-norm statistics in FCNBaseline's key layout."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for i, (c_in, c_out, k) in enumerate([(1, 128, 8), (128, 256, 5), (256, 128, 3)]):
        conv, bn = f"layers.{i}.layers.0", f"layers.{i}.layers.1"
        state[f"{conv}.weight"] = torch.randn(c_out, c_in, k, generator=g) / (c_in * k) ** 0.5
        state[f"{conv}.bias"] = torch.randn(c_out, generator=g) * 0.1
        state[f"{bn}.weight"] = 1 + 0.2 * torch.randn(c_out, generator=g)
        state[f"{bn}.bias"] = 0.1 * torch.randn(c_out, generator=g)
        state[f"{bn}.running_mean"] = 0.3 * torch.randn(c_out, generator=g)
        state[f"{bn}.running_var"] = 0.5 + torch.rand(c_out, generator=g)
        state[f"{bn}.num_batches_tracked"] = torch.tensor(1000)
    state["final.weight"] = torch.randn(n_classes, 128, generator=g) * 0.1
    state["final.bias"] = torch.randn(n_classes, generator=g) * 0.1
    return state


def published_logits(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Lee et al.'s FCNBaseline in eval mode, from its description, independent of tvq.fcn.

    Their Conv1dSamePadding pads k - 1 zeros in all: when that is odd, one extra zero goes on
    the right first, then (k - 1) // 2 on both sides. BatchNorm1d uses eps 1e-5.
    """
    h = x.unsqueeze(1)
    for i in range(3):
        w, b = state[f"layers.{i}.layers.0.weight"], state[f"layers.{i}.layers.0.bias"]
        total = w.shape[-1] - 1
        if total % 2:
            h = F.pad(h, (0, 1))
        h = F.conv1d(h, w, b, padding=total // 2)
        bn = f"layers.{i}.layers.1"
        h = (h - state[f"{bn}.running_mean"][:, None]) / torch.sqrt(state[f"{bn}.running_var"][:, None] + 1e-5)
        h = torch.relu(h * state[f"{bn}.weight"][:, None] + state[f"{bn}.bias"][:, None])
    return h.mean(dim=-1) @ state["final.weight"].T + state["final.bias"]


@pytest.fixture
def fake_pins(monkeypatch):
    """Pin SHA-256 values of files the test writes itself, instead of the published ones."""
    pins: dict[str, str] = {}
    monkeypatch.setattr(lee2023, "pinned_sha256", lambda: pins)
    lee2023._load.cache_clear()
    yield pins
    lee2023._load.cache_clear()


def _save(state: dict, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TVQ_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TVQ_EVALUATOR_DIR", raising=False)
    return tmp_path / "cache"


# -- 1. the key mapping ----------------------------------------------------------------------------
@pytest.mark.parametrize("length", [1, 2, 7, 150, 301])
def test_mapped_weights_give_the_published_networks_logits(length):
    state = lee_state_dict(n_classes=3, seed=length)
    from tvq.fcn import FCN

    model = FCN(3)
    model.load_state_dict(lee2023.to_tvq_state_dict(state), strict=True)
    model.eval()
    x = torch.randn(5, length, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(x), published_logits(state, x), rtol=1e-5, atol=1e-5)


def test_mapping_refuses_foreign_keys():
    state = lee_state_dict(2)
    state["layers.3.layers.0.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="unexpected key"):
        lee2023.to_tvq_state_dict(state)


def test_real_checkpoint_matches_the_published_network(real_evaluators):
    state = torch.load(real_evaluators / "GunPoint.ckpt", map_location="cpu", weights_only=True)
    model = lee2023.load_evaluator("GunPoint", 2)
    x = torch.from_numpy(load_ucr("GunPoint").x_test[:32])
    with torch.no_grad():
        torch.testing.assert_close(model(x), published_logits(state, x), rtol=1e-4, atol=1e-4)


# -- 2. where the files come from, and what is refused ---------------------------------------------------
def test_pins_cover_the_archive():
    from tvq.data import all_datasets

    assert set(lee2023.pinned_sha256()) == {i.name for i in all_datasets()}


def test_evaluator_dir_is_read_and_verified(tmp_path, monkeypatch, fake_pins, cache):
    fake_pins["GunPoint"] = _save(lee_state_dict(2), tmp_path / "ev" / "GunPoint.ckpt")
    monkeypatch.setenv("TVQ_EVALUATOR_DIR", str(tmp_path / "ev"))
    assert lee2023.checkpoint_path("GunPoint") == tmp_path / "ev" / "GunPoint.ckpt"
    assert lee2023.load_evaluator("GunPoint", 2).n_classes == 2
    assert not cache.exists()  # nothing downloaded, nothing cached


@pytest.mark.parametrize("damage", ["missing", "tampered", "truncated", "wrong-classes", "unpinned-name"])
def test_bad_checkpoints_are_refused(damage, tmp_path, monkeypatch, fake_pins, cache):
    folder = tmp_path / "ev"
    path = folder / "GunPoint.ckpt"
    fake_pins["GunPoint"] = _save(lee_state_dict(3 if damage == "wrong-classes" else 2), path)
    monkeypatch.setenv("TVQ_EVALUATOR_DIR", str(folder))
    if damage == "missing":
        path.unlink()
        needle = "holds no GunPoint.ckpt"
    elif damage == "tampered":
        body = bytearray(path.read_bytes())
        body[len(body) // 2] ^= 0xFF
        path.write_bytes(bytes(body))
        needle = "does not match the SHA-256"
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
        needle = "does not match the SHA-256"
    elif damage == "wrong-classes":
        needle = "has 3 classes, GunPoint has 2"
    else:
        with pytest.raises(CheckpointError, match="no Lee et al"):
            lee2023.load_evaluator("NotADataset", 2)
        return
    with pytest.raises(CheckpointError, match=needle):
        lee2023.load_evaluator("GunPoint", 2)


def test_a_pickle_payload_never_runs(tmp_path, monkeypatch, fake_pins, cache):
    """Even a file whose hash was pinned cannot execute code: it is read with weights_only=True."""
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "ev" / "GunPoint.ckpt"
    fake_pins["GunPoint"] = _save({"final.weight": Payload()}, path)
    monkeypatch.setenv("TVQ_EVALUATOR_DIR", str(path.parent))
    with pytest.raises(CheckpointError, match="not a readable state dict"):
        lee2023.load_evaluator("GunPoint", 2)
    assert not marker.exists()


# -- 3. the download, against a server on 127.0.0.1 -----------------------------------------------------
@pytest.fixture
def published(tmp_path, fake_pins):
    """Two checkpoints as the zip has them (inside a folder), pinned."""
    files = {}
    for name, k in (("GunPoint", 2), ("Coffee", 2)):
        fake_pins[name] = _save(lee_state_dict(k), tmp_path / "src" / f"{name}.ckpt")
        files[f"saved_models/{name}.ckpt"] = (tmp_path / "src" / f"{name}.ckpt").read_bytes()
    return files


def _leftovers(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file()) if cache.exists() else []


def test_download_once_then_cache(server, monkeypatch, cache, published):
    server.payloads["/lee.zip"] = zip_of({**published, "saved_models/README.txt": b"x"})
    monkeypatch.setenv("TVQ_EVALUATOR_URL", f"{server.base}/lee.zip")
    path = lee2023.checkpoint_path("GunPoint")
    assert _leftovers(cache) == ["evaluators/lee2023/Coffee.ckpt", "evaluators/lee2023/GunPoint.ckpt"]
    server.payloads.clear()  # a second use must not touch the network
    assert lee2023.checkpoint_path("Coffee").parent == path.parent
    assert lee2023.load_evaluator("GunPoint", 2).n_classes == 2


@pytest.mark.parametrize("damage", ["tampered-member", "truncated", "not-a-zip", "refused", "lacks-dataset"])
def test_bad_download_leaves_nothing(damage, server, monkeypatch, cache, published):
    url = f"{server.base}/lee.zip"
    good = zip_of(published)
    if damage == "tampered-member":
        body = bytearray(published["saved_models/Coffee.ckpt"])
        body[len(body) // 2] ^= 0xFF
        server.payloads["/lee.zip"] = zip_of({**published, "saved_models/Coffee.ckpt": bytes(body)})
    elif damage == "truncated":
        server.payloads["/lee.zip"] = good[: len(good) // 2]
    elif damage == "not-a-zip":
        server.payloads["/lee.zip"] = b"<html>rate limited</html>"
    elif damage == "refused":
        url = "http://127.0.0.1:9/lee.zip"  # the discard port: connection refused
    else:
        server.payloads["/lee.zip"] = zip_of({"saved_models/Coffee.ckpt": published["saved_models/Coffee.ckpt"]})
    monkeypatch.setenv("TVQ_EVALUATOR_URL", url)
    with pytest.raises(DownloadError):
        lee2023.checkpoint_path("GunPoint")
    kept = _leftovers(cache)
    assert kept == (["evaluators/lee2023/Coffee.ckpt"] if damage == "lacks-dataset" else [])


def test_no_download_when_asked_not_to(cache, fake_pins):
    fake_pins["GunPoint"] = "0" * 64
    with pytest.raises(CheckpointError, match="downloads are off"):
        lee2023.checkpoint_path("GunPoint", allow_download=False)


# -- 4. the evaluator in the protocol ------------------------------------------------------------------------
def test_config_default_is_the_thesis_evaluator_and_needs_thesis_scaling():
    assert load_config().evaluator == "lee2023" and load_config("thesis").evaluator == "lee2023"
    with pytest.raises(ConfigError, match="scaling=thesis"):
        load_config(overrides={"scaling": "none"})
    with pytest.raises(ConfigError, match="evaluator"):
        load_config(overrides={"evaluator": "inception"})


@pytest.mark.parametrize("name", ["GunPoint", "ECG200", "Plane", "MoteStrain"])
def test_trtr_equals_table5(name, real_evaluators):
    table5 = thesis_table(5).set_index("dataset")["trtr_pct"]
    _, trtr = get_evaluator(name, load_config(dataset=name))
    assert round(100 * trtr, 2) == pytest.approx(float(table5[name]), abs=1e-9)


def test_scores_name_their_evaluator(real_evaluators):
    cfg = load_config(dataset="GunPoint")
    ds = load_ucr("GunPoint")
    out = evaluate_samples(ds, ds.x_train, cfg=cfg)
    assert out["evaluator"] == "lee2023"
    assert 0 <= out["fid"] < 5 and out["is_mean"] > 1  # the training set itself: close to the test set
    rng = np.random.default_rng(0)
    noise = evaluate_samples(ds, rng.normal(size=ds.x_train.shape), cfg=cfg)
    assert noise["fid"] > 10 * out["fid"]  # white noise is far from GunPoint in this feature space


def _tvq(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tvq", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


def test_cli_evaluate_real_test_split_reports_table5_trtr(tmp_path, real_evaluators):
    ds = load_ucr("GunPoint")
    np.save(tmp_path / "test.npy", ds.x_test)
    out = _tvq("evaluate", "GunPoint", str(tmp_path / "test.npy"), env={"TVQ_EVALUATOR_DIR": str(real_evaluators)})
    assert out.returncode == 0, out.stderr
    trtr = float(next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("trtr ")))
    assert round(100 * trtr, 2) == float(thesis_table(5).set_index("dataset").loc["GunPoint", "trtr_pct"])
    fid = float(next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("fid ")))
    assert fid == pytest.approx(0.0, abs=1e-6)  # the test split against itself


def test_cli_missing_evaluator_is_one_line(tmp_path):
    ds = load_ucr("GunPoint")
    np.save(tmp_path / "s.npy", ds.x_test)
    (tmp_path / "empty").mkdir()
    out = _tvq("evaluate", "GunPoint", str(tmp_path / "s.npy"), "-o", str(tmp_path / "m.json"),
               env={"TVQ_EVALUATOR_DIR": str(tmp_path / "empty")})
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "holds no GunPoint.ckpt" in out.stderr
    assert not (tmp_path / "m.json").exists()


def test_cli_failed_download_is_one_line(tmp_path):
    ds = load_ucr("GunPoint")
    np.save(tmp_path / "s.npy", ds.x_test)
    env = {k: v for k, v in os.environ.items() if k != "TVQ_EVALUATOR_DIR"}
    env.update(TVQ_EVALUATOR_URL="http://127.0.0.1:9/lee.zip", TVQ_CACHE_DIR=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-m", "tvq", "evaluate", "GunPoint", str(tmp_path / "s.npy")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "could not download the Lee et al. evaluators" in out.stderr
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))
