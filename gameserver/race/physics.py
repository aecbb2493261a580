"""How every car moves, all at once: pure functions on ``(rows, slots)`` arrays.

:class:`~gameserver.race.game.RaceGame` keeps the columns and the rules of a
race; these functions are the per-tick physics it calls, each a handful of
numpy operations over every car of every match (pairwise ones over
``(rows, slots, slots)``, where a row is one match). They take arrays and
return new ones, so they are easy to test alone and never depend on anything
but their arguments.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from .rules import CarModel
from .track import TrackSet

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

#: Segments searched around each car's last nearest one: a car moves less than a
#: segment (3 m) a tick below 180 m/s at 60 Hz; a car found farther than
#: ``LOST_WIDTHS`` track widths from that window is searched for on the whole track.
SEARCH_WINDOW = np.arange(-1, 3)
LOST_WIDTHS = 2.0
#: Two cars stay in contact (for counting collisions) until this far apart.
CONTACT_RELEASE_M = 0.5
#: AI cars dodge cars within this box (ahead, behind, to either side), moving
#: one lane (``LANE_M``) beside them.
AVOID_AHEAD_M = 15.0
AVOID_BEHIND_M = 3.0
LANE_M = 4.0
#: AI cars do not close on a car ahead in that box and this near sideways
#: faster than ``FOLLOW_GAIN_PER_S * (gap - FOLLOW_GAP_M)``.
FOLLOW_SIDE_M = 3.4
FOLLOW_GAP_M = 5.0
FOLLOW_GAIN_PER_S = 1.0


def move(
    x: Floats,
    y: Floats,
    heading: Floats,
    speed: Floats,
    off_track: Bools,
    controls: Floats,
    racing: Bools,
    car: CarModel,
    dt: float,
) -> tuple[Floats, Floats, Floats, Floats, Floats]:
    """One tick of driving: ``(x, y, heading, speed, travel)``, travel in metres.

    ``controls`` is ``(rows, slots, 3)``: throttle, brake, steer. Resistance is
    drag (``v^2``) plus rolling (``v``), the latter much larger off the track.
    Steering turns at ``steer * min(v / min_turn_radius, lateral_accel / v)``:
    tight at low speed, ever wider as speed grows. Cars not ``racing`` stay put.
    """
    throttle, brake, steer = controls[..., 0], controls[..., 1], controls[..., 2]
    rolling = np.where(off_track, car.off_track_per_s, car.rolling_per_s)
    accel = throttle * car.accel_mps2 - brake * car.brake_mps2
    accel -= (car.drag_per_m * speed + rolling) * speed
    new_speed = np.where(racing, np.maximum(speed + accel * dt, 0.0), speed)
    turn = np.minimum(new_speed / car.min_turn_radius_m, car.lateral_mps2 / (new_speed + 1e-9))
    new_heading = np.mod(heading + steer * turn * dt, 2 * math.pi)
    travel = np.where(racing, new_speed * dt, 0.0)
    return (
        x + np.cos(new_heading) * travel,
        y + np.sin(new_heading) * travel,
        new_heading,
        new_speed,
        travel,
    )


def collide(
    x: Floats,
    y: Floats,
    heading: Floats,
    speed: Floats,
    solid: Bools,
    touching: Bools,
    car: CarModel,
) -> tuple[Floats, Floats, Floats, Bools, Ints]:
    """Contacts between ``solid`` cars of the same row: ``(x, y, speed, touching, new)``.

    Overlapping cars (circles of ``car.radius_m``) are pushed apart, half each.
    Equal masses, inelastic along the line between centres: each car of a
    closing pair takes half the closing speed as a push along that line, felt
    along its own heading (a rear-ended car speeds up, the one behind slows,
    cars rubbing side by side barely change speed), and a car that starts a
    contact loses ``car.contact_speed_loss`` of its speed. ``touching`` is the
    ``(rows, slots, slots)`` pair state carried from tick to tick: a contact
    lasts until the pair is :data:`CONTACT_RELEASE_M` apart, so cars rubbing
    along count once. ``new`` counts each car's contacts begun this tick.
    """
    slots = x.shape[1]
    gap = 2 * car.radius_m
    release = gap + CONTACT_RELEASE_M
    dx = x[:, :, None] - x[:, None, :]
    dy = y[:, :, None] - y[:, None, :]
    d2 = dx * dx + dy * dy
    pairs = solid[:, :, None] & solid[:, None, :] & ~np.eye(slots, dtype=bool)
    overlap = pairs & (d2 < gap * gap)
    if not overlap.any():
        still = touching & pairs & (d2 < release * release)
        return x, y, speed, still, np.zeros(x.shape, dtype=np.int64)
    d = np.sqrt(d2)
    apart = d > 1e-6
    # Cars exactly on top of each other separate along x, by slot order.
    order = np.sign(np.arange(slots)[:, None] - np.arange(slots)[None, :])
    nx = np.where(apart, dx / np.where(apart, d, 1.0), order)
    ny = np.where(apart, dy / np.where(apart, d, 1.0), 0.0)
    push = np.where(overlap, (gap - d) / 2, 0.0)
    cos, sin = np.cos(heading), np.sin(heading)
    vx, vy = speed * cos, speed * sin
    approach = (vx[:, :, None] - vx[:, None, :]) * nx + (vy[:, :, None] - vy[:, None, :]) * ny
    closing = np.where(overlap, np.maximum(-approach, 0.0), 0.0)
    along = nx * cos[:, :, None] + ny * sin[:, :, None]
    new_speed = np.maximum(speed + 0.5 * (closing * along).sum(axis=2), 0.0)
    new = overlap & ~touching
    new_speed = np.where(new.any(axis=2), new_speed * (1.0 - car.contact_speed_loss), new_speed)
    still = overlap | (touching & pairs & (d2 < release * release))
    return (
        x + (nx * push).sum(axis=2),
        y + (ny * push).sum(axis=2),
        new_speed,
        still,
        new.sum(axis=2),
    )


def locate(
    tracks: TrackSet,
    row_track: Ints,
    seg: Ints,
    x: Floats,
    y: Floats,
    searching: Bools,
) -> tuple[Ints, Floats, Floats]:
    """Each car's nearest centre-line point: ``(segment, arc_m, lateral_m)``.

    Looks only at a few segments around each car's last segment ``seg``;
    ``searching`` cars found far from that window (they jumped) are looked up
    on the whole track. ``lateral_m`` is signed, positive left of the line.
    """
    shape = x.shape
    offset = tracks.seg_offset[row_track][:, None, None]
    count = tracks.seg_count[row_track][:, None, None]
    window = (seg[..., None] + SEARCH_WINDOW) % count + offset
    s = tracks.seg[window]  # (rows, slots, window, 6)
    px = x[..., None] - s[..., 0]
    py = y[..., None] - s[..., 1]
    along = px * s[..., 2] + py * s[..., 3]
    np.minimum(np.maximum(along, 0.0, out=along), s[..., 4], out=along)
    ex, ey = px - s[..., 2] * along, py - s[..., 3] * along
    d2 = ex * ex + ey * ey
    # The best of each car's window, by flat index (cheaper than take_along_axis).
    best = np.arange(x.size) * SEARCH_WINDOW.size + d2.argmin(axis=2).reshape(-1)
    found = window.reshape(-1)[best]
    near = s.reshape(-1, 6)[best]
    cross = near[:, 2] * py.reshape(-1)[best] - near[:, 3] * px.reshape(-1)[best]
    distance = np.sqrt(d2.reshape(-1)[best]).reshape(shape)
    new_seg = found.reshape(shape) - offset[..., 0]
    arc = (tracks.seg_arc[found] + along.reshape(-1)[best]).reshape(shape)
    lateral = np.copysign(distance, cross.reshape(shape))
    lost = searching & (distance > LOST_WIDTHS * tracks.width_m[row_track][:, None])
    for row, slot in np.argwhere(lost).tolist():
        track = tracks.tracks[int(row_track[row])]
        px1, py1 = x[row, slot], y[row, slot]
        index, far, whole_arc = track.nearest(px1, py1)
        i = int(index[0])
        (ax, ay), (dx, dy) = track.points[i], track.directions[i]
        new_seg[row, slot], arc[row, slot] = i, whole_arc[0]
        lateral[row, slot] = math.copysign(far[0], dx * (py1 - ay) - dy * (px1 - ax))
    return new_seg, arc, lateral


def crossing(gate: Floats, x0: Floats, y0: Floats, x1: Floats, y1: Floats) -> tuple[Bools, Floats]:
    """Whether each movement ``(x0, y0) -> (x1, y1)`` crosses its gate going forward,
    and where along the movement (0..1). ``gate`` rows are as in :class:`TrackSet`:
    ``x, y, ex, ey, direction_x, direction_y``."""
    mx, my = x1 - x0, y1 - y0
    ex, ey = gate[..., 2], gate[..., 3]
    qx, qy = gate[..., 0] - x0, gate[..., 1] - y0
    denominator = mx * ey - my * ex
    flat = np.abs(denominator) < 1e-12
    safe = np.where(flat, 1.0, denominator)
    t = (qx * ey - qy * ex) / safe
    u = (qx * my - qy * mx) / safe
    forward = mx * gate[..., 4] + my * gate[..., 5] > 0
    hit = ~flat & forward & (t >= 0) & (t <= 1) & (u >= 0) & (u <= 1)
    return hit, t


def traffic(
    x: Floats,
    y: Floats,
    heading: Floats,
    speed: Floats,
    lateral: Floats,
    solid: Bools,
    room_m: Floats,
) -> tuple[Bools, Floats, Floats]:
    """How AI cars keep out of each other's way: ``(dodging, line_m, limit_mps)``.

    A car with a ``solid`` car close ahead or alongside is ``dodging``: it aims
    for a line (metres left of the centre-line, within ``room_m`` of it, per
    row) one lane beside the nearest such car, on the side it is already on
    when there is room. ``limit_mps`` keeps it from running into the back of a
    car it has not yet got beside (infinite when the road ahead is clear).
    """
    rows, slots = x.shape
    cos, sin = np.cos(heading)[:, :, None], np.sin(heading)[:, :, None]
    rx = x[:, None, :] - x[:, :, None]  # car j seen from car i
    ry = y[:, None, :] - y[:, :, None]
    ahead = rx * cos + ry * sin
    side = np.abs(ry * cos - rx * sin)
    near = solid[:, None, :] & ~np.eye(slots, dtype=bool) & (side < LANE_M)
    near &= (ahead > -AVOID_BEHIND_M) & (ahead < AVOID_AHEAD_M)
    nearest = np.argmin(np.where(near, np.abs(ahead) + side, np.inf), axis=2)
    them = lateral.reshape(-1)[np.arange(rows)[:, None] * slots + nearest]
    lane = np.where(lateral >= them, LANE_M, -LANE_M)
    line = np.where(np.abs(them + lane) > room_m, them - lane, them + lane)
    blocked = near & (ahead > 0.0) & (side < FOLLOW_SIDE_M)
    chase = speed[:, None, :] + FOLLOW_GAIN_PER_S * (ahead - FOLLOW_GAP_M)
    limit = np.maximum(np.where(blocked, chase, np.inf).min(axis=2), 0.0)
    dodging: Bools = np.any(near, axis=2)
    return dodging, np.clip(line, -room_m, room_m), limit
