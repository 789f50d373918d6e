"""Names every stage agrees on."""

#: the controller whose run of the same scenario and seed is "the baseline": the network's own program
BASELINE_CONTROLLER = "fixed"
