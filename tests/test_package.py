"""Package-level promises: the public names exist, and ``import mmoe_np`` loads NumPy only."""
import subprocess
import sys

import mmoe_np as mn


def test_import_loads_numpy_only():
    code = ("import sys, mmoe_np; heavy = [m for m in ('scipy', 'matplotlib', 'torch', 'pytest', 'hypothesis') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_testing_toolkit_loads_on_first_use_without_hypothesis():
    code = ("import sys, mmoe_np as mn; assert 'mmoe_np.testing' not in sys.modules; "
            "assert callable(mn.testing.assert_gradients_close); "
            "print([m for m in ('hypothesis', 'pytest') if m in sys.modules]); "
            "sys.exit(1 if 'hypothesis' in sys.modules or 'pytest' in sys.modules else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_public_name_exists():
    for name in mn.__all__:
        assert getattr(mn, name) is not None, name
    assert callable(mn.data.load_census_income) and callable(mn.metrics.roc_auc)


def test_the_functional_core_and_the_models_export_what_they_list():
    from mmoe_np import models, ops, tucker
    for module in (ops, tucker, models):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"
    for name in ("MultiTaskModel", "LossResult", "MixtureOfExperts", "stack_models", "unstack_models",
                 "MODEL_CLASSES", *models.MODEL_CLASSES):
        assert getattr(mn, name) is getattr(models, name), name
    assert sorted(models.MODEL_CLASSES) == sorted(["SingleTask", "SharedBottom", "OMoE", "MMoE", "L2Constrained",
                                                   "CrossStitch", "TensorFactorization"])
    assert callable(tucker.check_ranks) and callable(mn.tucker.tucker_decompose)
