// The map: lane shapes on a canvas, pan and zoom, and per signalized intersection its signal per approach,
// a queue bar per approach, rings for preemption, fallback, an operator's override and the selection, and
// the emergency vehicles heading for a signal (a magenta diamond where the vehicle is, on its approach).
//
// World coordinates are SUMO's (metres, y up). The lanes are drawn once per view into a background canvas;
// each snapshot only redraws the overlays on top of it, batched by colour, so a 100-signal network costs a
// few milliseconds per update.

export const SIGNAL_COLOURS = { green: '#1a9850', yellow: '#f2b400', red: '#d73027', none: '#9aa1ad' };
//: each state's shape too, so that it does not rest on colour alone (red and green look alike to one man in
//: twelve): the legend and the detail draw the same; the detail adds the letter (SIGNAL_LETTERS)
export const SIGNAL_SHAPES = { green: 'circle', yellow: 'triangle', red: 'square', none: 'circle' };
export const SIGNAL_LETTERS = { green: 'G', yellow: 'Y', red: 'R', none: '–' };
const RING = { preempt: '#e01fb0', fallback: '#f07c00', override: '#1f6fe0', selected: '#1d2330' };
export const EMERGENCY_COLOUR = '#e01fb0';
const QUEUE = 'rgba(123, 63, 191, 0.62)';
const VEHICLE_LENGTH_M = 7.5; // one queued vehicle on the map: length plus gap

/** An approach's signal from the state string: green if any of its links shows green, else yellow if any
 * shows yellow, else red (as `runtime/live/records.py` reads it for the records). */
export function approachSignal(state, links) {
  let green = false, yellow = false;
  for (const i of links) {
    const c = state[i];
    if (c === 'G' || c === 'g') green = true;
    else if (c === 'y' || c === 'Y') yellow = true;
  }
  return green ? 'green' : yellow ? 'yellow' : 'red';
}

/** A signal head of `shape` around (x, y) into `path`: a circle of radius r, a square and an upward triangle
 * of about its area (the triangle a little larger: its corners are thin). */
function headPath(path, shape, x, y, r) {
  if (shape === 'square') {
    const h = r * 0.9;
    path.rect(x - h, y - h, 2 * h, 2 * h);
  } else if (shape === 'triangle') {
    path.moveTo(x, y - 1.25 * r);
    path.lineTo(x + 1.2 * r, y + 0.85 * r);
    path.lineTo(x - 1.2 * r, y + 0.85 * r);
    path.closePath();
  } else {
    path.moveTo(x + r, y);
    path.arc(x, y, r, 0, Math.PI * 2);
  }
}

export class SignalMap {
  constructor(canvas, { onSelect } = {}) {
    this.canvas = canvas;
    this.onSelect = onSelect || (() => {});
    this.net = null;
    this.snapshot = null;
    this.selected = null;
    this.view = { s: 1, ox: 0, oy: 0 }; // screen = (x * s + ox, -y * s + oy), CSS pixels
    this.bg = document.createElement('canvas');
    this.bgKey = '';
    this.pending = false;
    this.drawn = null; // {seq, sim_time_s} of the snapshot last drawn
    this.heads = []; // what the last draw showed, per approach (for tests and tooltips)
    this.headR = 0; // the heads' radius in the last draw, CSS pixels
    this.queueBars = []; // the queue bars of the last draw: {id, direction, veh, to_scale, cx, cy, x0, y0, x1, y1}
    this.emergency = []; // the emergency vehicles the last draw showed: {id, vehicle_id, approach, x, y}
    this.labels = []; // the signal names the last draw wrote: {id, text} (`J5 · fixed`: not the run's controller)
    this.switched = {}; // signal -> the controller spec a change switched it to (the status's signal_controllers)
    this.firstMapAt = null;
    this.drawMs = []; // the last draws' durations (ms), for the benchmark
    this._bindPointer();
    this.moved = false; // the operator panned or zoomed: a resize keeps their view, else it fits again
    this.size = [canvas.clientWidth, canvas.clientHeight];
    new ResizeObserver(() => this._resized()).observe(canvas);
  }

  /** The signals switched to another controller than the run's (`{J5: 'fixed'}`), as the run's status says. */
  setSwitched(switched) {
    const next = switched || {};
    if (JSON.stringify(next) === JSON.stringify(this.switched)) return;
    this.switched = next;
    this.requestDraw();
  }

  setNetwork(net) {
    this.net = net;
    this.byId = new Map();
    for (const inter of net.intersections) {
      if (inter.x === null || inter.y === null) continue;
      this.byId.set(inter.id, inter);
      inter.laneShape = new Map();
      for (const a of inter.approaches) {
        for (const l of a.lanes) inter.laneShape.set(l.id, l.shape);
        const ends = a.lanes.filter(l => l.shape.length >= 2).map(l => l.shape[l.shape.length - 1]);
        if (!ends.length) { a.end = null; continue; }
        const ex = ends.reduce((s, p) => s + p[0], 0) / ends.length;
        const ey = ends.reduce((s, p) => s + p[1], 0) / ends.length;
        let ux = ex - inter.x, uy = ey - inter.y, d = Math.hypot(ux, uy);
        if (d < 0.5) { // the approach ends at the centre: point back along its first lane
          const sh = a.lanes[0].shape, p = sh[sh.length - 2], q = sh[sh.length - 1];
          ux = p[0] - q[0]; uy = p[1] - q[1]; d = Math.hypot(ux, uy) || 1;
        }
        a.end = { x: ex, y: ey, ux: ux / d, uy: uy / d, dist: Math.hypot(ex - inter.x, ey - inter.y) };
      }
    }
    const pts = [...this.byId.values()];
    let sep = Infinity;
    for (let i = 0; i < Math.min(pts.length, 400); i++) {
      for (let j = i + 1; j < Math.min(pts.length, 400); j++) {
        sep = Math.min(sep, Math.hypot(pts[i].x - pts[j].x, pts[i].y - pts[j].y));
      }
    }
    this.minSeparation = Number.isFinite(sep) ? sep : 200;
    this.fit();
  }

  _resized() {
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    const [w0, h0] = this.size;
    this.size = [w, h];
    if (!this.net) return;
    if (!this.moved) { this.fit(); return; }
    // the same place stays in the middle
    this.view = { ...this.view, ox: this.view.ox + (w - w0) / 2, oy: this.view.oy + (h - h0) / 2 };
    this.requestDraw();
  }

  fit() {
    this.moved = false;
    if (!this.net) return;
    const [x0, y0, x1, y1] = this.net.bounds;
    const w = this.canvas.clientWidth || 800, h = this.canvas.clientHeight || 600;
    const s = Math.min(w / Math.max(1, x1 - x0), h / Math.max(1, y1 - y0)) * 0.92;
    this.view = { s, ox: w / 2 - (x0 + x1) / 2 * s, oy: h / 2 + (y0 + y1) / 2 * s };
    this.requestDraw();
  }

  zoom(factor, mx, my) {
    const v = this.view;
    if (mx === undefined) { mx = this.canvas.clientWidth / 2; my = this.canvas.clientHeight / 2; }
    const s = Math.min(200, Math.max(0.005, v.s * factor));
    const f = s / v.s;
    this.view = { s, ox: mx - (mx - v.ox) * f, oy: my - (my - v.oy) * f };
    this.moved = true;
    this.requestDraw();
  }

  update(snapshot) {
    this.snapshot = snapshot;
    this.requestDraw();
  }

  select(id) {
    this.selected = id;
    this.requestDraw();
  }

  requestDraw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  _px(x, y) { return [x * this.view.s + this.view.ox, -y * this.view.s + this.view.oy]; }

  _size() {
    const dpr = window.devicePixelRatio || 1;
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    const W = Math.max(1, Math.round(w * dpr)), H = Math.max(1, Math.round(h * dpr));
    if (this.canvas.width !== W || this.canvas.height !== H) { this.canvas.width = W; this.canvas.height = H; }
    return { dpr, w, h, W, H };
  }

  _background(dpr, w, h, W, H) {
    const key = `${W}x${H}:${this.view.s}:${this.view.ox}:${this.view.oy}`;
    if (key === this.bgKey) return;
    this.bgKey = key;
    this.bg.width = W; this.bg.height = H;
    const ctx = this.bg.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = '#eef0ec';
    ctx.fillRect(0, 0, w, h);
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    for (const vehicles of [false, true]) {
      ctx.beginPath();
      for (const lane of this.net.lanes) {
        if (lane.vehicles !== vehicles) continue;
        const sh = lane.shape;
        for (let i = 0; i < sh.length; i++) {
          const [px, py] = this._px(sh[i][0], sh[i][1]);
          if (i) ctx.lineTo(px, py); else ctx.moveTo(px, py);
        }
      }
      ctx.strokeStyle = vehicles ? '#b3b9c4' : '#d6d9de';
      ctx.lineWidth = Math.max(vehicles ? 1.2 : 0.6, (vehicles ? 3.0 : 1.5) * this.view.s);
      ctx.stroke();
    }
  }

  draw() {
    if (!this.net) return;
    const began = performance.now();
    const { dpr, w, h, W, H } = this._size();
    this._background(dpr, w, h, W, H);
    const ctx = this.canvas.getContext('2d');
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.drawImage(this.bg, 0, 0);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const snap = this.snapshot;
    const views = new Map((snap?.signals || []).map(v => [v.intersection_id, v]));
    const s = this.view.s;
    const headR = Math.min(8, Math.max(3.5, 2.2 * s));
    const spread = headR * 2.6; // heads stay this far from the centre at any zoom, so four never overlap
    const heads = [];
    const emergency = [];
    const rings = { preempt: [], fallback: [], override: [], selected: [] };
    const queue = new Path2D();
    const queueBars = [];
    const stopBars = { green: new Path2D(), yellow: new Path2D(), red: new Path2D(), none: new Path2D() };
    for (const inter of this.byId.values()) {
      const [cx, cy] = this._px(inter.x, inter.y);
      if (cx < -60 || cy < -60 || cx > w + 60 || cy > h + 60) continue;
      const view = views.get(inter.id);
      let reach = spread;
      for (const a of inter.approaches) {
        if (!a.end) continue;
        const colour = view ? approachSignal(view.state, a.links) : 'none';
        const radial = Math.max(a.end.dist * s + headR * 0.6, spread);
        reach = Math.max(reach, radial);
        heads.push({ id: inter.id, direction: a.direction, colour, shape: SIGNAL_SHAPES[colour],
                     x: cx + a.end.ux * radial, y: cy - a.end.uy * radial });
        const q = view ? (view.queue_veh?.[a.direction] || 0) : 0;
        if (q > 0) queueBars.push(this._queueBar(queue, inter.id, a, q, [cx, cy], radial + headR + 2));
        if (s > 0.8) this._stopBars(stopBars[colour], a);
      }
      const r = reach + headR + 4;
      inter.ringR = r;
      if (view?.fallback) rings.fallback.push([cx, cy, r]);
      if (view?.override) rings.override.push([cx, cy, r + 4]);
      if (view?.preempted) rings.preempt.push([cx, cy, r + 8]);
      if (inter.id === this.selected) rings.selected.push([cx, cy, r + 13]);
      for (const ev of view?.emergency || []) {
        const at = this._emergencyAt(inter, ev);
        if (at) emergency.push({ id: inter.id, vehicle_id: ev.vehicle_id, approach: ev.approach, x: at[0], y: at[1] });
      }
    }
    ctx.lineCap = 'butt';
    ctx.strokeStyle = QUEUE;
    ctx.lineWidth = Math.max(3, 2.4 * s);
    ctx.stroke(queue);
    ctx.lineWidth = Math.max(1.5, 0.6 * s);
    for (const [colour, path] of Object.entries(stopBars)) { ctx.strokeStyle = SIGNAL_COLOURS[colour]; ctx.stroke(path); }
    this._rings(ctx, rings.fallback, RING.fallback, 2.5, [5, 4]);
    this._rings(ctx, rings.override, RING.override, 2.5);
    this._rings(ctx, rings.preempt, RING.preempt, 4);
    this._rings(ctx, rings.selected, RING.selected, 2);
    this._emergencyMarks(ctx, emergency, headR);
    for (const colour of ['none', 'red', 'yellow', 'green']) { // heads last: nothing covers them
      const path = new Path2D();
      for (const hd of heads) if (hd.colour === colour) headPath(path, hd.shape, hd.x, hd.y, headR);
      ctx.fillStyle = SIGNAL_COLOURS[colour];
      ctx.fill(path);
    }
    ctx.lineWidth = 1;
    ctx.strokeStyle = 'rgba(29, 35, 48, 0.55)';
    const outline = new Path2D();
    for (const hd of heads) headPath(outline, hd.shape, hd.x, hd.y, headR + 0.5);
    ctx.stroke(outline);
    this._labels(ctx, views, spread + headR + 4);
    this.heads = heads;
    this.headR = headR;
    this.queueBars = queueBars;
    this.emergency = emergency;
    this.drawn = snap ? { seq: snap.seq, sim_time_s: snap.sim_time_s } : { seq: null, sim_time_s: null };
    if (this.firstMapAt === null) {
      this.firstMapAt = performance.now();
      performance.mark('signalwise:first-map');
    }
    this.drawMs.push(performance.now() - began);
    if (this.drawMs.length > 500) this.drawMs.shift();
  }

  /** One approach's queue bar into `path`: to scale, back from the stop line along its lanes, where that
   * reaches past the signal head; zoomed out (a 60 m queue is a few pixels of a fitted corridor, under the
   * head) a bar outward from just beyond the head instead, 2 px a vehicle, so a queue shows at every zoom. */
  _queueBar(path, id, approach, q, [cx, cy], clearPx) {
    const perLaneM = (q / Math.max(1, approach.lanes.length)) * VEHICLE_LENGTH_M;
    const bar = { id, direction: approach.direction, veh: q, cx, cy };
    if ((approach.end.dist + perLaneM) * this.view.s > clearPx) {
      const [x1, y1] = this._queuePath(path, approach, perLaneM);
      return { ...bar, to_scale: true, x0: cx, y0: cy, x1, y1 };
    }
    const [ux, uy] = [approach.end.ux, -approach.end.uy];
    // at most half-way to the nearest signal, whose own heads and bars are there
    const long = Math.max(3, Math.min(48, 4 + 2 * q, 0.5 * this.minSeparation * this.view.s - clearPx));
    const [x0, y0] = [cx + ux * clearPx, cy + uy * clearPx];
    const [x1, y1] = [x0 + ux * long, y0 + uy * long];
    path.moveTo(x0, y0);
    path.lineTo(x1, y1);
    return { ...bar, to_scale: false, x0, y0, x1, y1 };
  }

  /** A queue of `perLaneM` metres on each of the approach's lanes into `path`; the end of the last lane's. */
  _queuePath(path, approach, perLaneM) {
    let end = [NaN, NaN];
    for (const lane of approach.lanes) {
      const sh = lane.shape;
      if (sh.length < 2) continue;
      let left = perLaneM;
      let [px, py] = this._px(sh[sh.length - 1][0], sh[sh.length - 1][1]);
      path.moveTo(px, py);
      for (let i = sh.length - 1; i > 0 && left > 0; i--) {
        const [x1, y1] = sh[i], [x0, y0] = sh[i - 1];
        const seg = Math.hypot(x1 - x0, y1 - y0);
        const f = seg > left ? left / seg : 1;
        [px, py] = this._px(x1 + (x0 - x1) * f, y1 + (y0 - y1) * f);
        path.lineTo(px, py);
        left -= seg;
      }
      end = [px, py];
    }
    return end;
  }

  /** Where an emergency vehicle is, on the canvas: `distance_m` back from the stop line along its lane when
   * the lane is one of the signal's approaches, else along its approach's direction. */
  _emergencyAt(inter, ev) {
    const sh = inter.laneShape.get(ev.in_lane);
    let left = ev.distance_m;
    if (sh && sh.length >= 2) {
      for (let i = sh.length - 1; i > 0; i--) {
        const [x1, y1] = sh[i], [x0, y0] = sh[i - 1];
        const seg = Math.hypot(x1 - x0, y1 - y0);
        if (seg >= left || i === 1) {
          const f = seg > 0 ? Math.min(1, left / seg) : 0;
          return this._px(x1 + (x0 - x1) * f, y1 + (y0 - y1) * f);
        }
        left -= seg;
      }
    }
    const a = inter.approaches.find(x => x.direction === ev.approach && x.end);
    if (!a) return null;
    const d = a.end.dist + ev.distance_m;
    return this._px(inter.x + a.end.ux * d, inter.y + a.end.uy * d);
  }

  _emergencyMarks(ctx, marks, headR) {
    if (!marks.length) return;
    const r = Math.max(6, headR * 1.6);
    const path = new Path2D();
    for (const m of marks) {
      path.moveTo(m.x, m.y - r); path.lineTo(m.x + r, m.y); path.lineTo(m.x, m.y + r); path.lineTo(m.x - r, m.y);
      path.closePath();
    }
    ctx.fillStyle = EMERGENCY_COLOUR;
    ctx.fill(path);
    ctx.lineWidth = 2;
    ctx.strokeStyle = '#fff';
    ctx.stroke(path);
  }

  _stopBars(path, approach) {
    for (const lane of approach.lanes) {
      const sh = lane.shape;
      if (sh.length < 2) continue;
      const [x1, y1] = sh[sh.length - 1], [x0, y0] = sh[sh.length - 2];
      const d = Math.hypot(x1 - x0, y1 - y0) || 1;
      const nx = -(y1 - y0) / d * 1.6, ny = (x1 - x0) / d * 1.6; // half a lane across
      const [ax, ay] = this._px(x1 + nx, y1 + ny), [bx, by] = this._px(x1 - nx, y1 - ny);
      path.moveTo(ax, ay); path.lineTo(bx, by);
    }
  }

  _rings(ctx, centres, colour, width, dash = []) {
    if (!centres.length) return;
    const path = new Path2D();
    for (const [x, y, r] of centres) { path.moveTo(x + r, y); path.arc(x, y, r, 0, Math.PI * 2); }
    ctx.setLineDash(dash);
    ctx.strokeStyle = colour;
    ctx.lineWidth = width;
    ctx.stroke(path);
    ctx.setLineDash([]);
  }

  _labels(ctx, views, ringR) {
    const roomy = this.minSeparation * this.view.s > 70;
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'bottom';
    ctx.textAlign = 'left';
    ctx.lineWidth = 3;
    ctx.strokeStyle = 'rgba(255,255,255,0.9)';
    this.labels = [];
    for (const inter of this.byId.values()) {
      const view = views.get(inter.id);
      // a signal switched to another controller than the run's says so, at every zoom (the status's word:
      // `setSwitched`)
      const own = this.switched[inter.id] || null;
      if (!roomy && inter.id !== this.selected && !view?.preempted && !view?.override && !own) continue;
      const [cx, cy] = this._px(inter.x, inter.y);
      let text = inter.id;
      if (own) text += ` · ${own}`;
      if (view?.override) text += ' · OVERRIDE'; // the ring's meaning in words, not by its blue alone
      if (view?.preempted) text += ' · PREEMPTION';
      this.labels.push({ id: inter.id, text });
      // beyond the outermost ring a signal can have (the selection's, 13 px out, 2 px wide): the text's corner
      // on the 45° line, so neither a ring nor the selection covers the id (`J3`, `J1 · PREEMPTION`)
      const r = (inter.ringR || ringR) + 16;
      const x = cx + r * 0.72, y = cy - r * 0.72;
      ctx.strokeText(text, x, y);
      ctx.fillStyle = view?.preempted ? RING.preempt : '#1d2330';
      ctx.fillText(text, x, y);
    }
  }

  nearest(mx, my, within = 28) {
    let best = null, bestD = within;
    for (const inter of this.byId?.values() || []) {
      const [cx, cy] = this._px(inter.x, inter.y);
      const d = Math.hypot(cx - mx, cy - my);
      if (d < bestD) { best = inter.id; bestD = d; }
    }
    return best;
  }

  /** Where an intersection is on the canvas (CSS pixels), e.g. to click it. */
  screenOf(id) {
    const inter = this.byId?.get(id);
    return inter ? this._px(inter.x, inter.y) : null;
  }

  _bindPointer() {
    const c = this.canvas;
    let down = null;
    c.addEventListener('pointerdown', e => {
      down = { x: e.offsetX, y: e.offsetY, ox: this.view.ox, oy: this.view.oy, moved: false };
      c.setPointerCapture(e.pointerId);
    });
    c.addEventListener('pointermove', e => {
      if (!down) return;
      const dx = e.offsetX - down.x, dy = e.offsetY - down.y;
      if (!down.moved && Math.hypot(dx, dy) < 4) return;
      down.moved = true;
      c.classList.add('dragging');
      this.view = { ...this.view, ox: down.ox + dx, oy: down.oy + dy };
      this.moved = true;
      this.requestDraw();
    });
    c.addEventListener('pointerup', e => {
      if (down && !down.moved) {
        const id = this.nearest(e.offsetX, e.offsetY);
        if (id) this.onSelect(id);
      }
      down = null;
      c.classList.remove('dragging');
    });
    c.addEventListener('wheel', e => {
      e.preventDefault();
      this.zoom(Math.exp(-e.deltaY * 0.0015), e.offsetX, e.offsetY);
    }, { passive: false });
    c.addEventListener('dblclick', e => this.zoom(2, e.offsetX, e.offsetY));
    c.addEventListener('keydown', e => this._key(e));
  }

  /** The map focused: an arrow chooses the nearest signal that way (the first: the one nearest the middle), as a
   * click does; + and − zoom, 0 fits. */
  _key(e) {
    const ways = { ArrowRight: [1, 0], ArrowLeft: [-1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (e.key === '+' || e.key === '=') this.zoom(1.6);
    else if (e.key === '-' || e.key === '−') this.zoom(1 / 1.6);
    else if (e.key === '0') this.fit();
    else if (ways[e.key]) {
      const id = this.nextSignal(ways[e.key]);
      if (id) this.onSelect(id, { keyboard: true }); // the page says which signal (its live region)
    } else return;
    e.preventDefault();
  }

  /** The signal nearest the selected one in direction `[dx, dy]` (screen), or the one nearest the map's middle
   * when none is selected; null when there is none that way. */
  nextSignal([dx, dy]) {
    const from = this.selected && this.screenOf(this.selected);
    let best = null, bestScore = Infinity;
    for (const inter of this.byId?.values() || []) {
      const [x, y] = this._px(inter.x, inter.y);
      if (!from) {
        const d = Math.hypot(x - this.canvas.clientWidth / 2, y - this.canvas.clientHeight / 2);
        if (d < bestScore) { best = inter.id; bestScore = d; }
        continue;
      }
      const vx = x - from[0], vy = y - from[1], d = Math.hypot(vx, vy);
      const along = (vx * dx + vy * dy) / (d || 1);
      if (inter.id === this.selected || along <= 0.3) continue; // behind, or too far to the side
      const score = d * (2 - along);
      if (score < bestScore) { best = inter.id; bestScore = score; }
    }
    return best;
  }
}
