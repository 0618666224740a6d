import sys

from hubbench.benchmark.cli import main

sys.exit(main())
