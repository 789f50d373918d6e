"""The live runtime: `signalwise live`, the paced loop that runs a corridor in real time.

`runtime.LiveRuntime` drives the same `LoopStepper` as offline runs over a
supervised field (SUMO in a worker process, or no simulator at all), with
pacing, immutable snapshots for readers, a profiler, alerts, recovery from
simulator crashes and changes at run time that never bypass the shield.
"""
