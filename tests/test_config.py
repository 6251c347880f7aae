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
    assert (cfg.steps_uncond, cfg.steps_cond, cfg.guidance, cfg.rescale) == (128, 32, 3.0, 0.1)
    assert (cfg.fcn_epochs, cfg.fcn_batch_size, cfg.fcn_weight_decay) == (1000, 256, 1e-5)


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

    default = load_config("thesis")
    for q in QUIRKS:
        if q.option is None:
            continue
        assert hasattr(default, q.option), q.option
        assert getattr(default, q.option) != q.code_value, f"{q.option}: the thesis profile already has the code's value"
    cfg = load_config("thesis", thesis_code_overrides())  # all of them together form a valid config
    assert cfg.unet_block_padding == "zeros" and cfg.hf_time_loss == "l1"
    assert "stage 1: decoder output width" in missing_options()
    assert cfg.hf_condition == "thesis_code" and cfg.stage2_latents == "quantized"


def test_the_thesis_code_profile_is_the_thesis_profile_plus_every_quirk():
    """params/thesis-code.yaml differs from params/thesis.yaml in the quirks' options only, each at
    the code's value; t_max stays at the text's 0.99 on purpose (the comparison with the code ran there)."""
    from tvq.quirks import thesis_code_overrides

    text, code = load_config("thesis").to_dict(), load_config("thesis-code").to_dict()
    differs = {k for k in text if text[k] != code[k]} - {"profile"}
    expected = {k: v for k, v in thesis_code_overrides().items() if k != "t_max"}
    assert differs == set(expected)
    assert all(code[k] == v for k, v in expected.items())
