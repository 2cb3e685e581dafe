"""A whole MMoE forward and backward pass small enough for pencil and paper, every number printed.

2 features, 2 experts of 2 ReLU units, 2 tasks (a regression and a binary one), towers without hidden layers, one
sample, and weights with one decimal. Each value is computed here with the formula written beside it, in plain NumPy
on vectors, in the order backpropagation computes it; then the package's model (the same weights) must give the
same outputs and gradients, and ``mn.check_gradients`` must agree with both.

Run ``python examples/worked_example.py`` to print the tables that ``docs/worked-example.md`` shows, and
``python examples/worked_example.py --update docs/worked-example.md`` to rewrite them there (stage N's table sits
between the lines ``<!-- worked-example N -->`` and ``<!-- /worked-example -->``; ``tests/test_worked_example.py``
fails if the document and this script disagree).

Symbols (e, k = 1, 2; the parameter keys count from 0):

    expert e:  z_e = x W_e + b_e,   f_e = relu(z_e)             W_e = experts.0.W[e-1] (2, 2), b_e = experts.0.b[e-1]
    gate k:    s_k = x V_k + c_k,   g_k = softmax(s_k)          V_k = gates.W[k-1] (2, 2),     c_k = gates.b[k-1]
    mixture:   m_k = g_k1 f_1 + g_k2 f_2
    tower k:   y_k = m_k . u_k + a_k                            u_k = towers.0.W[k-1] (2, 1),  a_k = towers.0.b[k-1]
    losses:    L_1 = (y_1 - t_1)^2,   L_2 = -[t_2 log p + (1 - t_2) log(1 - p)],  p = sigmoid(y_2),   L = L_1 + L_2
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

import mmoe_np as mn
from mmoe_np import _io, ops

TASKS = ("regression", "binary")
X = np.array([[1.0, 2.0]])           # one sample, 2 features
Y = np.array([[1.0, 0.0]])           # task 1's target value, task 2's label
WEIGHTS = {                          # every parameter, by key; short decimals
    "experts.0.W": [[[0.5, -0.5], [0.1, 0.2]],      # W_1: expert 1 (rows: features, columns: units)
                    [[0.2, 0.1], [0.3, 0.4]]],      # W_2: expert 2
    "experts.0.b": [[0.0, 0.0], [0.1, -0.2]],       # b_1, b_2
    "gates.W": [[[0.3, -0.1], [0.1, 0.2]],          # V_1: task 1's gate (columns: experts)
                [[-0.2, 0.4], [0.1, 0.3]]],         # V_2: task 2's gate
    "gates.b": [[0.0, 0.0], [0.0, 0.0]],            # c_1, c_2
    "towers.0.W": [[[1.0], [-0.5]], [[0.5], [1.0]]],  # u_1, u_2
    "towers.0.b": [[0.1], [-0.5]],                  # a_1, a_2
}
CHECK_STEP = 1e-3                    # big enough to see on paper; the truncation error is O(h^2)
BEGIN_PREFIX, END = "<!-- worked-example ", "<!-- /worked-example -->"


def build_model() -> mn.MMoE:
    """The MMoE of the example: build it with the right sizes, then assign the fixed weights."""
    model = mn.MMoE(2, TASKS, n_experts=2, expert_units=(2,), tower_units=(), seed=0)
    for key, value in WEIGHTS.items():
        model.params[key][...] = value  # in place: the shapes must match
    return model


class Row(NamedTuple):
    symbol: str
    formula: str
    value: np.ndarray
    decimals: int = 4  # shown with this many decimals


def by_hand(model: mn.MMoE, X: np.ndarray, Y: np.ndarray) -> tuple[dict[str, list[Row]], dict[str, np.ndarray]]:
    """Every forward value and gradient of one sample, by the formulas of docs/backprop.md, in the order
    backpropagation computes them. Returns ``(stages, grads)``: the rows of each stage, and the gradients keyed like
    ``model.params`` (plus "X")."""
    p = model.params
    x, (t1, t2) = X[0], Y[0]
    W, b = p["experts.0.W"], p["experts.0.b"]
    V, c = p["gates.W"], p["gates.b"]
    u, a = p["towers.0.W"][:, :, 0], p["towers.0.b"][:, 0]
    E = K = 2
    stages: dict[str, list[Row]] = {}

    def row(stage: str, symbol: str, formula: str, value: np.ndarray, decimals: int = 4) -> np.ndarray:
        stages.setdefault(stage, []).append(Row(symbol, formula, np.asarray(value, dtype=float), decimals))
        return value

    # ---------------------------------------------------------------- forward
    fw = "1. forward: the experts"
    z = [row(fw, f"z_{e + 1}", f"x W_{e + 1} + b_{e + 1}", x @ W[e] + b[e]) for e in range(E)]
    f = [row(fw, f"f_{e + 1}", f"relu(z_{e + 1})", np.maximum(z[e], 0)) for e in range(E)]
    fw = "2. forward: the gates"
    s = [row(fw, f"s_{k + 1}", f"x V_{k + 1} + c_{k + 1}", x @ V[k] + c[k]) for k in range(K)]
    g = [row(fw, f"g_{k + 1}", f"softmax(s_{k + 1}) = exp(s_{k + 1}) / sum(exp(s_{k + 1}))",
             np.exp(s[k]) / np.exp(s[k]).sum()) for k in range(K)]
    fw = "3. forward: the mixtures, the towers and the losses"
    m = [row(fw, f"m_{k + 1}", f"g_{k + 1}[1] f_1 + g_{k + 1}[2] f_2", g[k][0] * f[0] + g[k][1] * f[1])
         for k in range(K)]
    y = [row(fw, f"y_{k + 1}", f"m_{k + 1} . u_{k + 1} + a_{k + 1}", m[k] @ u[k] + a[k]) for k in range(K)]
    prob = row(fw, "p", "sigmoid(y_2), the probability of label 1", 1 / (1 + np.exp(-y[1])))
    L1 = row(fw, "L_1", "(y_1 - t_1)^2", (y[0] - t1) ** 2)
    L2 = row(fw, "L_2", "-[t_2 log p + (1 - t_2) log(1 - p)]", -(t2 * np.log(prob) + (1 - t2) * np.log(1 - prob)))
    row(fw, "L", "L_1 + L_2", L1 + L2)

    # ---------------------------------------------------------------- backward, from the loss down
    bw = "4. backward: the losses and the towers"
    dy = [row(bw, "dy_1", "dL/dy_1 = 2 (y_1 - t_1)", 2 * (y[0] - t1)),
          row(bw, "dy_2", "dL/dy_2 = p - t_2", prob - t2)]
    du = [row(bw, f"du_{k + 1}", f"dy_{k + 1} m_{k + 1}", dy[k] * m[k]) for k in range(K)]
    da = [row(bw, f"da_{k + 1}", f"dy_{k + 1}", dy[k]) for k in range(K)]
    dm = [row(bw, f"dm_{k + 1}", f"dy_{k + 1} u_{k + 1}", dy[k] * u[k]) for k in range(K)]
    bw = "5. backward: the mixtures"
    dg = [row(bw, f"dg_{k + 1}", f"[dm_{k + 1} . f_1, dm_{k + 1} . f_2]", np.array([dm[k] @ f[0], dm[k] @ f[1]]))
          for k in range(K)]
    df = [row(bw, f"df_{e + 1}", f"g_1[{e + 1}] dm_1 + g_2[{e + 1}] dm_2", g[0][e] * dm[0] + g[1][e] * dm[1])
          for e in range(E)]
    bw = "6. backward: the gates (the softmax VJP, then a dense layer)"
    mean = [row(bw, f"<dg_{k + 1}, g_{k + 1}>", f"dg_{k + 1} . g_{k + 1}", dg[k] @ g[k]) for k in range(K)]
    ds = [row(bw, f"ds_{k + 1}", f"g_{k + 1} * (dg_{k + 1} - <dg_{k + 1}, g_{k + 1}>)", g[k] * (dg[k] - mean[k]))
          for k in range(K)]
    dV = [row(bw, f"dV_{k + 1}", f"x^T ds_{k + 1} (outer product)", np.outer(x, ds[k])) for k in range(K)]
    dc = [row(bw, f"dc_{k + 1}", f"ds_{k + 1}", ds[k]) for k in range(K)]
    dx_gates = row(bw, "dx_gates", "ds_1 V_1^T + ds_2 V_2^T", ds[0] @ V[0].T + ds[1] @ V[1].T)
    bw = "7. backward: the experts (ReLU, then a dense layer) and the input"
    dz = [row(bw, f"dz_{e + 1}", f"df_{e + 1} * [z_{e + 1} > 0]", df[e] * (z[e] > 0)) for e in range(E)]
    dW = [row(bw, f"dW_{e + 1}", f"x^T dz_{e + 1} (outer product)", np.outer(x, dz[e])) for e in range(E)]
    db = [row(bw, f"db_{e + 1}", f"dz_{e + 1}", dz[e]) for e in range(E)]
    dx_experts = row(bw, "dx_experts", "dz_1 W_1^T + dz_2 W_2^T", dz[0] @ W[0].T + dz[1] @ W[1].T)
    dx = row(bw, "dx", "dx_experts + dx_gates (x feeds both)", dx_experts + dx_gates)

    ck = "8. check one entry by central differences: c_1[2], the bias of task 1's gate for expert 2"
    h = row(ck, "h", "a small step", CHECK_STEP)
    plus = row(ck, "L(c_1[2] + h)", "the model's loss, the bias moved up", _loss_moved(model, X, Y, +h), 8)
    minus = row(ck, "L(c_1[2] - h)", "the model's loss, the bias moved down", _loss_moved(model, X, Y, -h), 8)
    row(ck, "(L(+h) - L(-h)) / 2h", "central difference: agrees with dc_1[2]", (plus - minus) / (2 * h))

    grads = {"experts.0.W": np.stack(dW), "experts.0.b": np.stack(db), "gates.W": np.stack(dV),
             "gates.b": np.stack(dc), "towers.0.W": np.stack(du)[:, :, None], "towers.0.b": np.stack(da)[:, None],
             "X": dx[None]}
    return stages, grads


def _loss_moved(model: mn.MMoE, X: np.ndarray, Y: np.ndarray, step: float) -> float:
    """The loss with c_1[2] (``gates.b[0, 1]``) moved by ``step``, on a copy of the model."""
    moved = model.copy()
    moved.params["gates.b"][0, 1] += step
    return moved.losses(X, Y)[0]


def number(v: float, decimals: int = 4) -> str:
    """``decimals`` decimals, trailing zeros dropped: 0.7, -0.1, 0.5498; never "-0"."""
    text = f"{v:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def numbers(value: np.ndarray, decimals: int = 4) -> str:
    value = np.asarray(value)
    if value.ndim == 0:
        return number(float(value), decimals)
    return "[" + ", ".join(numbers(v, decimals) for v in value) + "]"


def markdown(stages: dict[str, list[Row]]) -> dict[str, str]:
    """One table per stage (symbol, formula, value), keyed by the stage's number ("1" ... "8")."""
    tables = {}
    for stage, rows in stages.items():
        lines = [f"**{stage}**", "", "| value | formula | numbers |", "| --- | --- | --- |"]
        lines += [f"| `{r.symbol}` | `{r.formula}` | `{numbers(r.value, r.decimals)}` |" for r in rows]
        tables[stage.split(".")[0]] = "\n".join(lines) + "\n"
    return tables


def marker(stage: str) -> str:
    """The line after which a document holds stage ``stage``'s table (up to the line END)."""
    return f"<!-- worked-example {stage} -->"


def tables_in(text: str) -> dict[str, str]:
    """The tables a document holds, keyed by stage, as :func:`markdown` writes them."""
    found = {}
    for block in text.split(BEGIN_PREFIX)[1:]:
        stage, rest = block.split(" -->\n", 1)
        found[stage] = rest.split(END, 1)[0]
    return found


def update(path: str | Path, tables: dict[str, str]) -> bool:
    """Put each stage's table between its markers in the document at ``path``; returns whether it changed.
    Every stage must have its markers already (a ValueError names the missing ones)."""
    text = Path(path).read_text(encoding="utf-8")
    missing = [stage for stage in tables if marker(stage) not in text]
    if missing:
        raise ValueError(f"{path}: no marker for stage(s) {missing}; add lines such as {marker(missing[0])!r} "
                         f"followed by {END!r}")
    new = text
    for stage, table in tables.items():
        head, rest = new.split(marker(stage) + "\n", 1)
        _, tail = rest.split(END, 1)
        new = f"{head}{marker(stage)}\n{table}{END}{tail}"
    if new != text:
        _io.write_text(path, new)
    return new != text


def main(argv: list[str]) -> None:
    model = build_model()
    stages, grads = by_hand(model, X, Y)
    tables = markdown(stages)
    print("\n".join(tables.values()))

    print("the model, with the same weights, computes the same numbers")
    loss, model_grads, model_dX = model.loss_and_grads(X, Y, input_grad=True)
    assert np.isclose(loss, stages["3. forward: the mixtures, the towers and the losses"][-1].value)
    np.testing.assert_allclose(model.forward(X)[0], [r.value for r in stages["3. forward: the mixtures, the towers "
                                                                          "and the losses"][2:4]], rtol=1e-12)
    for name, grad in {**model_grads, "X": model_dX}.items():
        np.testing.assert_allclose(grad, grads[name], rtol=1e-12, atol=1e-15, err_msg=name)
    print(f"  loss {loss:.4f}; all {len(model_grads)} parameter gradients and dX agree")

    print("and so do central differences")
    report = mn.check_gradients(model, X, Y)
    print("\n".join("  " + line for line in str(report).splitlines()))
    assert report.passed()

    if argv[:1] == ["--update"]:
        changed = update(argv[1], tables)
        print(f"{argv[1]}: {'updated' if changed else 'already up to date'}")


if __name__ == "__main__":
    main(sys.argv[1:])
