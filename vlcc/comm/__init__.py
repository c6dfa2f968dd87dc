"""Collectives at the bottom of vlcc: the error-agreeing protocol every collective
call goes through (``protocol``), the one-rank stand-in for runs without MPI
(``serial``), and the grouping of ranks by node (``nodes``). Every layer that
talks to other ranks (commit/, restore/, tools/, capi/) imports these."""
