"""How every `signalwise` command exits, one convention for all.

    0    done
    1    the command ran and found or met a failure: the audit found violations, a run of a
         comparison failed, the database could not be reached
    2    the input was wrong or refused: one line starting `error:` says what and where, and
         nothing half-written is left
    130  interrupted (Ctrl-C; SIGTERM too for `run`); a run directory says `incomplete`
"""

DONE = 0
FAILED = 1
BAD_INPUT = 2
INTERRUPTED = 130
