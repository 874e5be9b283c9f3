from __future__ import annotations

from sweeps.cli import main


def test_models_command_lists_presets_counts_and_hyperparameters(capsys):
    assert main(["models", "skipcnn", "model5"]) == 0
    out = capsys.readouterr().out
    assert "skipcnn  (write-up 003)  default: 211,950 params" in out
    assert "preset cnn2_dropout: 440,910 params" in out
    assert "preset cnn3_dropout: 207,758 params" in out
    assert "preset writeup: 192,218 params" in out
    assert "head_dropout   float  default 0.5     [0, 0.9]" in out


def test_models_command_unknown_family_exits_2(capsys):
    assert main(["models", "vgg"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fmnist-sweep models: error: unknown model family 'vgg'")
    assert "known families: allcnn, basiccnn," in err
