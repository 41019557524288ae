"""`python -m searchgym.cli …` (e.g. under `accelerate launch -m searchgym.cli train …`)."""

from searchgym.cli import main

main()
