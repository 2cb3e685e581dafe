"""Train an MMoE on a regression task and a binary task, then look at its gates.

Run it with ``python examples/quickstart.py`` (a few seconds).
"""
import numpy as np

import mmoe_np as mn

rng = np.random.default_rng(0)
X = rng.standard_normal((3000, 20))
# Task 1 depends on feature 0, task 2 on feature 1: two unrelated tasks that share the same inputs.
Y = np.column_stack([np.sin(2 * X[:, 0]) + X[:, 0], X[:, 1] > 0]).astype(float)
train, val = slice(0, 2500), slice(2500, None)

model = mn.MMoE(n_features=20, tasks=("regression", "binary"), n_experts=4, expert_units=(16,),
                tower_units=(8,), seed=0)
print(model)
print("parameters:", {name: p.shape for name, p in model.params.items()})

history = mn.fit(model, X[train], Y[train], optimizer=mn.Adam(model.params, lr=3e-3), epochs=15, batch_size=64,
                 validation=(X[val], Y[val]), seed=0)
for epoch in (0, 4, 9, 14):
    mse, bce = history["val_task_loss"][epoch]
    print(f"epoch {epoch + 1:2d}: validation MSE {mse:.4f}, validation BCE {bce:.4f}")

probability = model.predict(X[val])[:, 1]  # predict: the regression value and the binary task's probability
accuracy = np.mean((probability > 0.5) == Y[val, 1])
print(f"binary task accuracy: {accuracy:.3f}")
scores = model.evaluate(X[val], Y[val])    # per task: loss, and MSE (regression) or AUC (binary)
print(f"regression task MSE: {scores[0]['mse']:.4f}; binary task AUC: {scores[1]['auc']:.4f}")

# Each task's gate is a distribution over the experts; two unrelated tasks tend to lean on different experts.
mean_gates = model.gate_weights(X[val]).mean(axis=0)  # (n_tasks, n_experts)
for k, row in enumerate(mean_gates):
    print(f"task {k + 1} mean gate weights:", np.round(row, 3))
