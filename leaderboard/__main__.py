import sys

from leaderboard.generate import main

sys.exit(main())
