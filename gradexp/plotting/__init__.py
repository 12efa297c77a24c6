"""Figures of a run, drawn from its files (never from training state), for `run`, `plot`, `compare` and `sweep`.

A run folder gets grad_norms.pdf (the article's view of the first steps, and the whole run on a log
axis, with the clip threshold and the divergence step) and loss.pdf. What every figure shares lives
here, one job a module:

    output      save_figure: the format from the suffix, the same bytes for the same figure
    scales      ±inf as gaps, the log-axis floor rule, set_log_scale, metric scales (heatmap, line)
    norms       parameter selection and short names, colours, draw_norm_curve (the one norm curve of
                every figure), the divergence step and its marker
    thresholds  what each clip mode's threshold bounds (one table), and its line on a norm panel
    layout      fixed-size panels laid out by hand, reused once saved; legend rows and handles
    heatmaps    a quantity over steps and rows (positions, layers) as a log-colour image
    grad_norms  grad_norms.pdf
    loss        loss.pdf
    time_grads  time_grads.pdf: gradients through time, and σ_max of the recurrent matrix
    grad_flow   grad_flow.pdf: gradients through a feed-forward stack's depth
    runs        a run folder's figures (plot_run) and `gradexp plot` (replot); gradexp.drawing draws them
                in worker processes

compare/figure.py and sweep/figure.py draw their packages' tables with these parts. The run folder's
format (file names, columns, reading metrics.csv) is gradexp.recording's; plotting reads run folders and
imports nothing above it (no runner, compare, sweep or clipping).
"""

import matplotlib

# Figures are made without pyplot (matplotlib.figure.Figure: importing pyplot took a quarter of a second and
# it keeps every figure open); a pyplot user in the same process (a test, a notebook) gets the file backend.
matplotlib.use("Agg")
