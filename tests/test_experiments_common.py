"""The helpers every study shares: model names, statistics over runs, the load average, the output folder and how a
run's files reach it."""
import json
import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from mmoe_np.experiments import common


def test_run_std_and_sem_are_the_sample_statistics_over_runs():
    x = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]])  # 3 runs of 2 settings
    np.testing.assert_allclose(common.run_std(x, axis=0), [2.0, 4.0])  # sqrt(((1-3)^2 + 0 + (5-3)^2) / 2) = 2
    np.testing.assert_allclose(common.run_sem(x, axis=0), [2.0 / math.sqrt(3), 4.0 / math.sqrt(3)])
    assert common.run_std([4.0, 4.0, 4.0]) == 0.0 and common.run_std([7.0]) == 0.0  # one run: 0, not NaN
    np.testing.assert_array_equal(common.run_std(x[:1], axis=0), [0.0, 0.0])


def test_load_average_reads_the_os_or_is_none(monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (1.234, 0.5, 0.25))
    assert common.load_average() == (1.23, 0.5, 0.25)

    def unavailable():
        raise OSError("no load average here")

    monkeypatch.setattr(os, "getloadavg", unavailable)
    assert common.load_average() is None


def test_prepare_out_creates_the_folder_or_names_the_option(tmp_path):
    out = common.prepare_out(tmp_path / "a" / "b")
    assert out == tmp_path / "a" / "b" and out.is_dir() and not list(out.iterdir())  # the probe file is gone
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="--out .* is not a writable folder"):
        common.prepare_out(blocker)
    with pytest.raises(ValueError, match="--out"):
        common.prepare_out(blocker / "below")


def test_check_out_creates_nothing_and_names_the_option(tmp_path):
    assert common.check_out(tmp_path / "a" / "b") == tmp_path / "a" / "b" and not (tmp_path / "a").exists()
    assert common.check_out(tmp_path) == tmp_path
    blocker = tmp_path / "file"
    blocker.write_text("")
    for out in (blocker, blocker / "below" / "deeper"):
        with pytest.raises(ValueError, match=f"--out .* is not a writable folder: .*{blocker.name}' is a file"):
            common.check_out(out)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if not os.access(locked, os.W_OK):  # root may write anywhere
        with pytest.raises(ValueError, match="is not writable"):
            common.check_out(locked / "out")


# ------------------------------------------------------------------------------------------------ model names
KNOWN = {"Shared-Bottom": 1, "OMoE": 2, "MMoE": 3}


@pytest.mark.parametrize("models", ["mmoe,shared-bottom", ["MMoE", "Shared-Bottom"], ["mmoe,", " SharedBottom"],
                                    "MMOE , shared bottom"])
def test_parse_models_commas_lists_any_case_in_the_order_given(models):
    assert common.parse_models(models, KNOWN) == ["MMoE", "Shared-Bottom"]
    assert common.parse_models("all", KNOWN) == common.parse_models(["ALL"], KNOWN) == list(KNOWN)


@pytest.mark.parametrize("models, message", [("", "models must be 'all' or names from Shared-Bottom, OMoE, MMoE"),
                                             ([" , "], "models must be"), ("mmoe,bert", "unknown model 'bert'"),
                                             (["MMoE", "mmoe"], "must not repeat")])
def test_parse_models_rejects_empty_unknown_and_repeated_names(models, message):
    with pytest.raises(ValueError, match=message):
        common.parse_models(models, KNOWN)


# ------------------------------------------------------------------------------------------------ output files
def test_staged_outputs_replace_the_old_files_together_and_remove_stale_ones(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name, text in (("a.csv", "old a"), ("a.png", "old figure"), ("other.txt", "not ours")):
        (out / name).write_text(text)
    with common.staged_outputs(out, names=("a.csv", "a.json", "a.png")) as stage:
        assert stage.parent == out and stage.name.startswith(".staging-")
        common.write_csv(stage / "a.csv", ["x", "y"], [[1, 2.5]])
        common.write_json(stage / "a.json", {"n": np.int64(3), "v": np.arange(2.0)})
        assert (out / "a.csv").read_text() == "old a"  # nothing reaches out before the end
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "a.json", "other.txt"]  # old a.png gone: not ours now
    assert (out / "a.csv").read_bytes() == b"x,y\r\n1,2.5\r\n"  # as csv writes it
    assert json.loads((out / "a.json").read_text()) == {"n": 3, "v": [0.0, 1.0]}


def test_an_interrupt_while_writing_leaves_the_old_files_and_no_staging_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.csv").write_text("old a")
    (out / "a.png").write_text("old figure")
    with pytest.raises(KeyboardInterrupt):
        with common.staged_outputs(out, names=("a.csv", "a.png")) as stage:
            (stage / "a.csv").write_text("new a")
            raise KeyboardInterrupt  # e.g. Ctrl-C while the figure is drawn
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.csv": "old a", "a.png": "old figure"}


def test_a_signal_during_the_move_waits_until_every_file_is_in(tmp_path, monkeypatch):
    out = tmp_path / "out"
    moved = []
    real_replace = os.replace

    def replace_then_interrupt(src, dst):
        if not moved:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C right after the first file moved
        moved.append(Path(dst).name)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        with common.staged_outputs(out, names=("a.csv", "b.csv")) as stage:
            (stage / "a.csv").write_text("a")
            (stage / "b.csv").write_text("b")
    assert sorted(moved) == ["a.csv", "b.csv"]
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "b.csv"]  # both in: the interrupt came after
