"""Which false speeding reports of a graded `vision bench` run are second tickets of a vehicle already called, and
how far (time, road metres) the second track started from where the ticketed one was last seen.

    .venv/bin/python bench/vision_repeat_reports.py RENDER_DIR PIPELINE_DIR VIEW

RENDER_DIR is a `signalwise vision render` (or a bench's `render/`), PIPELINE_DIR a `vision run` output on its VIEW
(`topdown` or `oblique`, a bench's `pipeline/VIEW`). Reports are matched to vehicles and events as
`signalwise vision grade` does (`grading.violations`); `gap_s` < 0 means the second track began before the ticketed
one was last seen (an identity passed between vehicles), which no re-acquisition rule reads as one vehicle.
"""

from __future__ import annotations

import argparse
import math


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("render", help="a `signalwise vision render` directory (or a bench's render/)")
    ap.add_argument("pipeline_dir", help="a `vision run` output on VIEW (a bench's pipeline/VIEW)")
    ap.add_argument("view", choices=("topdown", "oblique"))
    args = ap.parse_args()
    from signalwise.vision.grading import read_pipeline, read_truth
    from signalwise.vision.grading.anchor import truth_at_anchor
    from signalwise.vision.grading.violations import (
        SPEEDING_TOLERANCE_S,
        _candidates,
        clip_events,
        vehicle_of_report,
    )

    render, pipeline_dir, view = args.render, args.pipeline_dir, args.view
    truth, out = read_truth(render, view), read_pipeline(pipeline_dir)
    objects = truth_at_anchor(truth, view, "center")
    in_clip, _brief = clip_events(truth.violations, truth.fps, truth.frames / truth.fps)
    events = truth.violations[in_clip & (truth.violations["kind"] == "speeding")].reset_index(drop=True)
    reports = out.violations[out.violations["kind"] == "speeding"].sort_values("time_s")
    tracks = out.tracks
    used: set[int] = set()
    called: dict[str, list[str]] = {}
    false = repeats = 0
    for _i, r in reports.iterrows():
        vehicle = vehicle_of_report(r, tracks, objects, truth.fps)
        free = [c for c in _candidates(events, r, vehicle, SPEEDING_TOLERANCE_S) if c not in used]
        if free:
            used.add(free[0])
            called.setdefault(vehicle, []).append(str(r["track_id"]))
            continue
        false += 1
        earlier = called.get(vehicle)
        if not earlier:
            print(f"track {r['track_id']} at {float(r['time_s']):.1f} s: vehicle {vehicle}, not called before")
            continue
        repeats += 1
        end = tracks[tracks["track_id"] == earlier[-1]].iloc[-1]
        start = tracks[tracks["track_id"] == r["track_id"]].iloc[0]
        gap = float(start.time_s) - float(end.time_s)
        d = math.hypot(float(start.x_m) - float(end.x_m), float(start.y_m) - float(end.y_m))
        print(f"track {r['track_id']} at {float(r['time_s']):.1f} s: vehicle {vehicle}, ticketed before as track "
              f"{earlier[-1]}; gap_s {gap:.1f}, {d:.1f} m from its last position")
    print(f"{view}: {false} false speeding report(s), {repeats} of them second tickets of a vehicle already called")


if __name__ == "__main__":
    main()
