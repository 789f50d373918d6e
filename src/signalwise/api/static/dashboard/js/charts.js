// Small canvas charts: time series, bars with confidence intervals, several lines on one axis.
//
// Written here rather than vendored: the dashboard needs three chart kinds with one look (live series fed
// twice a second, bars with 95% CI whiskers, run-against-run lines), a PNG export straight from the
// canvas (canvas.toBlob) and a CSV of exactly what is drawn. uPlot would cover the series but not the CI
// bars; Chart.js covers all three at ~200 KB. This file is ~250 lines and needs no build step.

export const PALETTE = ['#1f6fe0', '#d73027', '#1a9850', '#7b3fbf', '#f07c00', '#00a3a3', '#8c564b', '#e01fb0',
                        '#5f6b7a', '#bcbd22'];

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

export function ticks(lo, hi, count = 4) {
  if (!(hi > lo)) { hi = lo + 1; }
  const step = niceStep(hi - lo, count);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(10));
  return out;
}

const TIME_STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

/** Ticks on a clock: whole seconds, minutes or hours; at least two where the span allows (an axis with one
 * label says neither its scale nor its direction). */
export function timeTicks(lo, hi, count = 4) {
  const raw = (hi - lo) / Math.max(1, count);
  let k = TIME_STEPS_S.findIndex(s => s >= raw);
  const at = step => {
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(v);
    return out;
  };
  if (k < 0) return at(niceStep(hi - lo, count));
  let out = at(TIME_STEPS_S[k]);
  while (out.length < 2 && k > 0) out = at(TIME_STEPS_S[--k]);
  return out;
}

/** An axis label: thousands as `k` (`1.5k` beside `2k`, `5k` beside `10k`, never `5000` beside `10k`). */
function formatTick(v) {
  if (Math.abs(v) >= 1000) return `${+(v / 1000).toFixed(2)}k`;
  return Number.isInteger(v) ? String(v) : formatNumber(v);
}

export function formatNumber(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  const a = Math.abs(v);
  if (a >= 10000) return `${(v / 1000).toFixed(0)}k`;
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(a >= 1 ? 2 : 3).replace(/\.?0+$/, '') || '0';
}

/** Simulated seconds as h:mm:ss (or m:ss). */
export function formatClock(s) {
  if (s === null || s === undefined) return '–';
  const t = Math.max(0, Math.round(s));
  const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), sec = t % 60;
  const mm = String(m).padStart(h ? 2 : 1, '0'), ss = String(sec).padStart(2, '0');
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** `text`, cut with an ellipsis to fit `width` pixels. */
function fitText(ctx, text, width) {
  if (ctx.measureText(text).width <= width) return text;
  let n = text.length;
  while (n > 1 && ctx.measureText(`${text.slice(0, n)}…`).width > width) n -= 1;
  return `${text.slice(0, n)}…`;
}

export class Chart {
  /**
   * opts: title, yLabel, xFormat (x -> text), xName (the x column of the CSV, e.g. run_time_s), yMin (e.g. 0),
   * empty (text when there is nothing to draw), categorical x for bars.
   */
  constructor(canvas, opts = {}) {
    this.canvas = canvas;
    this.opts = { title: '', yLabel: '', xFormat: formatNumber, yMin: null, yMax: null, xName: 'x',
                  empty: 'no data yet', ...opts };
    this.series = [];
    this.bars = null;
    this.emptyShown = null; // the text the last draw showed for want of data, else null
  }

  setSeries(series) { this.series = series; this.bars = null; }
  setBars(bars) { this.bars = bars; this.series = []; }

  _size() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(50, this.canvas.clientWidth), h = Math.max(40, this.canvas.clientHeight);
    if (this.canvas.width !== Math.round(w * dpr) || this.canvas.height !== Math.round(h * dpr)) {
      this.canvas.width = Math.round(w * dpr);
      this.canvas.height = Math.round(h * dpr);
    }
    const ctx = this.canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return { ctx, w, h };
  }

  _yRange(values) {
    let lo = Math.min(...values), hi = Math.max(...values);
    if (this.opts.yMin !== null) lo = Math.min(this.opts.yMin, lo);
    if (this.opts.yMax !== null) hi = Math.max(this.opts.yMax, hi);
    if (hi === lo) { hi = lo + (Math.abs(lo) || 1); }
    const t = ticks(lo, hi + (hi - lo) * 0.05, 4);
    return { lo: Math.min(lo, t[0]), hi: Math.max(t[t.length - 1], hi), ticks: t };
  }

  draw() {
    const { ctx, w, h } = this._size();
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, w, h);
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = '#1d2330';
    ctx.textBaseline = 'top';
    ctx.textAlign = 'left';
    if (this.opts.title) ctx.fillText(this.opts.title, 4, 2);
    const below = this.bars?.some(b => b.note) ? 30 : 18; // bars with a note take two lines of labels
    const box = { l: 44, r: w - 8, t: this.opts.title ? 18 : 6, b: h - below };
    if (box.r - box.l < 20 || box.b - box.t < 20) return;
    const values = this.bars
      ? this.bars.flatMap(b => [b.value, b.lo, b.hi]).filter(Number.isFinite)
      : this.series.flatMap(s => s.points.map(p => p[1])).filter(Number.isFinite);
    this.emptyShown = values.length ? null : this.opts.empty;
    if (!values.length) {
      ctx.fillStyle = '#687083';
      ctx.textAlign = 'center';
      ctx.fillText(this.opts.empty, (box.l + box.r) / 2, (box.t + box.b) / 2 - 6);
      return;
    }
    const y = this._yRange(values);
    const Y = v => box.b - (v - y.lo) / (y.hi - y.lo) * (box.b - box.t);
    // grid and y ticks
    ctx.strokeStyle = '#e6e9ef';
    ctx.lineWidth = 1;
    ctx.fillStyle = '#687083';
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (const v of y.ticks) {
      const py = Math.round(Y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(box.l, py); ctx.lineTo(box.r, py); ctx.stroke();
      ctx.fillText(formatTick(v), box.l - 4, py);
    }
    if (this.opts.yLabel) {
      ctx.save(); ctx.translate(8, (box.t + box.b) / 2); ctx.rotate(-Math.PI / 2);
      ctx.textAlign = 'center'; ctx.fillText(this.opts.yLabel, 0, 0); ctx.restore();
    }
    if (this.bars) this._drawBars(ctx, box, Y); else this._drawSeries(ctx, box, Y);
  }

  _drawBars(ctx, box, Y) {
    const n = this.bars.length, slot = (box.r - box.l) / n, bw = Math.min(46, slot * 0.6);
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    this.bars.forEach((b, i) => {
      const cx = box.l + slot * (i + 0.5);
      if (Number.isFinite(b.value)) {
        ctx.fillStyle = b.color || PALETTE[i % PALETTE.length];
        const top = Y(Math.max(0, b.value)), base = Y(Math.min(0, b.value));
        ctx.fillRect(cx - bw / 2, top, bw, Math.max(1, base - top));
      }
      if (Number.isFinite(b.lo) && Number.isFinite(b.hi)) { // 95% CI whisker
        ctx.strokeStyle = '#1d2330'; ctx.lineWidth = 1.5;
        ctx.beginPath();
        ctx.moveTo(cx, Y(b.lo)); ctx.lineTo(cx, Y(b.hi));
        // an end cut at the figure's bound (`loCut`, `hiCut`: the interval reached past what the figure can take)
        // has no cap: the whisker stops at the bound, open
        if (!b.loCut) { ctx.moveTo(cx - 6, Y(b.lo)); ctx.lineTo(cx + 6, Y(b.lo)); }
        if (!b.hiCut) { ctx.moveTo(cx - 6, Y(b.hi)); ctx.lineTo(cx + 6, Y(b.hi)); }
        ctx.stroke();
      }
      ctx.fillStyle = '#1d2330';
      ctx.fillText(fitText(ctx, String(b.label), slot - 4), cx, box.b + 3);
      if (b.note) { ctx.fillStyle = '#687083'; ctx.fillText(fitText(ctx, b.note, slot - 4), cx, box.b + 15); }
    });
  }

  _drawSeries(ctx, box, Y) {
    const xs = this.series.flatMap(s => s.points.map(p => p[0])).filter(Number.isFinite);
    let x0 = Math.min(...xs), x1 = Math.max(...xs);
    if (this.opts.xWindow && x1 - x0 < this.opts.xWindow) x0 = x1 - this.opts.xWindow;
    if (x1 === x0) x1 = x0 + 1;
    const X = v => box.l + (v - x0) / (x1 - x0) * (box.r - box.l);
    ctx.fillStyle = '#687083';
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    const count = Math.max(2, Math.floor((box.r - box.l) / 70));
    const xt = this.opts.xFormat === formatClock ? timeTicks(x0, x1, count) : ticks(x0, x1, count);
    for (const v of xt) {
      if (v < x0 || v > x1) continue;
      const text = this.opts.xFormat(v), half = ctx.measureText(text).width / 2;
      // a label at either end stays whole: moved in, not cut by the canvas's edge, nor under the y axis's labels
      ctx.fillText(text, Math.max(box.l - 2 + half, Math.min(X(v), box.r + 7 - half)), box.b + 3);
    }
    this.series.forEach((s, i) => {
      const color = s.color || PALETTE[i % PALETTE.length];
      ctx.strokeStyle = color; ctx.fillStyle = color; ctx.lineWidth = 1.5;
      if (s.mode === 'points' || s.points.length < 2) {
        for (const [px, py] of s.points) {
          if (!Number.isFinite(py)) continue;
          ctx.beginPath(); ctx.arc(X(px), Y(py), 2.5, 0, Math.PI * 2); ctx.fill();
        }
        return;
      }
      ctx.beginPath();
      let pen = false;
      for (const [px, py] of s.points) {
        if (!Number.isFinite(py)) { pen = false; continue; }
        if (pen) ctx.lineTo(X(px), Y(py)); else ctx.moveTo(X(px), Y(py));
        pen = true;
      }
      ctx.stroke();
    });
    if (this.series.length > 1) { // legend
      ctx.textAlign = 'right'; ctx.textBaseline = 'top';
      this.series.forEach((s, i) => {
        ctx.fillStyle = s.color || PALETTE[i % PALETTE.length];
        ctx.fillText(String(s.name).slice(-42), box.r - 2, box.t + 2 + 13 * i);
      });
    }
  }

  /** What is drawn, as CSV text. */
  toCSV() {
    if (this.bars) {
      return toCSV(['label', 'value', 'ci_low', 'ci_high', 'note'],
                   this.bars.map(b => [b.label, b.value, b.lo, b.hi, b.note || '']));
    }
    const xs = [...new Set(this.series.flatMap(s => s.points.map(p => p[0])))].sort((a, b) => a - b);
    const maps = this.series.map(s => new Map(s.points));
    return toCSV([this.opts.xName, ...this.series.map(s => s.name)], xs.map(x => [x, ...maps.map(m => m.get(x))]));
  }
}

export function toCSV(header, rows) {
  const cell = v => {
    if (v === null || v === undefined || (typeof v === 'number' && !Number.isFinite(v))) return '';
    const t = String(v);
    return /[",\n]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
  };
  return [header, ...rows].map(r => r.map(cell).join(',')).join('\n') + '\n';
}

function save(blob, filename) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 5000);
}

export function downloadCSV(text, filename) { save(new Blob([text], { type: 'text/csv' }), filename); }

export function downloadPNG(canvas, filename) {
  canvas.toBlob(blob => { if (blob) save(blob, filename); }, 'image/png');
}
