import sys

from atomseg.cli import main

sys.exit(main())
