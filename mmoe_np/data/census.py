"""UCI Census-income (KDD) for the MMoE real-data experiments (Ma et al., KDD 2018, section 6.2).

Two files from UCI, each checked against its row count and the sha256 of its uncompressed content:
``census-income.data.gz`` (199,523 rows) trains; ``census-income.test.gz`` (99,762 rows) is shuffled and
split 1:1 into validation and test (49,881 each). Each line holds 42 fields separated by ``", "``.

Two task groups, as in the paper:

* group 1: income > $50K and never married;
* group 2: education at least college (an associates degree or higher) and never married.

Two feature recipes (``docs/data-census.md`` tells both in full):

* ``"paper"``: ``education``, ``marital stat``, ``instance weight`` and the group's own labels dropped (so income
  too in group 1, where it is a label; group 2 keeps it as a feature); categorical columns one-hot
  with a training-file vocabulary; the 7 continuous columns standardised with training-file mean and std.
* ``"keras"``: the 499-column encoding of drawbridge/keras-mmoe (reused by PaddleRec): only the group's own
  label columns dropped, 11 numerically coded columns (``instance weight`` among them) kept raw, the other 29
  one-hot.

Under the paper recipe, ``numeric`` chooses what happens to the four heavy-tailed columns (:data:`HEAVY_TAILED`:
wage per hour, capital gains, capital losses, dividends; capital gains reach 99,999 while 96% are 0) before every
numeric column is standardised: ``"standardize"`` (nothing), ``"log1p"`` (``log(1 + x)``) or ``"quantile"`` (0 for
0, else the index of the value's bin among the quantiles of the column's positive training values).
:class:`NumericTransform` does it, every statistic computed from training rows only.

Parsing uses gzip and NumPy only. A parsed file is cached in-process by path, size and mtime.
"""
from __future__ import annotations

import gzip
import hashlib
import numbers
import os
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from .. import _validation as V
from .._io import write_bytes

__all__ = ["CensusIncome", "load_census_income", "census_label_correlations", "download_census_income",
           "check_group", "check_recipe", "check_numeric", "NumericTransform", "CENSUS_COLUMNS", "CENSUS_BASE_URL",
           "GROUPS", "RECIPES", "NUMERIC_TRANSFORMS", "HEAVY_TAILED"]

PathLike = Union[str, os.PathLike]

CENSUS_BASE_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/census-income-mld/"

# The 42 fields of a line, in file order (UCI's census-income.names, with `instance weight` at index 24).
CENSUS_COLUMNS = (
    "age", "class of worker", "detailed industry recode", "detailed occupation recode", "education",
    "wage per hour", "enroll in edu inst last wk", "marital stat", "major industry code", "major occupation code",
    "race", "hispanic origin", "sex", "member of a labor union", "reason for unemployment",
    "full or part time employment stat", "capital gains", "capital losses", "dividends from stocks",
    "tax filer stat", "region of previous residence", "state of previous residence",
    "detailed household and family stat", "detailed household summary in household", "instance weight",
    "migration code-change in msa", "migration code-change in reg", "migration code-move within reg",
    "live in this house 1 year ago", "migration prev res in sunbelt", "num persons worked for employer",
    "family members under 18", "country of birth father", "country of birth mother", "country of birth self",
    "citizenship", "own business or self employed", "fill inc questionnaire for veteran's admin",
    "veterans benefits", "weeks worked in year", "year", "income",
)
_COLUMN = {name: j for j, name in enumerate(CENSUS_COLUMNS)}
_EDUCATION, _MARITAL, _INSTANCE_WEIGHT, _INCOME = (_COLUMN[c] for c in ("education", "marital stat",
                                                                    "instance weight", "income"))
# census-income.names calls these 7 "continuous"; every other attribute is nominal, even when its values are
# numeric codes (industry and occupation recodes, own business or self employed, veterans benefits, year).
_CONTINUOUS = tuple(_COLUMN[c] for c in ("age", "wage per hour", "capital gains", "capital losses",
                                        "dividends from stocks", "num persons worked for employer",
                                        "weeks worked in year"))
# Of those, the heavy-tailed ones (most values 0, a long right tail), which ``numeric`` transforms.
HEAVY_TAILED: tuple[str, ...] = ("wage per hour", "capital gains", "capital losses", "dividends from stocks")
# keras-mmoe leaves these numerically coded columns out of its one-hot list, so they stay raw numbers.
_KERAS_RAW_CODES = tuple(_COLUMN[c] for c in ("instance weight", "own business or self employed",
                                              "veterans benefits", "year"))


@dataclass(frozen=True)
class _FileSpec:
    name: str
    n_rows: int
    sha256: str  # of the uncompressed content


_TRAIN_FILE = _FileSpec("census-income.data.gz", 199_523,
                        "3676a81db7d3528f3f8b9f3c699d0f0aa28db45e6e994fa0b8ed38327539ee86")
_TEST_FILE = _FileSpec("census-income.test.gz", 99_762,
                       "98402b1ab879573d0a7f38a699a40258080e25e33d3401e7bf9c96d3fa0fab8c")


@dataclass(frozen=True)
class _Task:
    name: str
    column: int
    positive: frozenset[str]  # the values that make the label 1


_INCOME_TASK = _Task("income>50K", _INCOME, frozenset({"50000+."}))
_NEVER_MARRIED_TASK = _Task("never_married", _MARITAL, frozenset({"Never married"}))
_COLLEGE_TASK = _Task("education>=college", _EDUCATION, frozenset({
    "Associates degree-occup /vocational", "Associates degree-academic program", "Bachelors degree(BA AB BS)",
    "Masters degree(MA MS MEng MEd MSW MBA)", "Prof school degree (MD DDS DVM LLB JD)",
    "Doctorate degree(PhD EdD)"}))
_GROUP_TASKS = {1: (_INCOME_TASK, _NEVER_MARRIED_TASK), 2: (_COLLEGE_TASK, _NEVER_MARRIED_TASK)}


@dataclass(frozen=True)
class _Recipe:
    dropped: tuple[int, ...]  # dropped besides the group's own label columns
    numeric: tuple[int, ...]  # kept as numbers; every other kept column is one-hot
    standardise: bool


_RECIPE_RULES = {
    "paper": _Recipe(dropped=(_EDUCATION, _MARITAL, _INSTANCE_WEIGHT), numeric=_CONTINUOUS, standardise=True),
    "keras": _Recipe(dropped=(), numeric=tuple(sorted(_CONTINUOUS + _KERAS_RAW_CODES)), standardise=False),
}

GROUPS: tuple[int, ...] = tuple(_GROUP_TASKS)      # the task groups, (1, 2)
RECIPES: tuple[str, ...] = tuple(_RECIPE_RULES)    # the feature recipes, ("paper", "keras")
NUMERIC_TRANSFORMS: tuple[str, ...] = ("standardize", "log1p", "quantile")  # of HEAVY_TAILED, paper recipe


@dataclass(frozen=True, eq=False)
class _RawTable:
    """One parsed file: ``values[j]`` the sorted distinct values of column j (whitespace stripped), and
    ``codes`` (N, 42) int32 with ``codes[i, j]`` the index of row i's value in ``values[j]``."""
    values: tuple[tuple[str, ...], ...]
    codes: np.ndarray

    def take(self, rows: np.ndarray) -> "_RawTable":
        """The table of the given rows (indexes), with the same vocabularies."""
        return _RawTable(self.values, self.codes[rows])

    def numbers(self, j: int) -> np.ndarray:
        """Column j as float64, shape (N,)."""
        return np.asarray(self.values[j], dtype=np.float64)[self.codes[:, j]]

    def is_in(self, j: int, wanted: frozenset[str]) -> np.ndarray:
        """(N,) bool: does row i's value of column j lie in ``wanted``?"""
        return np.array([v in wanted for v in self.values[j]], dtype=bool)[self.codes[:, j]]


def _sorted_values(values: list[str]) -> list[str]:
    """Numeric codes in numeric order (as pandas orders its dummies), words in alphabetical order."""
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


def _parse(content: bytes) -> _RawTable:
    """Parse the uncompressed content of a verified file into a :class:`_RawTable`."""
    fields = content.replace(b"\n", b", ").split(b", ")
    fields.pop()  # the last newline leaves one empty field behind
    distinct = list(dict.fromkeys(fields))  # every distinct field text of the whole file, ~100k of them
    index = {text: i for i, text in enumerate(distinct)}
    ids = np.fromiter(map(index.__getitem__, fields), dtype=np.int32, count=len(fields))
    ids = ids.reshape(-1, len(CENSUS_COLUMNS))
    values, codes = [], np.empty_like(ids)
    local = np.empty(len(distinct), dtype=np.int32)  # global id -> index in this column's sorted values
    for j in range(ids.shape[1]):
        present = np.zeros(len(distinct), dtype=bool)
        present[ids[:, j]] = True
        used = np.flatnonzero(present)
        texts = [distinct[i].decode("ascii").strip() for i in used]
        column_values = _sorted_values(texts)
        position = {text: k for k, text in enumerate(column_values)}
        local[used] = [position[text] for text in texts]
        codes[:, j] = local[ids[:, j]]
        values.append(tuple(column_values))
    return _RawTable(tuple(values), codes)


def _decompress(data: bytes, spec: _FileSpec, source: str) -> bytes:
    """The uncompressed content of the gzip bytes ``data``, verified against ``spec``."""
    try:
        content = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{source} is not a readable gzip stream ({err}); expected UCI's {spec.name} "
                         f"({spec.n_rows:,} rows)") from err
    n_rows = content.count(b"\n")
    if n_rows != spec.n_rows:
        raise ValueError(f"{source} has {n_rows:,} rows; expected {spec.n_rows:,} (UCI's {spec.name}). "
                         "The file is truncated or not the right one.")
    digest = hashlib.sha256(content).hexdigest()
    if digest != spec.sha256:
        raise ValueError(f"{source}: the sha256 of its uncompressed content is {digest}; expected "
                         f"{spec.sha256} (UCI's {spec.name}). The file is corrupt or not the right one.")
    return content


_TABLES: dict[tuple[str, int, int], _RawTable] = {}


def _read(data_dir: PathLike, spec: _FileSpec) -> _RawTable:
    """The verified, parsed file ``spec`` of ``data_dir``; cached by resolved path, size and mtime."""
    path = Path(data_dir) / spec.name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found. Expected UCI's Census-income (KDD) file {spec.name} ({spec.n_rows:,} rows) in "
            f"{Path(data_dir)}; fetch it with mmoe_np.data.download_census_income({str(data_dir)!r}) "
            f"or from {CENSUS_BASE_URL}{spec.name}")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _TABLES:
        _TABLES[key] = _parse(_decompress(path.read_bytes(), spec, str(path)))
    return _TABLES[key]


@dataclass(frozen=True, eq=False)
class NumericTransform:
    """What happens to c numeric columns, every statistic fitted on training rows (:meth:`fit`), applied to any
    rows (:meth:`apply`):

    1. the columns marked ``heavy`` are transformed by ``method``: ``"standardize"`` leaves them, ``"log1p"``
       takes ``log(1 + x)`` (x >= 0), ``"quantile"`` replaces x <= 0 by 0 and x > 0 by ``1 + #{edges <= x}``
       (1 .. n_bins), where ``edges`` are the distinct quantiles at ``1/n_bins, ..., (n_bins - 1)/n_bins`` of the
       column's *positive* training values: 0, the value most rows have (98% of capital losses), keeps a bin of
       its own instead of swallowing every quantile, and a value of 99,999 cannot stretch the code;
    2. with ``standardise``, every column (transformed or not) is standardised with the training mean and std
       (ddof = 0; a constant column keeps scale 1).
    """
    method: str
    heavy: np.ndarray                  # (c,) bool
    edges: tuple[np.ndarray, ...]      # per column the quantile edges ("quantile" and heavy), else empty
    mean: np.ndarray                   # (c,)
    scale: np.ndarray                  # (c,)

    @classmethod
    def fit(cls, train: np.ndarray, *, heavy: Any = None, method: str = "standardize", standardise: bool = True,
            n_bins: int = 32) -> "NumericTransform":
        """Fit on the training columns ``train`` (N, c); ``heavy`` (c,) bool marks the columns ``method`` changes
        (default: every column)."""
        train = np.asarray(train, dtype=np.float64)
        if train.ndim != 2 or train.shape[0] < 1 or not np.all(np.isfinite(train)):
            raise ValueError(f"train must be a finite (N, c) array with N >= 1; got shape {train.shape}")
        method = check_numeric(method)
        n_bins = V.int_at_least("n_bins", n_bins, 2)
        heavy = np.ones(train.shape[1], bool) if heavy is None else np.asarray(heavy, dtype=bool)
        if heavy.shape != (train.shape[1],):
            raise ValueError(f"heavy must be ({train.shape[1]},) booleans, one per column; got shape {heavy.shape}")
        if method == "log1p" and np.any(train[:, heavy] < 0):
            raise ValueError("method 'log1p' needs non-negative values in the heavy columns")
        levels = np.arange(1, n_bins) / n_bins

        def positive_quantiles(x: np.ndarray) -> np.ndarray:
            return np.unique(np.quantile(x[x > 0], levels)) if np.any(x > 0) else np.empty(0)

        edges = tuple(positive_quantiles(train[:, j]) if method == "quantile" and heavy[j] else np.empty(0)
                      for j in range(train.shape[1]))
        plain = cls(method, heavy, edges, np.zeros(train.shape[1]), np.ones(train.shape[1]))
        if not standardise:
            return plain
        z = plain.apply(train)
        std = z.std(axis=0)
        return cls(method, heavy, edges, z.mean(axis=0), np.where(std > 0, std, 1.0))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The transformed columns (N, c), float64."""
        z = np.array(x, dtype=np.float64)  # a copy
        for j in np.flatnonzero(self.heavy):
            if self.method == "log1p":
                z[:, j] = np.log1p(np.maximum(z[:, j], 0.0))  # an unseen negative value counts as 0
            elif self.method == "quantile":
                positive = z[:, j] > 0
                z[:, j] = np.where(positive, 1 + np.searchsorted(self.edges[j], z[:, j], side="right"), 0)
        return (z - self.mean) / self.scale


@dataclass(frozen=True, eq=False)
class _Encoder:
    """Feature encoding fitted on the training file: numeric columns (:class:`NumericTransform`), then one-hot
    blocks of the categorical columns, both in file order."""
    numeric: tuple[int, ...]
    numbers: NumericTransform
    categorical: tuple[int, ...]
    vocabulary: tuple[tuple[str, ...], ...]  # training values of each categorical column

    @classmethod
    def fit(cls, train: _RawTable, numeric: tuple[int, ...], categorical: tuple[int, ...],
            standardise: bool, method: str = "standardize") -> "_Encoder":
        """The numeric transform and vocabularies from ``train`` alone; ``method`` for the :data:`HEAVY_TAILED`
        columns, then with ``standardise`` every numeric column standardised."""
        x = np.stack([train.numbers(j) for j in numeric], axis=1)
        heavy = [CENSUS_COLUMNS[j] in HEAVY_TAILED for j in numeric]
        return cls(numeric, NumericTransform.fit(x, heavy=heavy, method=method, standardise=standardise),
                   categorical, tuple(train.values[j] for j in categorical))

    @property
    def feature_names(self) -> list[str]:
        """``age``, ..., then ``column=value`` for every one-hot column."""
        return ([CENSUS_COLUMNS[j] for j in self.numeric]
                + [f"{CENSUS_COLUMNS[j]}={value}" for j, vocab in zip(self.categorical, self.vocabulary)
                   for value in vocab])

    def transform(self, table: _RawTable, dtype: np.dtype) -> np.ndarray:
        """X (N, n_features); a value outside the training vocabulary leaves its column's block all zero."""
        numbers = np.stack([table.numbers(j) for j in self.numeric], axis=1)
        # index (N, n_categorical): each row's value as an index into the training vocabulary, -1 if unseen
        index = np.stack([_lookup(table.values[j], vocab)[table.codes[:, j]]
                          for j, vocab in zip(self.categorical, self.vocabulary)], axis=1)
        widths = [len(vocab) for vocab in self.vocabulary]
        block_start = len(self.numeric) + np.cumsum([0] + widths[:-1])
        X = np.zeros((len(numbers), len(self.numeric) + sum(widths)), dtype=dtype)
        X[:, :len(self.numeric)] = self.numbers.apply(numbers)
        # One write per row and block: a 1 at the value's column, or for an unseen value a 0 at the block's start.
        np.put_along_axis(X, block_start + np.maximum(index, 0), index >= 0, axis=1)
        return X


def _lookup(values: tuple[str, ...], vocabulary: tuple[str, ...]) -> np.ndarray:
    """For each of ``values``, its index in ``vocabulary`` or -1."""
    position = {value: k for k, value in enumerate(vocabulary)}
    return np.array([position.get(v, -1) for v in values], dtype=np.int32)


def _labels(table: _RawTable, tasks: tuple[_Task, ...], dtype: np.dtype) -> np.ndarray:
    """Y (N, n_tasks) of exact 0/1."""
    return np.stack([table.is_in(t.column, t.positive) for t in tasks], axis=1).astype(dtype)


def check_group(group: Any) -> int:
    """``group`` as 1 or 2 (a ValueError otherwise; bools and floats are refused)."""
    if isinstance(group, (bool, np.bool_)) or not isinstance(group, numbers.Integral) or group not in _GROUP_TASKS:
        raise ValueError(f"group must be 1 (income, marital status) or 2 (education, marital status); "
                         f"got {group!r}")
    return int(group)


def check_numeric(numeric: Any) -> str:
    """``numeric``, one of :data:`NUMERIC_TRANSFORMS` (a ValueError otherwise)."""
    if not isinstance(numeric, str) or numeric not in NUMERIC_TRANSFORMS:
        raise ValueError(f"numeric must be one of {NUMERIC_TRANSFORMS}; got {numeric!r}")
    return numeric


def check_recipe(recipe: Any) -> str:
    """``recipe``, one of :data:`RECIPES` (a ValueError otherwise)."""
    if not isinstance(recipe, str) or recipe not in _RECIPE_RULES:
        raise ValueError(f"recipe must be one of {RECIPES}; got {recipe!r}")
    return recipe


@dataclass(frozen=True, eq=False)
class CensusIncome:
    """Census-income for one task group and feature recipe.

    X_* are (N, n_features) and Y_* (N, 2) of ``dtype``, Y exactly 0/1 with columns ``task_names``. N is
    199,523 for train and 49,881 for val and test; ``val_rows`` and ``test_rows`` (49,881,) are their row
    indexes in ``census-income.test.gz``. ``vocabulary`` maps each one-hot column to its training values;
    ``numeric`` is the transform of the heavy-tailed columns (None: the keras recipe's raw numbers).
    """
    X_train: np.ndarray
    Y_train: np.ndarray
    X_val: np.ndarray
    Y_val: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    feature_names: list[str]
    task_names: tuple[str, str]
    group: int
    recipe: str
    vocabulary: dict[str, tuple[str, ...]]
    val_rows: np.ndarray
    test_rows: np.ndarray
    numeric: str | None = "standardize"

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]


def load_census_income(data_dir: PathLike, group: int = 1, seed: int = 0, recipe: str = "paper",
                       dtype: Any = np.float32, numeric: str | None = None) -> CensusIncome:
    """Load, verify and encode Census-income; ``seed`` shuffles the test file before its 1:1 val/test split.

    ``numeric`` (paper recipe only; None means ``"standardize"``): the transform of the :data:`HEAVY_TAILED`
    columns, one of :data:`NUMERIC_TRANSFORMS` (see :class:`NumericTransform`), fitted on the training file.

    >>> data = load_census_income("../shared/data/census-income", group=1)  # doctest: +SKIP
    >>> data.X_train.shape, data.X_val.shape, data.Y_test.shape  # doctest: +SKIP
    ((199523, 486), (49881, 486), (49881, 2))
    """
    group, recipe, dt, rng = check_group(group), check_recipe(recipe), V.dtype(dtype), V.rng(seed)
    rules, tasks = _RECIPE_RULES[recipe], _GROUP_TASKS[group]
    if numeric is not None and not rules.standardise:
        raise ValueError(f"numeric applies to the paper recipe only (the {recipe} recipe keeps raw numbers); "
                         f"got numeric={numeric!r}")
    numeric = check_numeric("standardize" if numeric is None else numeric) if rules.standardise else None
    train, other = _read(data_dir, _TRAIN_FILE), _read(data_dir, _TEST_FILE)
    dropped = set(rules.dropped) | {t.column for t in tasks}
    categorical = tuple(j for j in range(len(CENSUS_COLUMNS)) if j not in dropped and j not in rules.numeric)
    encoder = _Encoder.fit(train, rules.numeric, categorical, rules.standardise, method=numeric or "standardize")
    order = rng.permutation(other.codes.shape[0])
    val_rows, test_rows = np.split(order, [len(order) // 2])
    val, test = other.take(val_rows), other.take(test_rows)
    return CensusIncome(
        X_train=encoder.transform(train, dt), Y_train=_labels(train, tasks, dt),
        X_val=encoder.transform(val, dt), Y_val=_labels(val, tasks, dt),
        X_test=encoder.transform(test, dt), Y_test=_labels(test, tasks, dt),
        feature_names=encoder.feature_names, task_names=tuple(t.name for t in tasks), group=group,
        recipe=recipe, vocabulary={CENSUS_COLUMNS[j]: v for j, v in zip(categorical, encoder.vocabulary)},
        val_rows=val_rows, test_rows=test_rows, numeric=numeric)


def census_label_correlations(data_dir: PathLike, n_rows: int = 10_000, seed: int = 0) -> dict[int, float]:
    """|Pearson correlation| of each group's two labels on ``n_rows`` random training rows: {1: r1, 2: r2}.

    The paper reports 0.1768 (group 1) and 0.2373 (group 2).
    """
    n_rows, rng = V.positive_int("n_rows", n_rows), V.rng(seed)
    train = _read(data_dir, _TRAIN_FILE)
    if not 2 <= n_rows <= train.codes.shape[0]:
        raise ValueError(f"n_rows must lie in [2, {train.codes.shape[0]:,}]; got {n_rows}")
    sample = train.take(rng.choice(train.codes.shape[0], size=n_rows, replace=False))
    return {group: float(abs(np.corrcoef(_labels(sample, tasks, np.float64).T)[0, 1]))
            for group, tasks in _GROUP_TASKS.items()}


def download_census_income(dest: PathLike, base_url: str = CENSUS_BASE_URL, timeout: float = 60.0) -> Path:
    """Download both files from ``base_url`` into ``dest`` and return ``dest`` as a Path.

    Each download is verified (row count, sha256 of the uncompressed content) before it is written atomically
    (temporary file, then rename); a bad one raises ValueError and writes nothing. Files already present
    and valid are skipped; a present but invalid one is downloaded again.
    """
    timeout = V.positive_float("timeout", timeout)
    if not isinstance(base_url, str) or not base_url:
        raise ValueError(f"base_url must be a URL such as {CENSUS_BASE_URL!r}; got {base_url!r}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for spec in (_TRAIN_FILE, _TEST_FILE):
        path = dest / spec.name
        if path.is_file():
            try:
                _decompress(path.read_bytes(), spec, str(path))
            except ValueError:
                pass  # present but damaged: downloaded again below
            else:
                continue
        url = base_url.rstrip("/") + "/" + spec.name
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                data = response.read()
        except urllib.error.URLError as err:
            raise OSError(f"could not download {url}: {err}") from err
        _decompress(data, spec, url)
        write_bytes(path, data)  # atomically: a temporary file beside it, then a rename
    return dest
