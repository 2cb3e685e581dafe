"""``python -m mmoe_np``: the same as the ``mmoe-np`` command."""
from .cli import main

raise SystemExit(main())
