import sys

from hubbench.leaderboard.generate import main

sys.exit(main())
