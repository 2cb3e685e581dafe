"""The synthetic curves figure keeps its series apart: every model its own colour, none drawn like the noise floor
(grey, dotted), CGC and PLE in line styles of their own."""
import numpy as np
from matplotlib.colors import to_rgb

from mmoe_np.experiments import synthetic as S
from mmoe_np.experiments.figures import studies

TINY = dict(runs=2, steps=4, batch_size=8, eval_every=2, n_test=20, workers=0)
MODELS = ("shared-bottom", "omoe", "mmoe", "cgc", "ple")  # Fig. 4's models and the two beyond the paper


def colour(line):
    return tuple(np.round(to_rgb(line.get_color()), 3))


def test_every_model_has_its_own_colour_and_none_looks_like_the_noise_floor(tmp_path, monkeypatch):
    figures = []
    original = studies.save_png
    monkeypatch.setattr(studies, "save_png", lambda fig, path: figures.append(fig) or original(fig, path))
    study = S.synthetic_study(MODELS, (1.0, 0.5), **TINY)
    assert studies.plot_curves(study, tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    top = figures[0].axes[0]  # test MSE at p = 1: one curve per model, and the floor
    lines = {line.get_label(): line for line in top.get_lines() if not line.get_label().startswith("_")}
    [floor] = [line for label, line in lines.items() if label.startswith("noise floor")]
    models = {label: line for label, line in lines.items() if not label.startswith("noise floor")}
    assert set(models) == {S.MODEL_LABELS[m] for m in MODELS}
    assert len({colour(line) for line in models.values()}) == len(MODELS)  # every model its own colour
    assert floor.get_linestyle() == ":" and len(set(colour(floor))) == 1  # the floor: grey, dotted
    for label, line in models.items():
        assert colour(line) != colour(floor) and line.get_linestyle() != ":", label
        assert len(set(colour(line))) > 1 or colour(line) == (0.0, 0.0, 0.0), label  # black, or not grey at all
    assert models["MMoE"].get_linestyle() == "-"
    assert models["CGC"].get_linestyle() == "-." and models["PLE"].get_linestyle() not in ("-", "-.", ":")
    assert colour(models["PLE"]) == (0.0, 0.0, 0.0)
