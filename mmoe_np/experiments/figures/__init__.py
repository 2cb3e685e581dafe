"""Every figure of the package, as PNG; the only package that imports matplotlib (inside each function, so
that ``import mmoe_np`` and the studies never need it). The studies' figures are in :mod:`.studies`, the
diagrams in :mod:`.diagrams`, the PNG writer in :mod:`.png`; every name is imported here.

The studies' figures:

* :func:`plot_label_correlation`: Fig. 2, label Pearson correlation vs weight cosine (a ``CorrelationStudy``);
* :func:`plot_curves`: Figs. 3 and 4, mean test loss vs training step (a ``SyntheticStudy``);
* :func:`plot_histograms`: Fig. 5, the final test losses of the runs (a ``SyntheticStudy``);
* :func:`plot_gate_distributions`: the census study's gates, per task and expert (an OMoE or MMoE model).

The diagrams of ``docs/`` (``mmoe-np docs-figures``, :func:`docs_figures`):

* :func:`draw_mmoe_graph`: the MMoE computation graph, 2 experts and 2 tasks, forward values up, gradients down;
* :func:`draw_architectures`: Shared-Bottom, OMoE and MMoE side by side, same conventions;
* :func:`draw_softmax_vjp`: the softmax gate's vector-Jacobian product (VJP) for three experts, with numbers.

Each draws on a ``matplotlib.figure.Figure`` (no pyplot, no global backend state) and writes it atomically.
"""
from .png import save_png
from .studies import (plot_label_correlation, plot_curves, plot_histograms, plot_gate_distributions, plot_gate_report,
                      plot_gates_study)
from .diagrams import (DOCS_FIGURES, SOFTMAX_LOGITS, SOFTMAX_UPSTREAM, draw_mmoe_graph, draw_architectures,
                       draw_softmax_vjp, docs_figures)

__all__ = ["save_png", "plot_label_correlation", "plot_curves", "plot_histograms", "plot_gate_distributions",
           "plot_gate_report", "plot_gates_study",
           "DOCS_FIGURES", "SOFTMAX_LOGITS", "SOFTMAX_UPSTREAM", "draw_mmoe_graph", "draw_architectures",
           "draw_softmax_vjp", "docs_figures"]
