"""The run folder: what a run writes, and how every command reads it back. The one owner of its format.

    layout      the files' names, and metrics.csv / eval.csv columns with named slices
    files       writing them: new run folders, buffered CSV logs, atomic JSON/YAML/byte files
    checkpoints best.pt and last.pt (torch.save, atomically)
    steps       StepRecorder: each step's values kept on the device, flushed as metrics.csv rows
    summary     RunSummary: summary.json as a typed record
    folder      RunFolder: one run folder read back (summary, config, metrics), for compare, sweep,
                resume, plot and the CLI

A run folder holds config.yaml (the resolved config), metrics.csv (a row per step), eval.csv (a row
per dev/test evaluation), summary.json (written last: a folder without it is unfinished), the
plots, best.pt and, while the run can still be resumed, last.pt.
"""
