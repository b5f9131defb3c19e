"""``python -m tilerun`` is the ``tilerun`` command."""

from tilerun.cli import main

main()
