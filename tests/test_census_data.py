"""Census-income loader: shapes, labels, split, leakage, vocabulary, recipes, file checks, download.

The real files live in ../shared/data/census-income beside the repository; every test that needs them is
skipped when they are absent. A plain ``str.split`` parse of both files serves as an independent oracle.

Memory: one full encoding is ~0.6 GB in float32 (1.2 GB in float64), so at most one is kept between tests
(:func:`loaded`; a reload from the parsed files takes about a second), and the float64 one is loaded alone: the
module stays within about 2 GB.
"""
import contextlib
import gzip
import http.server
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import mmoe_np as mn
from mmoe_np.data import census

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "census-income"
TRAIN, TEST = "census-income.data.gz", "census-income.test.gz"
N_TRAIN, N_OTHER, N_HALF = 199_523, 99_762, 49_881

needs_data = pytest.mark.skipif(not (DATA_DIR / TRAIN).is_file() or not (DATA_DIR / TEST).is_file(),
                                reason=f"Census-income files not found in {DATA_DIR}")
COLLEGE_PREFIXES = ("Associates degree", "Bachelors", "Masters", "Prof school", "Doctorate")


def plain_columns(path):
    """The 42 columns of a file as lists of str, split on ", " (a few values keep a trailing space). Every field is
    interned: ~100k distinct texts stand for 8.4M fields (one string object each would take ~0.6 GB)."""
    with gzip.open(path, "rt", encoding="ascii") as f:
        rows = [list(map(sys.intern, line[:-1].split(", "))) for line in f]
    assert {len(row) for row in rows} == {42}
    return [list(column) for column in zip(*rows)]


_PLAIN = {}


@pytest.fixture
def plain():
    """The oracle's columns of both files, parsed once and kept (``_PLAIN``) until a test needs the memory."""
    if not _PLAIN:
        _PLAIN.update({name: plain_columns(DATA_DIR / name) for name in (TRAIN, TEST)})
    return _PLAIN


def load(**kwargs):
    return mn.data.load_census_income(DATA_DIR, **kwargs)


_KEPT = {}


@pytest.fixture(scope="module", autouse=True)
def release_memory():
    """At the end of the module, drop the kept encoding and oracle (~1.2 GB), so later test modules start light."""
    yield
    _KEPT.clear()
    _PLAIN.clear()


def loaded(**kwargs):
    """``load(**kwargs)``, kept until another configuration is asked for (the previous one is dropped first)."""
    key = tuple(sorted(kwargs.items()))
    if key not in _KEPT:
        _KEPT.clear()
        _KEPT[key] = load(**kwargs)
    return _KEPT[key]


@pytest.fixture
def paper1():
    return loaded(group=1)


@pytest.fixture
def paper2():
    return loaded(group=2)


@pytest.fixture
def keras1():
    return loaded(group=1, recipe="keras")



def assert_equal_by_blocks(a, b, rows=20_000):
    """``np.testing.assert_array_equal(a, b)`` over blocks of rows: on floats it copies both arrays (~0.4 GB each
    for X_train) to set NaNs aside; a block at a time, the copies stay small."""
    assert a.shape == b.shape and a.dtype == b.dtype
    for start in range(0, len(a), rows):
        np.testing.assert_array_equal(a[start:start + rows], b[start:start + rows])


def column(name):
    return census.CENSUS_COLUMNS.index(name)


def feature(data, name):
    return data.feature_names.index(name)


# ---------------------------------------------------------------- shapes, labels, split


@needs_data
@pytest.mark.parametrize("kwargs, n_features", [(dict(group=1), 486), (dict(group=2), 488),
                                                (dict(group=1, recipe="keras"), 499)])
def test_shapes_dtypes_and_names(kwargs, n_features):
    data = loaded(**kwargs)
    for X, Y, n in ((data.X_train, data.Y_train, N_TRAIN), (data.X_val, data.Y_val, N_HALF),
                    (data.X_test, data.Y_test, N_HALF)):
        assert X.shape == (n, n_features) and X.dtype == np.float32
        assert Y.shape == (n, 2) and Y.dtype == np.float32
        assert set(np.unique(Y)) == {0.0, 1.0}
        assert np.all(np.isfinite(X))
    assert len(data.feature_names) == data.n_features == n_features
    assert len(set(data.feature_names)) == n_features


@needs_data
def test_labels_match_an_independent_parse(plain):
    def truth(name):
        """{group: (N, 2) labels} of one file, by the README's values."""
        cols = plain[name]
        income = np.array([v == "50000+." for v in cols[column("income")]])
        never = np.array([v == "Never married" for v in cols[column("marital stat")]])
        college = np.array([v.startswith(COLLEGE_PREFIXES) for v in cols[column("education")]])
        return {1: np.stack([income, never], axis=1), 2: np.stack([college, never], axis=1)}

    train, other = truth(TRAIN), truth(TEST)
    names = {1: ("income>50K", "never_married"), 2: ("education>=college", "never_married")}
    for group in (1, 2):
        data = loaded(group=group)
        np.testing.assert_array_equal(data.Y_train, train[data.group])
        np.testing.assert_array_equal(data.Y_val, other[data.group][data.val_rows])
        np.testing.assert_array_equal(data.Y_test, other[data.group][data.test_rows])
        assert data.task_names == names[group]
        assert (data.group, data.recipe) == (group, "paper")
        del data  # before the next group is loaded


@needs_data
def test_label_prevalences():
    def prevalence(data, task):
        other = np.concatenate([data.Y_val[:, task], data.Y_test[:, task]])
        return data.Y_train[:, task].mean(), other.mean()

    paper1 = loaded(group=1)
    train, other = prevalence(paper1, 0)
    assert train == pytest.approx(12_382 / N_TRAIN) and other == pytest.approx(6_186 / N_OTHER)  # README counts
    assert round(train, 3) == round(other, 3) == 0.062
    assert all(0.42 < p < 0.45 for p in prevalence(paper1, 1))
    del paper1
    assert all(0.18 < p < 0.21 for p in prevalence(loaded(group=2), 0))


@needs_data
def test_test_file_is_split_disjointly_and_completely(paper1):
    assert paper1.val_rows.shape == paper1.test_rows.shape == (N_HALF,)
    rows = np.concatenate([paper1.val_rows, paper1.test_rows])
    np.testing.assert_array_equal(np.sort(rows), np.arange(N_OTHER))


# ---------------------------------------------------------------- features


@needs_data
def test_paper_features_leave_out_labels_and_instance_weight():
    def columns(names):
        return {name.split("=")[0] for name in names}

    names2 = loaded(group=2).feature_names  # the names only: the group-2 arrays go when group 1 is loaded
    paper1 = loaded(group=1)
    assert not columns(paper1.feature_names) & {"education", "marital stat", "income", "instance weight"}
    assert not columns(names2) & {"education", "marital stat", "instance weight"}
    assert columns(names2) - columns(paper1.feature_names) == {"income"}
    assert paper1.feature_names[:7] == ["age", "wage per hour", "capital gains", "capital losses",
                                        "dividends from stocks", "num persons worked for employer",
                                        "weeks worked in year"]
    assert "class of worker=Private" in paper1.feature_names and "year=95" in paper1.feature_names


@needs_data
def test_vocabulary_is_the_training_values(paper1, plain):
    for name, values in paper1.vocabulary.items():
        j = column(name)
        assert set(values) == {v.strip() for v in set(plain[TRAIN][j])}, name
        # True of this data: no categorical value occurs only in the test file.
        assert {v.strip() for v in set(plain[TEST][j])} <= set(values), name
        start = feature(paper1, f"{name}={values[0]}")
        assert paper1.feature_names[start:start + len(values)] == [f"{name}={v}" for v in values]
        for X in (paper1.X_train, paper1.X_val):  # exactly one 1 per block and row
            np.testing.assert_array_equal(X[:, start:start + len(values)].sum(axis=1), 1)
    counts = {n: len(v) for n, v in paper1.vocabulary.items()}
    assert {n: counts[n] for n in ("class of worker", "detailed industry recode", "detailed occupation recode",
                                   "state of previous residence", "year")} == {
        "class of worker": 9, "detailed industry recode": 52, "detailed occupation recode": 47,
        "state of previous residence": 51, "year": 2}  # census-income.names / the data README
    assert len(counts) == 31 and sum(counts.values()) + 7 == paper1.n_features
    assert paper1.vocabulary["detailed industry recode"][:3] == ("0", "1", "2")  # numeric order
    assert "?" in paper1.vocabulary["country of birth self"]  # missing is a category of its own


@needs_data
def test_standardisation_uses_training_rows_only(paper1, plain):
    for name in paper1.feature_names[:7]:
        x = paper1.X_train[:, feature(paper1, name)].astype(np.float64)
        assert abs(x.mean()) < 1e-5 and abs(x.std() - 1) < 1e-5, name
    # The check above is sharp enough to catch statistics taken over train + test rows:
    age_train = np.array(plain[TRAIN][0], dtype=float)
    age_pooled = np.concatenate([age_train, np.array(plain[TEST][0], dtype=float)])
    assert abs(age_pooled.mean() - age_train.mean()) / age_train.std() > 1e-3
    dividends = column("dividends from stocks")
    div_train = np.array(plain[TRAIN][dividends], dtype=float)
    div_pooled = np.concatenate([div_train, np.array(plain[TEST][dividends], dtype=float)])
    assert abs(div_pooled.std() / div_train.std() - 1) > 1e-2
    # Validation rows are scaled with the training mean and std.
    age_val = np.array(plain[TEST][0], dtype=float)[paper1.val_rows]
    np.testing.assert_allclose(paper1.X_val[:, 0], (age_val - age_train.mean()) / age_train.std(), atol=1e-5)


def encoded(train_rows, other_rows):
    """Fit the encoder (age numeric, class of worker one-hot) on tiny train rows; encode tiny other rows."""
    def table(rows):
        filler = ["0"] * (len(census.CENSUS_COLUMNS) - 2)
        lines = (", ".join([str(age), worker, *filler]) + "\n" for age, worker in rows)
        return census._parse("".join(lines).encode("ascii"))

    encoder = census._Encoder.fit(table(train_rows), numeric=(0,), categorical=(1,), standardise=True)
    return encoder, encoder.transform(table(other_rows), np.float64)


def test_unseen_values_give_an_all_zero_block_and_training_statistics_rule():
    encoder, X = encoded(train_rows=[(20, "Private"), (40, "Never worked")],
                         other_rows=[(1000, "Martian"), (40, "Private")])
    assert encoder.feature_names == ["age", "class of worker=Never worked", "class of worker=Private"]
    np.testing.assert_array_equal(X, [[(1000 - 30) / 10, 0, 0], [1, 0, 1]])


# ---------------------------------------------------------------- transforms of the heavy-tailed columns


def test_log1p_then_standardise_with_training_statistics_only():
    train = np.array([[0.0, 20.0], [0.0, 30.0], [9.0, 40.0], [99.0, 50.0]])
    other = np.array([[999.0, 60.0], [0.0, 20.0]])
    t = census.NumericTransform.fit(train, heavy=[True, False], method="log1p")
    logged = np.log1p(train[:, 0])
    mean, std = logged.mean(), logged.std()
    np.testing.assert_allclose(t.apply(train)[:, 0], (logged - mean) / std, rtol=1e-12)
    np.testing.assert_allclose(t.apply(other)[:, 0], (np.log1p([999.0, 0.0]) - mean) / std, rtol=1e-12)
    # the column not marked heavy is only standardised, with the training mean 35 and std sqrt(125)
    np.testing.assert_allclose(t.apply(other)[:, 1], (np.array([60.0, 20.0]) - 35) / np.sqrt(125), rtol=1e-12)
    np.testing.assert_array_equal(other, [[999.0, 60.0], [0.0, 20.0]])  # the input is not modified


def test_quantile_bins_come_from_the_training_rows():
    train = np.concatenate([np.zeros(90), np.arange(1.0, 11.0)])[:, None]  # 90 zeros, then 1..10
    t = census.NumericTransform.fit(train, method="quantile", n_bins=5, standardise=False)
    # the quantiles at 0.2 .. 0.8 of the positive values 1..10 (linear interpolation); 0 keeps a bin of its own
    np.testing.assert_allclose(t.edges[0], [2.8, 4.6, 6.4, 8.2], rtol=1e-12)
    codes = t.apply(np.array([[-5.0], [0.0], [1.0], [3.0], [8.2], [99_999.0]]))[:, 0]
    np.testing.assert_array_equal(codes, [0, 0, 1, 2, 5, 5])  # 1 + #edges <= x; 99,999 lands in the last bin
    z = census.NumericTransform.fit(train, method="quantile", n_bins=5).apply(train)
    assert abs(z.mean()) < 1e-12 and abs(z.std() - 1) < 1e-12  # then standardised on the training rows


def test_standardize_is_the_plain_standardisation():
    train = np.array([[1.0, 5.0], [3.0, 5.0]])
    t = census.NumericTransform.fit(train)
    np.testing.assert_array_equal(t.apply(train), [[-1.0, 0.0], [1.0, 0.0]])  # a constant column keeps scale 1


@pytest.mark.parametrize("kwargs, name", [({"method": "log"}, "numeric"), ({"n_bins": 1}, "n_bins"),
                                          ({"heavy": [True]}, "heavy"), ({"method": "log1p", "train": [[-2.0, 1]]},
                                                                         "non-negative"),
                                          ({"train": [[np.nan, 1.0]]}, "train")])
def test_numeric_transform_bad_arguments(kwargs, name):
    train = kwargs.pop("train", [[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match=name):
        census.NumericTransform.fit(np.array(train), **kwargs)


@needs_data
@pytest.mark.parametrize("numeric", ["log1p", "quantile"])
def test_heavy_tailed_columns_transformed_on_the_real_data(numeric, plain):
    data = loaded(group=1, numeric=numeric)
    assert data.numeric == numeric and data.n_features == 486
    for name in census.HEAVY_TAILED:
        j, raw = feature(data, name), np.array(plain[TRAIN][column(name)], dtype=float)
        x = data.X_train[:, j].astype(np.float64)
        assert abs(x.mean()) < 1e-4 and abs(x.std() - 1) < 1e-4, name  # standardised after the transform
        if numeric == "log1p":
            logged = np.log1p(raw)
            np.testing.assert_allclose(x, (logged - logged.mean()) / logged.std(), atol=1e-5)
        else:
            assert 3 <= len(np.unique(x)) <= 33, name  # 0 and at most n_bins codes of positive values
            assert np.all(np.diff(x[np.argsort(raw, kind="stable")]) >= 0), name  # order kept
    # the bounded columns are standardised as always, the one-hot blocks untouched
    age = np.array(plain[TRAIN][0], dtype=float)
    np.testing.assert_allclose(data.X_train[:, 0], (age - age.mean()) / age.std(), atol=1e-5)
    assert set(np.unique(data.X_val[:, 7:])) == {0.0, 1.0}


def test_numeric_is_checked_before_any_file_is_read(tmp_path):
    with pytest.raises(ValueError, match="numeric must be one of"):
        mn.data.load_census_income(tmp_path, numeric="sqrt")
    with pytest.raises(ValueError, match="numeric applies to the paper recipe only"):
        mn.data.load_census_income(tmp_path, recipe="keras", numeric="log1p")


# ---------------------------------------------------------------- the keras-mmoe recipe


@needs_data
def test_keras_recipe_has_499_columns_raw_numbers_and_education(keras1, plain):
    raw = ["age", "wage per hour", "capital gains", "capital losses", "dividends from stocks", "instance weight",
           "num persons worked for employer", "own business or self employed", "veterans benefits",
           "weeks worked in year", "year"]
    assert keras1.n_features == 499 and keras1.feature_names[:11] == raw
    for name in raw:  # kept as the raw numbers, not scaled
        expected = np.array(plain[TRAIN][column(name)], dtype=float)
        np.testing.assert_allclose(keras1.X_train[:, feature(keras1, name)], expected, rtol=1e-6)
    assert len(keras1.vocabulary) == 29 and len(keras1.vocabulary["education"]) == 17
    assert not {"marital stat", "income"} & set(keras1.vocabulary)
    rare = feature(keras1, "detailed household and family stat=Grandchild <18 ever marr not in subfamily")
    assert keras1.X_train[:, rare].sum() == 2 and keras1.X_val[:, rare].sum() == keras1.X_test[:, rare].sum() == 0


@needs_data
def test_keras_recipe_group_2_swaps_education_for_income():
    data = loaded(group=2, recipe="keras")
    assert data.n_features == 499 - 17 + 2
    assert "income" in data.vocabulary and "education" not in data.vocabulary


# ---------------------------------------------------------------- the split seed and the dtype


@needs_data
def test_split_is_determined_by_the_seed():
    _KEPT.clear()  # the float64 encoding (~1.2 GB) is loaded alone (the oracle's columns too are gone), then kept
    _PLAIN.clear()  # as float32
    again = load(group=1, seed=0, dtype=np.float64)
    assert again.X_train.dtype == again.Y_val.dtype == np.float64
    names = ("X_train", "Y_train", "X_val", "Y_val", "X_test", "Y_test", "val_rows", "test_rows")
    arrays = {name: getattr(again, name) for name in names}
    del again
    for name in names:  # one array at a time: a single float64 array is converted at once
        arrays[name] = arrays[name].astype(np.float32) if arrays[name].dtype == np.float64 else arrays[name]
    paper1 = loaded(group=1)
    for name in names:
        assert_equal_by_blocks(arrays[name], getattr(paper1, name))
    del arrays
    other = load(group=1, seed=1)
    assert_equal_by_blocks(other.X_train, paper1.X_train)
    assert not np.array_equal(other.val_rows, paper1.val_rows)
    assert len(np.intersect1d(other.val_rows, paper1.val_rows)) < 0.6 * N_HALF


# ---------------------------------------------------------------- correlations


@needs_data
def test_label_correlations():
    sample = mn.data.census_label_correlations(DATA_DIR, n_rows=10_000, seed=0)
    assert set(sample) == {1, 2}
    assert 0.17 <= sample[1] <= 0.19 and 0.23 <= sample[2] <= 0.25  # paper: 0.1768 and 0.2373
    everyone = mn.data.census_label_correlations(DATA_DIR, n_rows=N_TRAIN)
    assert everyone[1] == pytest.approx(0.1782, abs=1e-4) and everyone[2] == pytest.approx(0.2400, abs=1e-4)


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("kwargs, argument", [
    ({"group": 3}, "group"), ({"group": "1"}, "group"), ({"group": True}, "group"),
    ({"recipe": "pandas"}, "recipe"), ({"recipe": None}, "recipe"),
    ({"dtype": np.int32}, "dtype"), ({"seed": -1}, "seed"), ({"seed": "zero"}, "seed"),
])
def test_bad_arguments_are_named_before_any_file_is_read(tmp_path, kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        mn.data.load_census_income(tmp_path, **kwargs)


@needs_data
@pytest.mark.parametrize("n_rows", [0, 1, N_TRAIN + 1, 2.5])
def test_bad_n_rows(n_rows):
    with pytest.raises(ValueError, match="n_rows"):
        mn.data.census_label_correlations(DATA_DIR, n_rows=n_rows)


# ---------------------------------------------------------------- file checks


@pytest.fixture(scope="module")
def test_lines():
    with gzip.open(DATA_DIR / TEST, "rb") as f:
        return f.read().splitlines(keepends=True)


@pytest.fixture
def data_dir(tmp_path):
    """A data directory whose training file links to the real one (so it hits the parse cache)."""
    (tmp_path / TRAIN).symlink_to(DATA_DIR / TRAIN)
    return tmp_path


def test_missing_directory_names_the_file_and_the_way_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"{TRAIN}.*download_census_income"):
        mn.data.load_census_income(tmp_path / "nowhere")


@needs_data
def test_missing_test_file(data_dir):
    with pytest.raises(FileNotFoundError, match=TEST):
        mn.data.load_census_income(data_dir)


@needs_data
@pytest.mark.parametrize("damage, message", [
    ("truncated gzip", "not a readable gzip stream"),
    ("corrupt gzip", "not a readable gzip stream"),
    ("one line removed", "99,761 rows; expected 99,762"),
    ("one byte changed", "sha256"),
    ("wrong file", "199,523 rows; expected 99,762"),
])
def test_damaged_files_raise_value_error(data_dir, test_lines, damage, message):
    if damage == "wrong file":
        data = (DATA_DIR / TRAIN).read_bytes()
    elif damage.endswith("gzip"):
        data = bytearray((DATA_DIR / TEST).read_bytes())
        if damage == "truncated gzip":
            del data[len(data) // 2:]
        else:
            data[1000:1100] = bytes(100)
    else:
        lines = list(test_lines)
        if damage == "one line removed":
            del lines[5]
        else:
            assert b"Not in universe" in lines[5]
            lines[5] = lines[5].replace(b"Not in universe", b"Not in universo", 1)
        data = gzip.compress(b"".join(lines), compresslevel=1)
    (data_dir / TEST).write_bytes(data)
    with pytest.raises(ValueError, match=message) as info:
        mn.data.load_census_income(data_dir)
    assert TEST in str(info.value)


# ---------------------------------------------------------------- download (from a local server only)


@contextlib.contextmanager
def serving(directory):
    """An HTTP server on 127.0.0.1 serving ``directory``; yields its base URL and the list of paths asked."""
    asked = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(directory), **kwargs)

        def do_GET(self):
            asked.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/files", asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


@needs_data
def test_download_verifies_writes_and_skips_valid_files(tmp_path):
    (tmp_path / "files").symlink_to(DATA_DIR)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / TEST).write_bytes(b"not the test file")  # present but invalid: fetched again
    with serving(tmp_path) as (url, asked):
        assert mn.data.download_census_income(dest, base_url=url) == dest
        assert sorted(asked) == [f"/files/{TRAIN}", f"/files/{TEST}"]
        mn.data.download_census_income(dest, base_url=url + "/")
        assert len(asked) == 2  # both present and valid now: nothing fetched
    assert sorted(p.name for p in dest.iterdir()) == [TRAIN, TEST]
    for name in (TRAIN, TEST):
        assert (dest / name).read_bytes() == (DATA_DIR / name).read_bytes()


@needs_data
def test_download_of_a_bad_file_raises_and_leaves_nothing(tmp_path):
    served = tmp_path / "files"
    served.mkdir()
    (served / TRAIN).symlink_to(DATA_DIR / TRAIN)
    (served / TEST).write_bytes((DATA_DIR / TEST).read_bytes()[:-1000])
    dest = tmp_path / "dest"
    with serving(tmp_path) as (url, _):
        with pytest.raises(ValueError, match=rf"{url}/{TEST}.*gzip"):
            mn.data.download_census_income(dest, base_url=url)
    assert [p.name for p in dest.iterdir()] == [TRAIN]  # the good file stays; no partial file is left


def test_download_of_a_missing_file_names_the_url(tmp_path):
    with serving(tmp_path) as (url, _):
        with pytest.raises(OSError, match=rf"{url}/{TRAIN}"):
            mn.data.download_census_income(tmp_path / "dest", base_url=url)


@pytest.mark.parametrize("kwargs, name", [(dict(timeout=-1), "timeout"), (dict(timeout=0), "timeout"),
                                          (dict(base_url=""), "base_url")])
def test_download_arguments_are_checked_before_any_request(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        mn.data.download_census_income(tmp_path / "dest", **kwargs)
    assert not (tmp_path / "dest").exists()
