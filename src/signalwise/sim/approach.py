"""Name an approach by the compass direction its traffic comes from."""

from __future__ import annotations


def compass_approach(shape) -> str:
    """Where traffic on a lane comes from: a lane heading south is the north approach."""
    (x0, y0), (x1, y1) = shape[-2], shape[-1]
    dx, dy = x1 - x0, y1 - y0
    if abs(dy) >= abs(dx):
        return "north" if dy < 0 else "south"
    return "west" if dx > 0 else "east"
