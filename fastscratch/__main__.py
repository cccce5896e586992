"""``python -m fastscratch train ...``: the same as the ``fastscratch`` command."""
import sys

from fastscratch.cli import main

if __name__ == "__main__":
    sys.exit(main())
