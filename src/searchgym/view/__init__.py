"""`searchgym view`: a local web page over an eval, a training run or a demo — episodes turn by turn beside the
task's gold evidence chain, TRAC token weights, run comparisons and the world's entity pages (docs/view.md)."""
