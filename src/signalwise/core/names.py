"""Names every stage agrees on."""

#: the controller whose run of the same scenario and seed is "the baseline": the network's own program
BASELINE_CONTROLLER = "fixed"

#: the longest signal (intersection) id every stage takes: SUMO names a joined signal after its junctions
#: (RESCO's ingolstadt7 has one of 166 characters; an OSM import's clusters run longer)
MAX_INTERSECTION_ID_CHARS = 1000

#: the largest seed SUMO takes (its --seed is a signed 32-bit integer); runs take seeds 0..MAX_SEED
MAX_SEED = 2**31 - 1
