// Where live data comes from: the WebSocket stream (`WS /api/v1/ws/live`, topics snapshot, alert, change)
// when the server has it, else polling `GET /api/v1/live/snapshot` every 500 ms. A stream that drops falls
// back to polling at once and is tried again every 10 s; when it is back, polling stops.

import { get, readToken } from './api.js';

const POLL_MS = 500;
//: after this many polls in a row that got no answer (the server is down: each failure is an error in the
//: browser's console), the page polls every SLOW_POLL_MS until one answers; the stream is tried as before
const FAILED_POLLS_BEFORE_SLOW = 10;
const SLOW_POLL_MS = 5000;
const RETRY_STREAM_MS = 10000;
const CLOSE_TRY_LATER = 1013, CLOSE_GOING_AWAY = 1001;

export class LiveFeed {
  /** handlers: onSnapshot(s), onAlert(a), onChange(c), onMode(mode, detail), onEnded(reason), onError(err),
   * onAlive() (any message or answer from the server) */
  constructor(handlers) {
    this.h = handlers;
    this.ws = null;
    this.pollTimer = null;
    this.retryTimer = null;
    this.lastSeq = null;
    this.mode = null;
    this.ended = false;
    this.inflight = false;
    this.streamRefusals = 0;
    this.failedPolls = 0; // polls in a row with no answer
  }

  start() {
    if (typeof WebSocket === 'undefined') { this._poll('this browser has no WebSocket'); return; }
    this._openStream();
  }

  stop() {
    this.ended = true;
    clearInterval(this.pollTimer); this.pollTimer = null;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close(1000, 'page closed');
  }

  /** Subscribe again (e.g. with a token after signing in). */
  reconnect() {
    if (this.ended) return;
    if (this.ws) { this.ws.onclose = null; this.ws.close(1000, 'reconnecting'); this.ws = null; }
    this._openStream();
  }

  _setMode(mode, detail = '') {
    this.mode = mode;
    this.h.onMode?.(mode, detail);
  }

  _openStream() {
    clearTimeout(this.retryTimer);
    const q = new URLSearchParams({ topics: 'snapshot,alert,change' });
    const tok = readToken();
    if (tok) q.set('token', tok);
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    let ws;
    try {
      ws = new WebSocket(`${scheme}://${location.host}/api/v1/ws/live?${q}`);
    } catch (err) {
      this._poll(`stream unavailable (${err.message})`);
      return;
    }
    this.ws = ws;
    ws.onmessage = ev => {
      this.h.onAlive?.(); // heartbeats too: a run whose ticks are slower than the page's patience is not lost
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      switch (msg.type) {
        case 'subscribed':
          this.streamRefusals = 0;
          this._stopPolling();
          this._setMode('stream', `WebSocket, client ${msg.client_id}`);
          break;
        case 'snapshot': this._snapshot(msg.data); break;
        case 'alert': this.h.onAlert?.(msg.data); break;
        case 'change': this.h.onChange?.(msg.data); break;
        default: break; // heartbeat, error
      }
    };
    ws.onclose = ev => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.ended) return;
      if (ev.code === CLOSE_GOING_AWAY) { // the live run ended: one last look at what it left
        this._setMode('ended', ev.reason);
        this.ended = true;
        // both last requests at once: `signalwise live` waits for the status read (3 s at most), then stops
        this._pollOnce();
        this.h.onEnded?.(ev.reason || 'the live run ended');
        return;
      }
      if (ev.code === CLOSE_TRY_LATER) this.streamRefusals += 1;
      this._poll(`stream closed (${ev.code}${ev.reason ? `: ${ev.reason}` : ''}); polling every ${POLL_MS} ms`);
      this.retryTimer = setTimeout(() => this._openStream(), RETRY_STREAM_MS * Math.min(6, 1 + this.streamRefusals));
    };
  }

  _snapshot(s) {
    if (!s || s.seq === this.lastSeq) return;
    this.lastSeq = s.seq;
    this.h.onSnapshot?.(s);
  }

  _poll(reason) {
    if (this.ended) return;
    if (!this.pollTimer) this.pollTimer = setInterval(() => this._pollOnce(), POLL_MS);
    this.slowPolling = false;
    this._setMode('polling', reason);
    this._pollOnce();
  }

  /** Poll every SLOW_POLL_MS while the server does not answer, every POLL_MS again once it does. */
  _pace(slow) {
    if (!slow) this.failedPolls = 0;
    if (!this.pollTimer || slow === this.slowPolling) return;
    this.slowPolling = slow;
    clearInterval(this.pollTimer);
    this.pollTimer = setInterval(() => this._pollOnce(), slow ? SLOW_POLL_MS : POLL_MS);
  }

  _stopPolling() {
    clearInterval(this.pollTimer);
    this.pollTimer = null;
  }

  async _pollOnce() {
    if (this.inflight) return;
    this.inflight = true;
    try {
      const s = await get('/api/v1/live/snapshot');
      this.h.onAlive?.();
      this._pace(false);
      this._snapshot(s);
    } catch (err) {
      // no answer at all (status 0): a server that is down; a refusal (401, ...) is an answer
      if (!err.status && ++this.failedPolls >= FAILED_POLLS_BEFORE_SLOW) this._pace(true);
      this.h.onError?.(err);
    } finally {
      this.inflight = false;
    }
  }
}
