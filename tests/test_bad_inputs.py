"""The bad-input catalogue: what a careless or hostile user can type, and what tvq must do.

Every case runs the real CLI entry point (:func:`tvq.cli.main`) in a scratch folder and asserts
the contract for bad input:

* exit status 2;
* exactly one line on stderr, starting ``tvq`` and saying ``error``, with no traceback;
* nothing written or removed: the recursive listing of the scratch folder (which holds a
  trained run, data files and earlier outputs) is the same afterwards, with file sizes and
  modification times.

Cases are grouped by where the bad input enters: parameters (``-p``/``-f``), data files, the
sampler's flags, the scorer's inputs, output paths, and the other commands.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tvq.cli import main

# --------------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------------

TRAIN = ["train", "ECG200", "-f", "smoke", "--out", "newrun"]

# 1. Parameters that are not numbers where numbers are needed, or out of range.
_FLOAT_BAD = {
    "stage1_lr": ["nan", "inf", "-1", "0", "abc"],
    "stage2_lr": ["nan", "-inf", "-0.1", "0"],
    "fcn_lr": [".nan", "0"],
    "stage1_weight_decay": ["nan", "-1e-6"],
    "stage2_weight_decay": ["inf", "-1"],
    "fcn_weight_decay": ["-1"],
    "ema_decay": ["nan", "1", "-0.1"],
    "beta": ["nan", "-1"],
    "p_uncond": ["nan", "1", "-0.5"],
    "t_max": ["nan", "0", "1.5", "-1"],
    "guidance": ["nan", "inf", "-1"],
    "rescale": ["nan", "1.5", "-0.1"],
}
_INT_BAD = {
    "n_fft": ["0", "-8", "3", "1.5", "eight"],
    "hop_length": ["0", "-1"],
    "cutoff": ["0", "99"],
    "stage1_batch_size": ["0"],
    "stage2_batch_size": ["-4"],
    "hidden_dim": ["0"],
    "codebook_size": ["0"],
    "codebook_dim": ["0"],
    "steps_uncond": ["0"],
    "steps_cond": ["-1"],
    "n_samples": ["0"],
    "n_runs": ["0"],
    "sample_batch_size": ["0"],
    "fcn_batch_size": ["0"],
    "time_embed_dim": ["0"],
    "class_embed_dim": ["0"],
    "unet_groups": ["0"],
    "attn_heads": ["0"],
    "attn_head_dim": ["0"],
    "lf_width_min": ["0"],
    "hf_width_min": ["0"],
    "stage1_epochs": ["-1", "2.5", str(2**40)],
    "stage2_epochs": ["-1"],
    "fcn_epochs": ["-1"],
    "n_resblocks": ["-1"],
    "threads": ["-1"],
    "seed": ["-1", str(2**70), "1.5", "zero"],
}
_CHOICE_FIELDS = ["scaling", "hf_time_loss", "parameterization", "rescale_mode", "stage1_precision",
                  "evaluator", "unet_block_padding", "unet_attn_norm", "ema_init", "stage2_latents",
                  "hf_condition", "score_series", "width_rule", "stage2_encode"]
_OTHER_PARAMS = [
    "lf_conditioning=maybe", "save=2", "unet_lf_channels=[]", "unet_hf_channels=a,b",
    "stage1_lrr=0.1", "datset=ECG200", "noequals", "device=cuda", "device=tpu",
    "device=cuda:7", "data_dir=/nonexistent/ucr",
]

PARAM_CASES = (
    [pytest.param(TRAIN + ["-p", f"{k}={v}"], id=f"param {k}={v}") for k, vs in _FLOAT_BAD.items() for v in vs]
    + [pytest.param(TRAIN + ["-p", f"{k}={v}"], id=f"param {k}={v}") for k, vs in _INT_BAD.items() for v in vs]
    + [pytest.param(TRAIN + ["-p", f"{k}=bogus"], id=f"param {k}=bogus") for k in _CHOICE_FIELDS]
    + [pytest.param(TRAIN + ["-p", p], id=f"param {p}") for p in _OTHER_PARAMS]
)

# 2. Params files.
PARAMS_FILE_CASES = [
    pytest.param(["train", "ECG200", "-f", "empty.yaml", "--out", "newrun"], id="params file empty"),
    pytest.param(["train", "ECG200", "-f", "list.yaml", "--out", "newrun"], id="params file is a list"),
    pytest.param(["train", "ECG200", "-f", "broken.yaml", "--out", "newrun"], id="params file invalid YAML"),
    pytest.param(["train", "ECG200", "-f", "missing.yaml", "--out", "newrun"], id="params file missing"),
    pytest.param(["train", "ECG200", "-f", "nosuchprofile", "--out", "newrun"], id="unknown profile"),
    pytest.param(["train", "ECG200", "-f", "adir", "--out", "newrun"], id="params file is a folder"),
    pytest.param(["train", "ECG200", "-f", "typo.yaml", "--out", "newrun"], id="params file unknown key"),
    pytest.param(["train", "ECG200", "-f", "binary.yaml", "--out", "newrun"], id="params file binary"),
]

# 3. Data: names, folders and malformed archive files (read from $TVQ_UCR_DIR = ./ucr).
_BAD_DATA = ["inf", "ragged", "text", "empty", "allnan", "nanlabel", "binary", "rows", "newclass", "short"]
DATA_CASES = (
    [pytest.param(["data", "show", "NoSuchSet"], id="data show unknown"),
     pytest.param(["data", "show", "ToeSegmentation1", "--no-download"], id="data show not offline, no download"),
     pytest.param(["data", "show", "ECG200", "--data-dir", "/nonexistent"], id="data show --data-dir missing"),
     pytest.param(["data", "show", "ECG200", "--data-dir", "afile"], id="data show --data-dir is a file"),
     pytest.param(["train", "NoSuchSet", "--out", "newrun"], id="train unknown dataset"),
     pytest.param(["train", "ecg 200", "--out", "newrun"], id="train dataset with a space"),
     pytest.param(["train", "", "--out", "newrun"], id="train empty dataset name")]
    + [pytest.param(["data", "show", "ECG200", "--data-dir", f"bad-{kind}"], id=f"data file {kind}") for kind in _BAD_DATA]
    + [pytest.param(TRAIN + ["-p", f"data_dir=bad-{kind}"], id=f"train on data file {kind}") for kind in _BAD_DATA]
)

# 4. tvq sample (the trained smoke run is ./run).
S = ["sample", "run", "-n", "4"]
SAMPLE_CASES = [
    pytest.param(S + ["-o", "afifo"], id="sample -o a named pipe"),
    pytest.param(S + ["-o", "asymlink-to-fifo"], id="sample -o a link to a named pipe"),
    pytest.param(S + ["-o", "afile/x.npy"], id="sample -o under a file"),
    pytest.param(S + ["-o", "nofolder/x.npy"], id="sample -o missing folder"),
    pytest.param(S + ["-o", "adir"], id="sample -o a directory"),
    pytest.param(S + ["-o", "/proc/x.npy"], id="sample -o /proc"),
    pytest.param(S + ["-o", ""], id="sample -o empty"),
    pytest.param(S + ["-o", "x.npy", "--class", "0", "--labels-output", "/proc/y.npy"], id="sample labels to /proc"),
    pytest.param(S + ["-o", "x.npy", "--class", "0", "--labels-output", "x.npy"], id="sample labels = samples"),
    pytest.param(S + ["-o", "x.npy", "--labels-output", "y.npy"], id="sample labels without a class"),
    pytest.param(S + ["-o", "x.npy", "--class", "0", "--by-proportion"], id="sample class and by-proportion"),
    pytest.param(S + ["-o", "x.npy", "--class", "9"], id="sample class out of range"),
    pytest.param(S + ["-o", "x.npy", "--class", "-1"], id="sample class negative"),
    pytest.param(S + ["-o", "x.npy", "--class", "a"], id="sample class not a number"),
    pytest.param(["sample", "run", "-n", "0", "-o", "x.npy"], id="sample -n 0"),
    pytest.param(["sample", "run", "-n", "-3", "-o", "x.npy"], id="sample -n negative"),
    pytest.param(["sample", "run", "-n", "many", "-o", "x.npy"], id="sample -n not a number"),
    pytest.param(S + ["-o", "x.npy", "--steps", "0"], id="sample steps 0"),
    pytest.param(S + ["-o", "x.npy", "--guidance", "nan"], id="sample guidance nan"),
    pytest.param(S + ["-o", "x.npy", "--guidance", "-1"], id="sample guidance negative"),
    pytest.param(S + ["-o", "x.npy", "--guidance", "inf"], id="sample guidance inf"),
    pytest.param(S + ["-o", "x.npy", "--rescale", "2"], id="sample rescale 2"),
    pytest.param(S + ["-o", "x.npy", "--rescale", "nan"], id="sample rescale nan"),
    pytest.param(S + ["-o", "x.npy", "--rescale-mode", "bogus"], id="sample rescale mode bogus"),
    pytest.param(S + ["-o", "x.npy", "--t-max", "0"], id="sample t-max 0"),
    pytest.param(S + ["-o", "x.npy", "--t-max", "nan"], id="sample t-max nan"),
    pytest.param(S + ["-o", "x.npy", "--seed", str(2**70)], id="sample seed 2**70"),
    pytest.param(S + ["-o", "x.npy", "--seed", "-1"], id="sample seed negative"),
    pytest.param(S + ["-o", "x.npy", "--threads", "-2"], id="sample threads negative"),
    pytest.param(S + ["-o", "x.npy", "-p", "stage1_lr=1"], id="sample -p a training parameter"),
    pytest.param(S + ["-o", "x.npy", "-p", "sampler=euler"], id="sample -p unknown sampler"),
    pytest.param(S + ["-o", "x.npy", "-p", "steps_uncond=0"], id="sample -p steps 0"),
    pytest.param(S + ["-o", "x.npy", "--device", "cuda"], id="sample device cuda"),
    pytest.param(S + ["-o", "x.npy", "--device", "gpu0"], id="sample device unknown"),
    pytest.param(["sample", "norun", "-o", "x.npy"], id="sample missing run"),
    pytest.param(["sample", "afile", "-o", "x.npy"], id="sample run is a file"),
    pytest.param(["sample", "badrun", "-o", "x.npy"], id="sample corrupt model.pt"),
    pytest.param(["sample", "run", "-n", "4"], id="sample without -o"),
]

# 5. tvq evaluate.
E = ["evaluate", "ECG200"]
EVALUATE_CASES = [
    pytest.param(E + ["nosamples.npy"], id="evaluate missing samples"),
    pytest.param(E + ["afile"], id="evaluate samples not .npy"),
    pytest.param(E + ["wronglength.npy"], id="evaluate wrong length"),
    pytest.param(E + ["nonfinite.npy"], id="evaluate non-finite samples"),
    pytest.param(E + ["objects.npy"], id="evaluate object array"),
    pytest.param(E + ["threed.npy"], id="evaluate 3-D channels"),
    pytest.param(E + ["few.npy"], id="evaluate too few samples"),
    pytest.param(E + ["good.npy", "--labels", "badlabels.npy"], id="evaluate labels out of range"),
    pytest.param(E + ["good.npy", "--labels", "shortlabels.npy"], id="evaluate labels wrong count"),
    pytest.param(E + ["good.npy", "--labels", "floatlabels.npy"], id="evaluate float labels"),
    pytest.param(E + ["good.npy", "-o", "adir"], id="evaluate -o a directory"),
    pytest.param(E + ["good.npy", "-o", "/proc/m.json"], id="evaluate -o /proc"),
    pytest.param(E + ["good.npy", "-o", "nofolder/m.json"], id="evaluate -o missing folder"),
    pytest.param(E + ["good.npy", "-o", "afifo"], id="evaluate -o a named pipe"),
    pytest.param(["evaluate", "NoSuchSet", "good.npy"], id="evaluate unknown dataset"),
    pytest.param(E + ["good.npy", "-p", "fcn_epochs=-1"], id="evaluate bad param"),
]

# 6. Run folders and other commands.
OTHER_CASES = [
    pytest.param(["train", "ECG200", "--out", "afile"], id="train --out is a file"),
    pytest.param(["train", "ECG200", "--out", "/proc/run"], id="train --out under /proc"),
    pytest.param(["train", "ECG200", "--out", "afile/run"], id="train --out under a file"),
    pytest.param(["train", "ECG200", "--out", "run", "-p", "stage1_epochs=3"], id="train resume another config"),
    pytest.param(["train", "ECG200", "--out", "newrun", "--progress-every", "0"], id="train progress-every 0"),
    pytest.param(["train", "ECG200"], id="train without --out"),
    pytest.param(["train", "ECG200", "-f", "thesis", "-p", "scaling=none", "--out", "newrun"],
                 id="thesis evaluators on unscaled data"),
    pytest.param(["reproduce", "NoSuchSet", "--results", "res"], id="reproduce unknown dataset"),
    pytest.param(["reproduce", "ECG200", "-p", "n_runs=0", "--results", "res"], id="reproduce n_runs 0"),
    pytest.param(["reproduce", "ECG200", "-f", "empty.yaml", "--results", "res"], id="reproduce empty params"),
    pytest.param(["ablate", "train", "ECG200", "nosuchvariant", "--results", "res"], id="ablate unknown variant"),
    pytest.param(["ablate", "bogus", "ECG200"], id="ablate unknown study"),
    pytest.param(["ablate", "tmax", "NoSuchSet", "--results", "res"], id="ablate unknown dataset"),
    pytest.param(["rescore", "--evaluator", "bogus"], id="rescore unknown evaluator"),
    pytest.param(["rescore", "--datasets", "NoSuchSet", "--results", "res"], id="rescore unknown dataset"),
    pytest.param(["sweep", "--datasets", "NoSuchSet", "--dry-run", "--results", "res"], id="sweep unknown dataset"),
    pytest.param(["sweep", "--dry-run"], id="sweep without a dataset choice"),
    pytest.param(["chapter", "book/nosuch.md"], id="chapter missing"),
    pytest.param(["fcn", "train", "NoSuchSet"], id="fcn train unknown dataset"),
    pytest.param(["evaluators", "verify", "NoSuchSet", "--no-download"], id="evaluators verify unknown"),
    pytest.param(["bogus"], id="unknown command"),
    pytest.param(["train", "ECG200", "--out", "newrun", "--bogus"], id="unknown flag"),
]

ALL_CASES = PARAM_CASES + PARAMS_FILE_CASES + DATA_CASES + SAMPLE_CASES + EVALUATE_CASES + OTHER_CASES


# --------------------------------------------------------------------------------------------
# The scratch folder
# --------------------------------------------------------------------------------------------


def _write_bad_data(root: Path, kind: str, train: str, test: str) -> None:
    folder = root / f"bad-{kind}" / "ECG200"
    folder.mkdir(parents=True)
    lines = train.splitlines()
    first = lines[0].split("\t")
    if kind == "inf":
        lines[3] = "\t".join(first[:5] + ["inf"] + first[6:])
    elif kind == "ragged":
        lines[2] = "\t".join(first[:-3])
    elif kind == "text":
        lines[4] = "\t".join(first[:7] + ["n/a"] + first[8:])
    elif kind == "empty":
        lines = []
    elif kind == "allnan":
        lines[1] = "\t".join(first[:1] + ["NaN"] * (len(first) - 1))
    elif kind == "nanlabel":
        lines[1] = "\t".join(["NaN"] + first[1:])
    elif kind == "rows":
        lines = lines[:-5]
    elif kind == "newclass":
        test = "\n".join(["\t".join(["7"] + test.splitlines()[0].split("\t")[1:])] + test.splitlines()[1:]) + "\n"
    elif kind == "short":
        lines = ["\t".join(ln.split("\t")[:-10]) for ln in lines]
    if kind == "binary":
        (folder / "ECG200_TRAIN.tsv").write_bytes(b"\x00\xff\xfe" * 100)
    else:
        (folder / "ECG200_TRAIN.tsv").write_text("\n".join(lines) + ("\n" if lines else ""))
    (folder / "ECG200_TEST.tsv").write_text(test)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    import numpy as np

    from tvq.data import load_ucr
    from tvq.data.sources import _wheel_files
    from tvq.train import train
    from tvq.config import load_config

    root = tmp_path_factory.mktemp("bad-inputs")
    train(load_config("smoke", dataset="ECG200"), root / "run", progress=False)
    (root / "afile").write_text("not a folder\n")
    (root / "adir").mkdir()
    # Special files stand in for /dev/null and /dev/full: a regression must not clobber the real ones
    # on a machine that runs the tests as root (an earlier tvq did exactly that).
    os.mkfifo(root / "afifo")
    (root / "asymlink-to-fifo").symlink_to(root / "afifo")
    (root / "badrun").mkdir()
    (root / "badrun" / "model.pt").write_bytes(b"PK\x03\x04 this is no model")
    (root / "empty.yaml").write_text("")
    (root / "list.yaml").write_text("- seed\n- 1\n")
    (root / "broken.yaml").write_text("seed: [1, 2\n")
    (root / "typo.yaml").write_text("stage1_epoch: 3\n")
    (root / "binary.yaml").write_bytes(b"\xff\xfe\x00bad")
    _, train_path, test_path = _wheel_files("ECG200")
    for kind in _BAD_DATA:
        _write_bad_data(root, kind, train_path.read_text(), test_path.read_text())
    length = load_ucr("ECG200").length
    rng = np.random.default_rng(0)
    good = rng.standard_normal((16, length)).astype(np.float32)
    np.save(root / "good.npy", good)
    np.save(root / "wronglength.npy", good[:, :-3])
    bad = good.copy()
    bad[2, 5] = np.nan
    np.save(root / "nonfinite.npy", bad)
    np.save(root / "objects.npy", np.array([object()] * 3, dtype=object), allow_pickle=True)
    np.save(root / "threed.npy", np.stack([good, good], axis=1))
    np.save(root / "few.npy", good[:2])
    np.save(root / "badlabels.npy", np.full(16, 5, dtype=np.int64))
    np.save(root / "shortlabels.npy", np.zeros(3, dtype=np.int64))
    np.save(root / "floatlabels.npy", np.zeros(16, dtype=np.float64) + 0.5)
    return root


def _listing(root: Path) -> list[tuple[str, int, int]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames) + sorted(filenames):
            p = Path(dirpath) / name
            st = p.lstat()
            out.append((str(p.relative_to(root)), st.st_size if p.is_file() else -1, st.st_mtime_ns))
    return sorted(out)


@pytest.mark.parametrize("argv", ALL_CASES)
def test_bad_input_fails_cleanly(argv, scratch, monkeypatch, capsys):
    monkeypatch.chdir(scratch)
    monkeypatch.delenv("TVQ_UCR_DIR", raising=False)
    monkeypatch.setenv("TVQ_CACHE_DIR", str(scratch / "cache"))      # (never created: nothing downloads)
    monkeypatch.setenv("TVQ_UCR_URL", "http://127.0.0.1:9/")          # a closed port: downloads fail at once
    monkeypatch.setenv("TVQ_EVALUATOR_URL", "http://127.0.0.1:9/lee.zip")
    monkeypatch.setenv("TVQ_RESULTS_DIR", str(scratch / "res"))
    before = _listing(scratch)
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        rc = exc.code
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, f"exit {rc}; stderr: {err}"
    assert "Traceback" not in err
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert lines[0].startswith("tvq") and "error" in lines[0], lines[0]
    assert _listing(scratch) == before, "the command wrote or removed files"


def test_the_catalogue_is_large():
    assert len(ALL_CASES) >= 140


def test_the_listing_check_can_fail(scratch, monkeypatch, capsys):
    """The 'nothing written' assertion is live: a good command changes the listing."""
    monkeypatch.chdir(scratch)
    before = _listing(scratch)
    assert main(["sample", "run", "-n", "4", "-o", "probe.npy"]) == 0
    assert _listing(scratch) != before
    (scratch / "probe.npy").unlink()
