"""The small helpers every experiment shares: statistics over runs, the load average, the output folder."""
import math
import os

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
