"""`searchgym demo`: the whole pipeline on a CPU, at the top of the data flow (it calls every stage below)."""
