"""The paper's experiments: ``correlation`` (Fig. 2), ``synthetic`` (Figs. 3-5, trained by ``lockstep``, over the
processes of ``workers``) and ``census`` (Sec. 6.3); ``common`` holds what they share and ``figures`` every plot.
The command line is :mod:`mmoe_np.cli`."""
