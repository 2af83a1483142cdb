import sys

from tomocnn.cli import main

sys.exit(main())
