"""The theorylab command line, end to end in-process."""

import json

import pytest

from theorylab.cli import main


def test_train_then_attack_json(tmp_path, capsys):
    path = tmp_path / "m.npz"
    assert main(["train", "--d", "16", "--k", "2", "--steps", "40", "--batch-size", "64",
                 "--quiet", "--save", str(path)]) == 0
    assert path.exists()
    capsys.readouterr()
    assert main(["attack", str(path), "--norm", "inf", "--eps", "0.05", "0.1", "--n", "100",
                 "--steps", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["eps"] == [0.05, 0.1] and out["norm"] == "linf" and len(out["accuracy"]) == 2
    # adversarial training from the saved clean model
    assert main(["train", "--d", "16", "--k", "2", "--init", str(path), "--adversarial", "fgm",
                 "--eps", "0.2", "--steps", "10", "--batch-size", "64", "--quiet",
                 "--json"]) == 0
    hist = json.loads(capsys.readouterr().out)
    assert hist["config"]["adversarial"] == "fgm" and hist["records"][-1]["step"] == 10


def test_bad_input_is_a_clear_error(capsys):
    assert main(["train", "--d", "8", "--k", "9", "--steps", "1", "--quiet"]) == 2
    assert "k must be" in capsys.readouterr().err


def test_check_list(capsys):
    assert main(["check", "--list"]) == 0
    out = capsys.readouterr().out
    assert "fp.v3_adversarial_purifies_l2" in out


@pytest.mark.parametrize("cmd", [["train"], ["attack"], ["check"], ["sweep"], ["plot"],
                                 ["bench"]])
def test_every_subcommand_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main(cmd + ["--help"])
    assert exc.value.code == 0
    assert "usage: theorylab" in capsys.readouterr().out
