"""One typed config: params files, overrides, and the errors for bad values."""
from pathlib import Path

import pytest

from tvq.config import PARAMS_DIR, Config, load_config, parse_overrides
from tvq.errors import ConfigError


@pytest.mark.parametrize("profile", sorted(p.stem for p in PARAMS_DIR.glob("*.yaml")))
def test_every_params_file_loads(profile):
    cfg = load_config(profile)
    assert isinstance(cfg, Config) and cfg.profile == profile


def test_thesis_profile_is_appendix_d():
    cfg = load_config("thesis")
    assert (cfg.stage1_epochs, cfg.stage2_epochs, cfg.stage1_batch_size, cfg.stage2_batch_size) == (2000, 1000, 128, 128)
    assert (cfg.codebook_size, cfg.codebook_dim, cfg.ema_decay, cfg.beta) == (512, 4, 0.8, 1.0)
    assert cfg.unet_lf_channels == [64, 128, 256] and cfg.unet_hf_channels == [32, 64, 128, 256]
    assert (cfg.steps_cond, cfg.guidance, cfg.rescale) == (32, 3.0, 0.1)
    assert (cfg.fcn_epochs, cfg.fcn_batch_size, cfg.fcn_weight_decay) == (1000, 256, 1e-5)
    # the thesis's unconditional draw (null class, 128 steps) is the text profile's; the settled profile
    # draws unconditional series as its conditional ones, labels from the training split, no guidance
    text = load_config("thesis-text")
    assert (text.uncond_labels, text.steps_uncond, text.sample_noise) == ("null", 128, "std")
    assert (cfg.uncond_labels, cfg.steps_uncond, cfg.sample_noise) == ("train_prior", cfg.steps_cond,
                                                                       cfg.sample_noise_cond)


def test_overrides_are_typed():
    cfg = load_config("smoke", parse_overrides(["stage1_epochs=7", "t_max=1", "unet_lf_channels=[8,16]", "save=true"]))
    assert cfg.stage1_epochs == 7 and cfg.t_max == 1.0 and isinstance(cfg.t_max, float)
    assert cfg.unet_lf_channels == [8, 16] and cfg.save is True


@pytest.mark.parametrize("overrides, message", [
    ({"stage1_epoch": 3}, "unknown parameter 'stage1_epoch' .*did you mean stage1_epochs"),
    ({"stage1_epochs": "many"}, "'stage1_epochs' must be int"),
    ({"stage1_epochs": 2.5}, "'stage1_epochs' must be int"),
    ({"t_max": 1.5}, r"t_max must lie in \(0, 1\]"),
    ({"t_max": 0}, r"t_max must lie in \(0, 1\]"),
    ({"guidance": -1}, "guidance weight must be >= 0"),
    ({"rescale_mode": "local"}, "rescale_mode"),
    ({"parameterization": "score"}, "parameterization"),
    ({"unet_lf_channels": "x,y"}, "unet_lf_channels"),
])
def test_bad_values_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("smoke", overrides)


def test_bad_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="no params file 'nope'"):
        load_config("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n- not a mapping\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(bad)
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["stage1_epochs"])


def test_every_thesis_code_quirk_with_an_option_is_a_real_field_and_differs_from_the_default():
    from tvq.quirks import QUIRKS, missing_options, thesis_code_overrides

    default = load_config("thesis-text")
    for q in QUIRKS:
        if q.option is None:
            continue
        assert hasattr(default, q.option), q.option
        assert getattr(default, q.option) != q.code_value, f"{q.option}: the thesis-text profile has the code's value"
    cfg = load_config("thesis-text", thesis_code_overrides())  # all of them together form a valid config
    assert cfg.unet_block_padding == "zeros" and cfg.hf_time_loss == "l1"
    # every difference the quirk list knows has an option, except the codebooks' drift in stage 2
    # (a fixed point when one batch holds the training set)
    assert missing_options() == ["stage 2: the codebooks while the priors train"]
    assert cfg.latent_scaler == "encoder_output" and cfg.rescale == 1.0
    assert cfg.decoder_output == "thesis_code"
    assert cfg.hf_condition == "thesis_code" and cfg.stage2_latents == "quantized"


def test_the_thesis_code_profile_is_the_text_profile_plus_every_quirk():
    """params/thesis-code.yaml differs from params/thesis-text.yaml in the quirks' options only, each at
    the code's value; t_max and rescale stay at the text's 0.99 and 0.1 on purpose (the comparison with
    the code ran there). Guided draws use the code's Eq. (28) noise, not the text profile's sigma^2 delta."""
    from tvq.quirks import thesis_code_overrides

    text, code = load_config("thesis-text").to_dict(), load_config("thesis-code").to_dict()
    differs = {k for k in text if text[k] != code[k]} - {"profile"}
    expected = {k: v for k, v in thesis_code_overrides().items() if k not in ("t_max", "rescale")}
    assert differs == set(expected) | {"sample_noise_cond"}
    assert all(code[k] == v for k, v in expected.items())
    assert code["sample_noise_cond"] == "std" and code["sample_noise"] == "std"


def test_the_settled_thesis_profile_takes_the_codes_choices_except_its_bugs():
    """params/thesis.yaml (settled by the parity study) = the text's profile with every quirk of the
    code adopted except the two bugs (the never-trained HF condition, the train-mode re-encoding), the
    scoring rule and the sampler settings, plus its own unconditional draw (neither the text's nor the
    code's); tvq.quirks.adopted reads the same split off the profiles."""
    from tvq.quirks import QUIRKS, adopted, thesis_code_overrides

    text, settled, code = (load_config(p).to_dict() for p in ("thesis-text", "thesis", "thesis-code"))
    kept = {"hf_condition", "stage2_encode", "score_series", "t_max", "rescale"}
    taken = {k: v for k, v in thesis_code_overrides().items() if k not in kept}
    # beyond the code's choices, the settled profile's own: how unconditional series are drawn
    own_draw = {"uncond_labels", "steps_uncond", "sample_noise"}
    assert {k for k in text if text[k] != settled[k]} - {"profile"} == set(taken) | own_draw
    assert all(settled[k] == v for k, v in taken.items())
    assert {k for k in settled if settled[k] != code[k]} - {"profile"} == {"hf_condition", "stage2_encode",
                                                                            "score_series", "sample_noise_cond"} | own_draw
    names = {q.option for q in adopted("thesis")}
    assert names == set(taken)
    assert {q.option for q in adopted("thesis-text")} == set()
    assert {q.option for q in adopted("thesis-code")} == {q.option for q in QUIRKS if q.option} - {"t_max", "rescale"}


def test_every_field_declares_one_role_and_the_derived_sets_are_the_old_lists():
    """Roles replace three hand-kept lists; the sets derived from them are exactly those lists
    (so no fingerprint, phase key or budget label moved when they were introduced)."""
    import dataclasses

    from tvq.config import ROLES, Config, budget_fields, fields_with_role

    for f in dataclasses.fields(Config):
        assert f.metadata["role"] in ROLES, f.name
    assert fields_with_role("bookkeeping") == {"device", "threads", "compile", "save"}
    assert fields_with_role("provenance") == {"profile", "data_dir"}
    assert fields_with_role("sampling", "scoring", "provenance", "bookkeeping") == {
        "profile", "device", "threads", "compile", "data_dir", "save", "sampler", "sample_noise", "sample_noise_cond", "t_max", "steps_uncond",
        "steps_cond", "guidance", "rescale", "rescale_mode", "n_samples", "n_runs", "sample_batch_size",
        "sample_bf16", "uncond_labels", "fcn_epochs", "fcn_batch_size", "fcn_lr", "fcn_weight_decay", "evaluator",
        "score_series", "tstr_precision"}
    # The precision fields left the budget when tstr_precision and stage2_precision came: a bf16 run
    # is labelled by tvq.results.precision_label instead of "reduced".
    assert set(Config().to_dict()) - budget_fields() == {
        "dataset", "profile", "seed", "device", "threads", "compile", "data_dir", "save", "sample_batch_size",
        "evaluator", "stage1_precision", "stage2_precision", "sample_bf16", "tstr_precision"}


def test_a_new_sampling_field_does_not_move_the_training_fingerprint():
    import dataclasses

    from tvq.config import SAMPLING, TRAINING, Config, _field
    from tvq.data import load_ucr
    from tvq.train import training_fingerprint

    ds = load_ucr("ECG200")
    base = load_config("thesis", dataset="ECG200")
    extended = dataclasses.make_dataclass("Extended", [("sample_new_knob", float, _field(0.5, role=SAMPLING))],
                                          bases=(Config,))
    with_knob = extended(**base.to_dict(), sample_new_knob=0.7)
    assert training_fingerprint(with_knob, ds) == training_fingerprint(base, ds)
    retrain = dataclasses.make_dataclass("Retrain", [("train_new_knob", float, _field(0.5, role=TRAINING))],
                                         bases=(Config,))
    assert training_fingerprint(retrain(**base.to_dict(), train_new_knob=0.7), ds) != training_fingerprint(base, ds)


def test_settling_the_defaults_moves_the_fingerprints_so_stale_runs_are_not_reused():
    """Checkpoints and stored phases trained under the text's settings must not be picked up by the
    settled thesis profile: its training fingerprint and its phase key both differ; the text's
    profile still has the fingerprint the thesis profile had before (stored runs of it resume)."""
    import dataclasses

    from tvq.config import TRAINING
    from tvq.data import load_ucr
    from tvq.train import _ADDED_LATER, training_fingerprint

    ds = load_ucr("ECG200")
    settled, text = load_config("thesis", dataset="ECG200"), load_config("thesis-text", dataset="ECG200")
    assert training_fingerprint(settled, ds) != training_fingerprint(text, ds)
    # the text's profile with a changed weight decay alone is yet another model
    assert training_fingerprint(text.replace(stage1_weight_decay=1e-5), ds) != training_fingerprint(text, ds)
    # every field the text's profile sits at an "added later" default is left out of its fingerprint
    training = {f.name for f in dataclasses.fields(text) if f.metadata.get("role") == TRAINING}
    assert all(getattr(text, k) == v for k, v in _ADDED_LATER.items() if k in training)


def test_profiles_are_installed_as_package_data(monkeypatch, tmp_path):
    """pyproject installs params/*.yaml as tvq/profiles; without the source tree, profiles load from there."""
    import tomllib

    import tvq.config as C

    meta = tomllib.loads((Path(C.__file__).resolve().parent.parent / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert meta["package-dir"]["tvq.profiles"] == "params" and "tvq.profiles" in meta["packages"]
    assert meta["package-data"]["tvq.profiles"] == ["*.yaml"]
    fake_pkg = tmp_path / "tvq"
    (fake_pkg / "profiles").mkdir(parents=True)
    (fake_pkg / "profiles" / "thesis.yaml").write_text((C.PARAMS_DIR / "thesis.yaml").read_text())
    monkeypatch.setattr(C, "PARAMS_DIR", tmp_path / "no-source-tree")
    import importlib.resources

    monkeypatch.setattr(importlib.resources, "files", lambda pkg: fake_pkg)
    assert C.profiles_dir() == fake_pkg / "profiles"
    assert C.load_config("thesis").stage1_epochs == 2000
