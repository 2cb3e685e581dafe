"""save/load: round trips of every model (float32 and float64, single and stacked), bit for bit; damaged, truncated
and foreign files refused by name; checkpoints that contradict their config; newer formats; interrupted saves."""
import io
import json
import os
import zipfile

import numpy as np
import pytest

import mmoe_np as mn
from mmoe_np import persist

TASKS = ("regression", "binary")
D = 5
MODELS = {
    "SingleTask": lambda **kw: mn.SingleTask(D, TASKS, hidden_units=(4, 3), tower_units=(2,), **kw),
    "SharedBottom": lambda **kw: mn.SharedBottom(D, TASKS, bottom_units=(6,), tower_units=(), **kw),
    "OMoE": lambda **kw: mn.OMoE(D, TASKS, n_experts=3, expert_units=(4,), tower_units=(2,), **kw),
    "MMoE": lambda **kw: mn.MMoE(D, TASKS, n_experts=3, expert_units=(4,), tower_units=(2,), **kw),
    "L2Constrained": lambda **kw: mn.L2Constrained(D, TASKS, hidden_units=(4,), l2_weight=0.25, tie_towers=True,
                                                   **kw),
    "CrossStitch": lambda **kw: mn.CrossStitch(D, TASKS, hidden_units=(4, 3), alpha_self=0.7, **kw),
    "TensorFactorization": lambda **kw: mn.TensorFactorization(D, TASKS, hidden_units=(4,), ranks=(2, 3, 2), **kw),
}


def trained(name, dtype=np.float64, seed=0):
    """A model whose parameters are no longer its initial ones (so a load that only rebuilt it from its seed fails)."""
    model = MODELS[name](seed=seed, dtype=dtype, task_weights=(0.5, 2.0))
    rng = np.random.default_rng(seed + 100)
    for p in model.params.values():
        p += rng.standard_normal(p.shape).astype(dtype)
    return model


def stacked(name, dtype=np.float64):
    return mn.stack_models([trained(name, dtype, seed) for seed in (3, 1, 4)])


def assert_identical(loaded, model):
    assert type(loaded) is type(model)
    assert loaded.config() == model.config()
    assert loaded.dtype == model.dtype and loaded.seed == model.seed and loaded.replica_shape == model.replica_shape
    assert loaded.params.keys() == model.params.keys()
    for k, p in model.params.items():
        q = loaded.params[k]
        assert q.dtype == p.dtype and q.shape == p.shape and q.tobytes() == p.tobytes(), k  # bit for bit
        assert q.flags.writeable and np.shares_memory(q, loaded.params.flat), k  # a view of the loaded buffer
    assert loaded.params.intact() and loaded.params.layout.blocks == model.params.layout.blocks
    X = np.random.default_rng(7).standard_normal((6, model.n_features))
    assert loaded.forward(X).tobytes() == model.forward(X).tobytes()


def rewrite(path, edit_meta=None, edit_arrays=None):
    """Write back the checkpoint at ``path`` with its metadata and/or its arrays changed (as a forger would)."""
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays.pop(persist.METADATA_KEY).tobytes())
    if edit_meta:
        edit_meta(meta)
    if edit_arrays:
        edit_arrays(arrays)
    raw = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **{persist.METADATA_KEY: raw}, **arrays)


def refused(path, match):
    with pytest.raises(ValueError, match=f"^{str(path)}: .*{match}"):
        persist.load(path)


# ------------------------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", MODELS)
def test_round_trip_single(tmp_path, name, dtype):
    model = trained(name, dtype, seed=5)
    path = persist.save(model, tmp_path / "model.npz")
    assert path == tmp_path / "model.npz"
    assert_identical(persist.load(path), model)
    assert_identical(persist.load(str(path)), model)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", MODELS)
def test_round_trip_stacked(tmp_path, name, dtype):
    model = stacked(name, dtype)
    loaded = persist.load(persist.save(model, tmp_path / "stacked.npz"))
    assert_identical(loaded, model)
    assert loaded.seed == (3, 1, 4) and loaded.replica_shape == (3,)
    for single, original in zip(mn.unstack_models(loaded), mn.unstack_models(model)):
        assert_identical(single, original)


def test_the_file_is_plain_arrays_and_json(tmp_path):
    model = stacked("MMoE", np.float32)
    path = persist.save(model, tmp_path / "m.npz")
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == sorted(f"{k}.npy" for k in [persist.METADATA_KEY, *model.params])
    with np.load(path, allow_pickle=False) as npz:
        raw = npz[persist.METADATA_KEY]
        assert raw.dtype == np.uint8 and raw.ndim == 1
        assert all(npz[k].dtype == np.float32 for k in model.params)
    meta = json.loads(raw.tobytes().decode("utf-8"))
    assert meta == {"format": "mmoe_np model", "format_version": persist.FORMAT_VERSION,
                    "package_version": mn.__version__, "class": "MMoE", "replica_shape": [3],
                    "config": {"n_features": D, "tasks": list(TASKS), "n_experts": 3, "expert_units": [4],
                               "tower_units": [2], "task_weights": [0.5, 2.0], "dtype": "float32", "seed": [3, 1, 4]}}


def test_a_description_of_the_inputs_is_saved_with_the_model_and_read_without_the_arrays(tmp_path, monkeypatch):
    model = trained("MMoE")
    data = {"dataset": "census-income", "group": 2, "numeric": "log1p", "train_rows": None, "tasks": ["a", "b"]}
    path = model.save(tmp_path / "m.npz", data=data)
    info = mn.checkpoint_info(path)
    assert info["data"] == data and info["class"] == "MMoE" and info["config"]["n_experts"] == 3
    assert_identical(mn.load(path), model)  # the description changes nothing of the model
    assert mn.checkpoint_info(model.save(tmp_path / "plain.npz"))["data"] is None
    read = np.lib.npyio.NpzFile.__getitem__

    def metadata_only(self, key):  # checkpoint_info must not read (or CRC-check) a single parameter array
        assert key == persist.METADATA_KEY, f"read the array {key!r}"
        return read(self, key)

    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", metadata_only)
    assert mn.checkpoint_info(path)["data"] == data
    with pytest.raises(ValueError, match="read the array"):  # load does read them: the patch is in force
        mn.load(path)
    monkeypatch.undo()
    numpy_values = {"mean": np.float32(0.5), "n": np.int64(3), "scale": np.array([1.0, 2.0]), "kind": np.dtype("f4")}
    assert mn.checkpoint_info(model.save(tmp_path / "np.npz", data=numpy_values))["data"] == {
        "mean": 0.5, "n": 3, "scale": [1.0, 2.0], "kind": "float32"}  # as the config's NumPy values are written
    deep: dict = {}
    for _ in range(10_000):
        deep = {"x": deep}
    for bad, match in ((["log1p"], "data must be a dict"), ({1: "x"}, "every key, at every depth, must be a str"),
                       ({"a": {1: "x", "1": "y"}}, "every key, at every depth"), ({"a": [{2: 0}]}, "every key"),
                       ({"x": float("nan")}, "JSON values only"), ({"x": np.array([np.inf])}, "JSON values only"),
                       ({"x": object()}, "JSON values only"), (deep, "JSON values only")):
        with pytest.raises(ValueError, match=match):
            model.save(tmp_path / "bad.npz", data=bad)
    assert not (tmp_path / "bad.npz").exists()
    rewrite(path, lambda meta: meta.update({"data": "log1p"}))
    refused(path, "metadata 'data' must be an object")
    with pytest.raises(ValueError, match="metadata 'data' must be an object"):
        mn.checkpoint_info(path)
    with pytest.raises(ValueError, match="not an mmoe_np model file"):
        (tmp_path / "x.txt").write_text("hello")
        mn.checkpoint_info(tmp_path / "x.txt")


def test_the_path_is_used_as_given_and_a_save_replaces_the_old_file(tmp_path):
    path = tmp_path / "model.ckpt"  # np.savez given this name would have written model.ckpt.npz
    persist.save(trained("OMoE", seed=1), path)
    persist.save(trained("MMoE", seed=2), path)
    assert os.listdir(tmp_path) == ["model.ckpt"]
    assert_identical(persist.load(path), trained("MMoE", seed=2))


def test_save_arguments(tmp_path):
    class MyMMoE(mn.MMoE):  # load could not rebuild it: it is not one of the package's classes
        pass

    with pytest.raises(ValueError, match=r"model must be one of mmoe_np's models \[.*'MMoE'.*\]; got MyMMoE"):
        persist.save(MyMMoE(D, TASKS), tmp_path / "m.npz")
    with pytest.raises(ValueError, match="got dict"):
        persist.save({"w": np.zeros(2)}, tmp_path / "m.npz")
    with pytest.raises(ValueError, match="path must be a file name"):
        persist.save(trained("MMoE"), 3)
    with pytest.raises(ValueError, match="path: the folder .*missing.* does not exist"):
        persist.save(trained("MMoE"), tmp_path / "missing" / "m.npz")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------------------ interrupted save
@pytest.mark.parametrize("fault", [KeyboardInterrupt, OSError(28, "No space left on device")])
def test_an_interrupted_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch, fault):
    path = tmp_path / "model.npz"
    old = trained("MMoE", seed=1)
    persist.save(old, path)
    before = path.read_bytes()
    real_savez = np.savez

    def crash_halfway(f, **arrays):  # writes the first half of the real archive, then fails
        buffer = io.BytesIO()
        real_savez(buffer, **arrays)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise fault

    monkeypatch.setattr(np, "savez", crash_halfway)
    for target in (path, tmp_path / "new.npz"):  # over an old file, and where there was none
        with pytest.raises(type(fault) if isinstance(fault, Exception) else fault):
            persist.save(trained("MMoE", seed=2), target)
    assert os.listdir(tmp_path) == ["model.npz"]
    assert path.read_bytes() == before
    monkeypatch.undo()
    assert_identical(persist.load(path), old)


# ------------------------------------------------------------------------------------------------ damaged files
def tiny_checkpoint(tmp_path):
    model = mn.SingleTask(2, ("binary",), hidden_units=(1,), tower_units=(), seed=1, dtype=np.float32)
    return model, persist.save(model, tmp_path / "tiny.npz").read_bytes()


def test_every_flipped_byte_is_refused_or_changes_nothing(tmp_path):
    # Every array is covered by its zip entry's CRC-32 and every key, shape and dtype is checked against the config,
    # so a flip either is caught or falls in a field that carries no data (a timestamp, a "made by" version).
    model, data = tiny_checkpoint(tmp_path)
    damaged = tmp_path / "damaged.npz"
    outcomes = {"refused": 0, "identical": 0}
    for i in range(len(data)):
        damaged.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
        try:
            loaded = persist.load(damaged)
        except ValueError as err:
            assert str(err).startswith(f"{damaged}: "), str(err)
            outcomes["refused"] += 1
        else:
            assert_identical(loaded, model)
            outcomes["identical"] += 1
    assert outcomes["refused"] > 0.7 * len(data)  # every byte of array data, headers, names and sizes



def test_a_damaged_archive_leaves_no_file_open(tmp_path):
    """np.load given a path keeps the file open until garbage collection when the zip is damaged; load and
    checkpoint_info open it themselves and close it."""
    import gc
    import warnings
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 60)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for read in (mn.load, mn.checkpoint_info):
            with pytest.raises(ValueError, match="damaged or truncated file"):
                read(bad)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], [str(w.message) for w in caught]


@pytest.mark.parametrize("keep", [0, 1, 3, 4, 30, 200, 0.5, -22, -1])
def test_a_truncated_file_is_refused(tmp_path, keep):
    _, data = tiny_checkpoint(tmp_path)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: int(keep * len(data)) if isinstance(keep, float) else keep % len(data)])
    refused(cut, "(damaged or truncated file|empty or truncated file)")


def test_every_truncation_is_refused(tmp_path):
    _, data = tiny_checkpoint(tmp_path)
    cut = tmp_path / "cut.npz"
    for n in range(len(data)):
        cut.write_bytes(data[:n])
        with pytest.raises(ValueError, match=f"^{cut}: "):
            persist.load(cut)


# ------------------------------------------------------------------------------------------------ foreign files
UNPICKLED = []


def remember_unpickling():
    UNPICKLED.append(True)


class Booby:
    """Unpickling this calls ``remember_unpickling``: the code a malicious checkpoint would run."""

    def __reduce__(self):
        return remember_unpickling, ()


def test_missing_and_foreign_files_are_refused(tmp_path):
    refused(tmp_path / "nothing.npz", "no such file")
    refused(tmp_path, "not a file")
    text = tmp_path / "notes.npz"
    text.write_text("just some text, no archive\n")
    refused(text, r"not an mmoe_np model file \(not a .npz archive\)")
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros(3))
    refused(npy, r"not an mmoe_np model file \(not a .npz archive\)")
    plain = tmp_path / "plain.npz"
    np.savez(plain, w=np.zeros(3))
    refused(plain, r"not an mmoe_np model file \(a .npz without the '__mmoe_np__' entry\)")
    other = tmp_path / "other.npz"
    np.savez(other, __mmoe_np__=np.frombuffer(b'{"format": "something else"}', dtype=np.uint8))
    refused(other, "not an mmoe_np model file \\(its metadata has no format 'mmoe_np model'\\)")
    as_text = tmp_path / "unicode.npz"
    np.savez(as_text, __mmoe_np__=np.array('{"format": "mmoe_np model"}'))
    refused(as_text, r"its '__mmoe_np__' entry is <U\d+ of shape \(\), not UTF-8 bytes")
    not_json = tmp_path / "not_json.npz"
    np.savez(not_json, __mmoe_np__=np.frombuffer(b"{format: 1", dtype=np.uint8))
    refused(not_json, "cannot read the metadata's JSON")


def test_loading_never_unpickles(tmp_path):
    model = trained("MMoE")
    for key in (persist.METADATA_KEY, "gates.b"):
        path = tmp_path / f"pickled_{key}.npz"
        persist.save(model, path)
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays[key] = np.array([Booby()], dtype=object)
        np.savez(path, **arrays)
        refused(path, "Object arrays cannot be loaded when allow_pickle=False")
    assert UNPICKLED == []


def forge_entry(path, name, header, data=b""):
    """Rewrite the .npy entry ``name`` of the archive at ``path`` with a hand-written header (and a valid CRC-32)."""
    header = header.encode("latin1")
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"  # the .npy format pads the header to 64 bytes
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    entries[f"{name}.npy"] = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data
    with zipfile.ZipFile(path, "w") as z:
        for n, content in entries.items():
            z.writestr(n, content)


@pytest.mark.parametrize("header, match", [
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 1000000000000000), }", "MemoryError"),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), ", "TokenError"),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (-2, 3), }", "negative dimensions"),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", "EOF: reading array data"),
    ("{'descr': '|O', 'fortran_order': False, 'shape': (2, 3), }", "Object arrays cannot be loaded"),
])
def test_forged_array_headers_are_refused(tmp_path, header, match):
    # Entries with a correct CRC but a header no writer of ours produces: whatever NumPy raises becomes a ValueError.
    path = persist.save(trained("MMoE"), tmp_path / "m.npz")
    forge_entry(path, "gates.b", header, data=bytes(16))
    refused(path, f"damaged or truncated file: cannot read array 'gates.b' .*{match}")


# ------------------------------------------------------------------------------------------------ contradictions
@pytest.fixture
def checkpoint(tmp_path):
    return persist.save(trained("MMoE"), tmp_path / "m.npz")


def test_an_unknown_class_is_refused(checkpoint):
    for name in ("Transformer", "MultiTaskModel", "os.system"):
        rewrite(checkpoint, lambda meta: meta.update({"class": name}))
        refused(checkpoint, f"unknown model class '{name}'; expected one of \\[.*'MMoE'")


def test_a_newer_format_version_is_refused(checkpoint):
    rewrite(checkpoint, lambda meta: meta.update({"format_version": persist.FORMAT_VERSION + 1,
                                                  "package_version": "9.0"}))
    refused(checkpoint, f"format version {persist.FORMAT_VERSION + 1} by mmoe_np 9.0; this mmoe_np reads format "
                        f"versions up to {persist.FORMAT_VERSION}")
    for bad in (0, "1", True, None):
        rewrite(checkpoint, lambda meta: meta.update({"format_version": bad}))
        refused(checkpoint, "invalid format version")


def test_arrays_that_do_not_match_the_config_are_refused(checkpoint):
    rewrite(checkpoint, lambda meta: meta["config"].update({"n_features": D - 1}))
    refused(checkpoint, r"array 'experts.0.W' has shape \(3, 5, 4\) and dtype float64; the config gives shape "
                        r"\(3, 4, 4\) and dtype float64")
    rewrite(checkpoint, lambda meta: meta["config"].update({"n_features": D}))
    assert persist.load(checkpoint).n_features == D  # the forgery is undone: the file loads again
    rewrite(checkpoint, lambda meta: meta["config"].update({"dtype": "float32"}))
    refused(checkpoint, r"array 'experts.0.W' has shape \(3, 5, 4\) and dtype float64; the config gives shape "
                        r"\(3, 5, 4\) and dtype float32")
    rewrite(checkpoint, lambda meta: meta["config"].update({"dtype": "float64"}),
            lambda arrays: arrays.pop("gates.b"))
    refused(checkpoint, r"the arrays do not match the config of MMoE; missing \['gates.b'\], extra \[\]")
    rewrite(checkpoint, edit_arrays=lambda arrays: arrays.update({"gates.b": np.zeros((2, 3)), "extra": np.zeros(1)}))
    refused(checkpoint, r"missing \[\], extra \['extra'\]")
    rewrite(checkpoint, edit_arrays=lambda arrays: arrays.pop("extra"))
    persist.load(checkpoint)
    rewrite(checkpoint, edit_arrays=lambda arrays: arrays.update({"gates.b": np.zeros((2, 3), dtype=">f8")}))
    refused(checkpoint, r"array 'gates.b' has shape \(2, 3\) and dtype >f8")


@pytest.mark.parametrize("key, value", [("n_features", D + 1), ("n_features", 10 ** 5), ("n_features", 10 ** 9),
                                        ("expert_units", [4, 10 ** 9]), ("tower_units", [10 ** 12])])
def test_a_config_larger_than_the_arrays_is_refused_before_anything_is_built(checkpoint, key, value, monkeypatch):
    monkeypatch.setattr(mn.MMoE, "_build", lambda *args: pytest.fail("a model was built"))
    rewrite(checkpoint, lambda meta: meta["config"].update({key: value}))
    refused(checkpoint, rf"its config gives {key} = {value!r}, larger than any array in the file "
                        r"\(largest dimension 5\); the arrays do not match the config".replace("[", r"\["))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_parameters_are_refused_by_name(checkpoint, bad):
    def plant(arrays):
        arrays["gates.b"][1, 2] = bad
    rewrite(checkpoint, edit_arrays=plant)
    refused(checkpoint, "array 'gates.b' contains NaN or inf")


def test_saving_to_a_directory_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = trained("MMoE")
    with pytest.raises(ValueError, match=r"^path: '\.' is a directory$"):
        model.save(".")
    with pytest.raises(ValueError, match=f"^path: {str(tmp_path)!r} is a directory$"):
        persist.save(model, tmp_path)
    assert os.listdir(tmp_path) == []


def test_a_config_the_constructor_refuses_is_refused(checkpoint):
    rewrite(checkpoint, lambda meta: meta["config"].update({"n_experts": 0}))
    refused(checkpoint, "its config does not build a MMoE: n_experts must be a positive integer")
    rewrite(checkpoint, lambda meta: meta["config"].update({"n_experts": 3, "bottom_units": [4]}))
    refused(checkpoint, r"its config does not build a MMoE: MMoE: unknown option\(s\) \['bottom_units'\]")
    rewrite(checkpoint, lambda meta: (meta["config"].pop("bottom_units"), meta["config"].pop("n_features")))
    refused(checkpoint, "its config does not build a MMoE: .*n_features")
    rewrite(checkpoint, lambda meta: meta.update({"config": [1, 2]}))
    refused(checkpoint, "metadata 'config' must be a dict")


def test_stacked_checkpoints_need_one_seed_per_replica(tmp_path):
    path = persist.save(stacked("OMoE"), tmp_path / "s.npz")
    for replica_shape, seed in [([3], [3, 1]), ([3], 3), ([3, 1], [3, 1, 4]), ([0], []), ([True], [3])]:
        rewrite(path, lambda meta: meta.update({"replica_shape": replica_shape, "config": {**meta["config"],
                                                                                         "seed": seed}}))
        refused(path, "a stacked model needs replica_shape \\[R\\] and R seeds")
    rewrite(path, lambda meta: meta.update({"replica_shape": [3], "config": {**meta["config"], "seed": [3, -1, 4]}}))
    refused(path, "its config does not build a OMoE: seed must be a non-negative integer; got -1")
    rewrite(path, lambda meta: meta.update({"replica_shape": [2], "config": {**meta["config"], "seed": [3, 1]}}))
    refused(path, r"array 'experts.0.W' has shape \(3, 3, 5, 4\) and dtype float64; the config gives shape "
                  r"\(2, 3, 5, 4\)")


def test_model_save_and_mn_load_are_the_public_entry_points(tmp_path):
    model = mn.MMoE(5, ("binary", "regression"), n_experts=3, expert_units=(4,), tower_units=(2,), seed=3,
                    dtype=np.float32)
    path = model.save(tmp_path / "m.npz")
    assert path == tmp_path / "m.npz"
    loaded = mn.load(path)
    assert type(loaded) is mn.MMoE and loaded.config() == model.config()
    assert all(np.array_equal(loaded.params[k], model.params[k]) and loaded.params[k].dtype == np.float32
               for k in model.params)


def test_a_general_mixture_of_experts_round_trips(tmp_path):
    model = mn.MixtureOfExperts(4, ("binary", "binary"), n_experts=2, expert_units=(3,), tower_units=(), n_gates=1)
    loaded = mn.load(model.save(tmp_path / "moe.npz"))
    assert type(loaded) is mn.MixtureOfExperts and loaded.config() == model.config()
    X = np.random.default_rng(0).standard_normal((6, 4))
    assert np.array_equal(loaded.forward(X), model.forward(X))


@pytest.mark.parametrize("make", [
    lambda: mn.CGC(4, ("binary", "regression"), n_shared_experts=2, n_task_experts=1, expert_units=(3,),
                   tower_units=(2,), seed=2),
    lambda: mn.PLE(4, ("binary", "regression"), n_levels=2, n_shared_experts=2, n_task_experts=1,
                   expert_units=(3,), tower_units=(2,), seed=2, dtype=np.float32),
    lambda: mn.MMoE(4, ("binary", "regression"), n_experts=3, expert_units=(3,), gate_dropout=0.2, top_k=2,
                    gate_temperature=0.5, loss_weighting="uncertainty", seed=5),
], ids=["CGC", "PLE", "MMoE-gate-options"])
def test_the_beyond_the_paper_models_and_options_round_trip(tmp_path, make):
    model = make()
    loaded = mn.load(model.save(tmp_path / "m.npz"))
    assert type(loaded) is type(model) and loaded.config() == model.config()
    assert all(np.array_equal(loaded.params[k], model.params[k]) for k in model.params)
    X = np.random.default_rng(0).standard_normal((5, 4))
    assert np.array_equal(loaded.predict(X), model.predict(X))
