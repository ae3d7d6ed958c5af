"""`python -m billing_sync …` is `billing-sync …` (how `billing-sync run` starts its children)."""

from .cli import main

main()
