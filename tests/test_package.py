"""Package-level promises: the public names exist, and ``import mmoe_np`` loads NumPy only."""
import subprocess
import sys

import mmoe_np as mn


def test_import_loads_numpy_only():
    code = ("import sys, mmoe_np; heavy = [m for m in ('scipy', 'matplotlib', 'torch') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_public_name_exists():
    for name in mn.__all__:
        assert getattr(mn, name) is not None, name
    assert callable(mn.data.load_census_income) and callable(mn.metrics.roc_auc)
