"""Run `llm-router serve ARGS` under cProfile; on SIGTERM dump stats to $CPROF_OUT."""

import cProfile
import os
import signal
import sys

prof = cProfile.Profile()


def stop(*a):
    prof.disable()
    prof.dump_stats(os.environ["CPROF_OUT"])
    os._exit(0)


signal.signal(signal.SIGTERM, stop)
from router_core.cli import main  # noqa: E402  (after the handler: a SIGTERM during imports still dumps)

prof.enable()
try:
    main(sys.argv[1:])
finally:
    stop()
