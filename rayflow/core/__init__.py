"""The routing core: pure functions over plain data that decide where every event goes.

Ticks (what happened) go into :func:`rayflow.core.reducer.reduce` with the dispatcher's state; commands
(what to do) come out. Nothing here imports Ray or does I/O, so every routing rule is tested with plain
function calls and a fixed clock.
"""
