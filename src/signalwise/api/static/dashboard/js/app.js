// The signalwise dashboard: a live run's map, signals, queues, charts, alerts and controls, and stored runs
// side by side. Plain ES modules, no build step, every file served by the API itself.

import * as api from './api.js';
import { Chart, downloadCSV, downloadPNG, formatClock, formatNumber, PALETTE, toCSV } from './charts.js';
import { LiveFeed } from './feed.js';
import { approachSignal, SignalMap, SIGNAL_COLOURS, SIGNAL_LETTERS } from './map.js';

const $ = id => document.getElementById(id);
const HOUR_S = 3600;
const MAX_POINTS = 4000;
// co2_saved is against the baseline: 0 for the baseline itself by construction, so not shown unless asked for
const DEFAULT_METRICS = ['avg_delay_s', 'avg_wait_time', 'throughput', 'avg_speed'];
// what each stored figure is, in the comparison's captions and table (store/queries.py RECORD_METRICS: the
// figures from interval records are means over intervals and signals, not over vehicles)
const METRIC_NOTES = {
  avg_delay_s: 'mean delay per vehicle over the run (s)',
  avg_travel_time_s: 'mean travel time per vehicle (s)',
  avg_queue_veh: 'mean queue (vehicles)',
  avg_wait_time: 'wait per vehicle at one signal (s): the time vehicles stood on a signal\'s approaches over the vehicles that left them, per interval and signal, then the mean over intervals and signals, warm-up included; not the report\'s "avg waiting" (avg_wait_s), the time a vehicle stood over its whole trip, at every signal it met',
  throughput: 'a share (0 to 1), not vehicles per hour: the share of the vehicles at the stop lines that each interval served, passed / (passed + queued at its end), mean over intervals and signals; not throughput_veh, the vehicles that arrived',
  avg_speed: 'mean over intervals and signals of the approaches\' speed (km/h)',
  co2_saved: 'CO2 saved against the baseline run of the same seed (kg): 0 for the baseline itself',
  fuel_saved: 'fuel saved against the baseline run of the same seed (l): 0 for the baseline itself',
};
//: what operates the run (the controls panel, the selected signal's override, timing and shield): asleep while
//: it does not run
const OPERATING_CONTROLS = ['#controls', '#override-form', '#timing-form', '#shield-form'].flatMap(p => [`${p} button`, `${p} input`, `${p} select`]).join(', ');
//: no sign of the server for this long while the run goes (a snapshot, a stream heartbeat, a poll answered):
//: the page says its data are old; 2.5 ticks when a tick takes longer in wall time (a slow run)
const STALE_AFTER_MS = 8000;
const MAX_TREND_RUNS = 200;
const NOTE_RULES = new Set(['min_green', 'fallback_end']); // interventions that only note a wait

const state = {
  mode: null, // 'live' | 'stored'
  ended: false, // the live run's stream closed for its end
  network: null,
  snapshot: null,
  status: null,
  selected: null,
  configured: null, // the controller the live run was started with
  lastAdaptive: null,
  alerts: new Map(),
  series: { queue: [], fallback: [] },
  intervals: [],
  intervalS: null, // the run's interval length (simulated s), as GET /api/v1/live/intervals says it
  chartsDirty: false,
  needsKey: false, // reads were refused for want of a key: start again once signed in
  readRefused: false, // the feed's last read was refused for want of a key (and nothing has come since)
  lastDataAt: null, // Date.now() of the latest sign of the server (a snapshot, a heartbeat, a poll answered)
  stale: false, // no snapshot for STALE_AFTER_MS: the page says so
  detailKey: null, // the selected signal's phase and interval when its decisions were last fetched
  runs: [],
  metricFields: {}, // stored figures' "unit: what it is" (GET /api/v1/analytics/simulations `fields`)
  runDir: null, // the live run this page shows (its run directory): another one behind the same address is a new run
  feedMode: { mode: null, detail: '' }, // how the data come (the feed's own word), shown again when they come again
  ackResults: new Map(), // alert id -> {ok, text}: an acknowledgement's answer, shown with its alert
  changes: [], // the run's change log, newest first
  override: null, // the override this page applied: {id, seen (in force since), done}; its answer goes when it ends
  faults: null, // the run's controller_faults as last shown (decisions, errors, invalid_proposals)
};
//: changes the run keeps for later runs of the corridor (runtime/live/runtime.py LASTING)
const LASTING_KINDS = new Set(['timing', 'signal_timing', 'shield', 'alerts', 'controller']);
const MAX_CHANGES = 40;

// for tests, benchmarks and the curious: read-only views of what the page holds and drew
const exposed = { state, map: null, feed: null, ready: false, errors: [], snapshotsReceived: 0, newRuns: 0,
                  announced: [] }; // announced: what the live region said, oldest first (the last 50)
window.signalwise = exposed;
window.addEventListener('error', e => exposed.errors.push(String(e.message)));
window.addEventListener('unhandledrejection', e => exposed.errors.push(String(e.reason?.message || e.reason)));

let map;
let feed;
const liveTimers = []; // the live view's periodic reads, stopped when the run ends
const charts = {};
exposed.charts = charts;

// -- helpers ----------------------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k === 'style') node.style.cssText = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

function setText(id, text) {
  const node = $(id);
  if (node.textContent !== text) node.textContent = text;
}

/** A control's answer; `ok` null: a note (nothing was sent). `detail`: the tooltip (a network error's own words). */
function showResult(id, ok, text, detail = '') {
  const node = $(id);
  node.className = `result ${ok === null ? 'note' : ok ? 'ok' : 'refused'}`;
  node.textContent = text;
  node.title = detail;
}

/** A failed call in words, with what lies behind them as the node's tooltip. */
function showError(node, text, err) {
  node.textContent = text;
  node.title = api.errorDetail(err);
  return node;
}

function mapMessage(text) {
  const node = $('map-message');
  node.hidden = !text;
  node.textContent = text || '';
}

/** One short sentence for a screen reader (the polite live region #announcer), on an event only: an alert raised
 * or cleared, the run's end, data lost or back, a signal chosen with the map's arrows. Never a per-snapshot value;
 * the same sentence twice in a row is said once. */
function announce(text) {
  if (!text || text === exposed.announced.at(-1)) return;
  exposed.announced.push(text);
  if (exposed.announced.length > 50) exposed.announced.shift();
  $('announcer').textContent = text;
}

function trim(points, latest) {
  while (points.length && (points.length > MAX_POINTS || points[0][0] < latest - HOUR_S)) points.shift();
}

// -- API key dialog ---------------------------------------------------------------------------------
/** The key refused (`err`), or no error (null): the field is marked invalid and its error (role=alert, the
 * field's description) is said at once. */
function keyError(err) {
  $('key-input').setAttribute('aria-invalid', err ? 'true' : 'false');
  if (err) showError($('key-error'), api.describeError(err), err);
  else { $('key-error').textContent = ''; $('key-error').title = ''; }
}

function setupKeyDialog() {
  const dialog = $('key-dialog');
  let settle = null;
  api.setKeyPrompt(why => new Promise(resolve => {
    settle = resolve;
    $('key-why').textContent = why;
    keyError(null);
    $('key-input').value = '';
    dialog.showModal();
    $('key-input').focus();
  }));
  $('key-form').addEventListener('submit', async e => {
    const choice = e.submitter?.value;
    if (choice === 'sign-in') {
      e.preventDefault(); // stay open until the key is accepted
      try {
        await api.signIn($('key-input').value.trim());
      } catch (err) {
        keyError(err);
        return;
      }
      $('key-input').value = '';
      dialog.close();
      settle?.('signed-in');
    } else {
      settle?.(choice === 'without' ? 'without' : null);
    }
    settle = null;
  });
  dialog.addEventListener('cancel', () => { settle?.(null); settle = null; });
  const askKey = why => new Promise(resolve => { settle = resolve; $('key-why').textContent = why;
    keyError(null); dialog.showModal(); $('key-input').focus(); });
  $('sign-in').addEventListener('click', () => askKey('Sign in for the controls (operate scope).'));
  $('signin-extend').addEventListener('click', async () => {
    const who = api.who();
    if (!who || who.expired) return;
    const answer = await askKey(`Your sign-in as ${who.name} ends at ${api.wallClock(who.expiresAt)} (in `
      + `${formatClock(Math.max(0, (who.expiresAt - Date.now()) / 1000))}): give the key again to extend it (the `
      + 'server renews a sign-in only for the key).');
    // the warning and its button are gone once signed in again: focus goes where signing in lives
    if (answer === 'signed-in') $('sign-in').focus();
  });
  $('sign-out').addEventListener('click', () => api.forget());
  api.onAuthChange(who => {
    followExpiry(who);
    const node = $('auth-who');
    const refused = who ? null : api.refusedSignIn();
    // until when (wall clock): a sign-in runs out, and one that has must not look signed in
    node.textContent = refused ? `${refused.name}: sign-in refused by the server`
      : !who ? 'no key' : who.expired ? `${who.name}: sign-in expired at ${api.wallClock(who.expiresAt)}`
      : `${who.name} (${who.scopes.join(', ')}) · until ${api.wallClock(who.expiresAt)}`;
    node.className = who?.expired || refused ? 'expired' : '';
    node.title = refused ? `${refused.reason}: sign in again for the controls`
      : !who ? '' : who.expired ? 'the token has run out: the next change asks for the key again'
      : 'signed in with a short-lived token, valid until this wall-clock time';
    $('sign-out').hidden = !who;
    feed?.reconnect(); // the stream takes the token too (needed away from loopback)
    if (who && !who.expired && state.needsKey) { state.needsKey = false; start(); }
  });
}

// -- a sign-in about to run out (WCAG 2.2.1) --------------------------------------------------------
//: how long before a sign-in runs out the page warns (visible, and said once): time to extend it
const WARN_BEFORE_EXPIRY_MS = 120000;
let expiryWarnTimer = null;
let expiryTick = null;
let signedInUntil = null; // the expiry of the valid sign-in last seen: its end is said once

/** Warn WARN_BEFORE_EXPIRY_MS before the sign-in runs out (at once when less is left), and say when it has. The
 * token route (POST /api/v1/auth/token) takes only a key, never a token: extending asks for the key again. */
function followExpiry(who) {
  clearTimeout(expiryWarnTimer);
  const warning = $('signin-warning');
  const warned = !warning.hidden && Number(warning.dataset.expiresAt) === who?.expiresAt;
  if (!who || who.expired || !warned) { warning.hidden = true; clearInterval(expiryTick); }
  if (who?.expired && signedInUntil === who.expiresAt) { // warned or not (a page asleep past both)
    announce(`Your sign-in as ${who.name} has expired: the next change asks for the API key again.`);
  }
  signedInUntil = who && !who.expired ? who.expiresAt : null;
  if (!who || who.expired || warned) return;
  expiryWarnTimer = setTimeout(() => warnExpiry(who), Math.max(0, who.expiresAt - WARN_BEFORE_EXPIRY_MS - Date.now()));
}

function warnExpiry(who) {
  const warning = $('signin-warning');
  const leftS = () => Math.max(0, (who.expiresAt - Date.now()) / 1000);
  warning.dataset.expiresAt = String(who.expiresAt);
  setText('signin-warning-text', `Your sign-in as ${who.name} ends at ${api.wallClock(who.expiresAt)}; extending `
    + 'it asks for the API key again.');
  const tick = () => setText('signin-warning-left', `(${formatClock(leftS())} left)`); // seen, not said
  tick();
  clearInterval(expiryTick);
  expiryTick = setInterval(tick, 1000);
  warning.hidden = false;
  announce(`Your sign-in as ${who.name} ends in ${Math.round(leftS() / 60) >= 1
    ? `about ${Math.round(leftS() / 60)} minute${Math.round(leftS() / 60) === 1 ? '' : 's'}`
    : `${Math.round(leftS())} seconds`}, at ${api.wallClock(who.expiresAt)}: to extend it, press "extend sign-in" `
    + 'under the top bar and give the API key again.');
}

// -- views ------------------------------------------------------------------------------------------
function setupViews() {
  for (const tab of document.querySelectorAll('#views .tab')) {
    tab.addEventListener('click', () => showView(tab.dataset.view));
  }
}

function showView(name) {
  for (const tab of document.querySelectorAll('#views .tab')) {
    tab.classList.toggle('active', tab.dataset.view === name);
    tab.setAttribute('aria-pressed', String(tab.dataset.view === name)); // which view is shown, for a screen reader
  }
  $('live-view').hidden = name !== 'live';
  $('compare-view').hidden = name !== 'compare';
  if (name === 'compare') loadCompare();
  else { map?.requestDraw(); drawCharts(true); }
}

// -- live -------------------------------------------------------------------------------------------
async function boot() {
  setupKeyDialog();
  setupViews();
  setupControls();
  setupDetail();
  setupCharts();
  setupCompare();
  map = new SignalMap($('map'), { onSelect: selectIntersection });
  exposed.map = map;
  $('zoom-in').addEventListener('click', () => map.zoom(1.6));
  $('zoom-out').addEventListener('click', () => map.zoom(1 / 1.6));
  $('zoom-fit').addEventListener('click', () => map.fit());
  await start();
}

/** Live or stored, as the server says; refused for want of a key, it starts again once signed in. */
async function start() {
  // the server says whether a live run is attached (so a stored-runs server is not probed for one)
  if (document.body.dataset.live === 'false') return startStored();
  const network = api.get('/api/v1/network'); // beside the status, not after it: the map is what one waits for
  network.catch(() => {}); // its refusal is read in startLive
  try {
    state.status = await api.get('/api/v1/live/status');
  } catch (err) {
    if (err.status === 503) return startStored();
    waitForKey(err);
    return;
  }
  mapMessage('');
  state.runDir = state.status.run_dir;
  await startLive(network);
}

function waitForKey(err) {
  state.needsKey = err.status === 401;
  mapMessage(`${api.describeError(err)}${state.needsKey ? ' — sign in with a key that may read (API key… above)' : ''}`);
}

async function startLive(network) {
  state.mode = 'live';
  renderStatus(state.status);
  try {
    state.network = await network;
  } catch (err) {
    mapMessage(`map unavailable: ${api.describeError(err)}`);
    return;
  }
  state.configured = state.network.run?.controller_configured || null;
  map.setNetwork(state.network);
  map.requestDraw();
  fillSignalPick();
  startFeed();
  $('alerts-top').addEventListener('click', () => { // focus goes there too: the next Tab reaches its buttons
    $('alerts').scrollIntoView({ block: 'start' });
    $('alerts-heading').focus({ preventScroll: true });
  });
  $('run-notice-close').addEventListener('click', () => { $('run-notice').hidden = true; });
  $('overview-details').addEventListener('toggle', () => renderOverview());
  loadAlerts();
  loadModels();
  loadIntervals();
  loadSafety();
  loadChanges();
  startLiveTimers();
  exposed.ready = true;
}

/** The live data: the stream (or polling), and what each of its messages does to the page. */
function startFeed() {
  feed = new LiveFeed({
    onSnapshot,
    onAlert: a => { state.alerts.set(a.id, a); renderAlerts(); },
    onChange: c => {
      addChange(c);
      refreshStatus(true);
      if (SAFETY_KINDS.has(c?.kind) && c.result === 'applied') loadSafety(); // another operator's change too
    },
    onMode: (mode, detail) => {
      state.feedMode = { mode, detail };
      if (!state.stale) renderFeedMode();
    },
    onEnded: reason => {
      state.ended = true;
      showEnded(reason);
      setText('run-status', reason);
      // the run is over (and `signalwise live` stops serving): one last status, asked after the end (not
      // one already under way, which may say `running`), then only a light look for a new run (watchAfterEnd)
      Promise.resolve(refreshStatus(true)).finally(() => {
        for (const t of liveTimers.splice(0)) clearInterval(t);
        watchAfterEnd();
      });
    },
    // a read refused for want of a key: the pill says so while the page gets no data, not over a live stream
    onError: err => { if (err.status === 401) { state.readRefused = true; if (!state.stale) renderFeedMode(); } },
    onAlive: () => { // the server answers
      state.lastDataAt = Date.now();
      const refused = state.readRefused;
      state.readRefused = false;
      if (state.stale) markStale(false);
      else if (refused) renderFeedMode();
    },
  });
  exposed.feed = feed;
  feed.start();
}

function startLiveTimers() {
  liveTimers.push(setInterval(checkStale, 1000), setInterval(refreshStatus, 2000), setInterval(followRevision, 2000),
                  setInterval(() => { if (feed.mode !== 'stream') loadAlerts(); }, 5000),
                  setInterval(() => { if (state.selected && !document.hidden) scheduleDetailLogs(); }, 5000));
}

//: after the run's end, how often the page asks whether a new run serves behind the same address (a nightly
//: SIGTERM and restart): one status read, light enough for a wall screen left open all night
const AFTER_END_CHECK_MS = 20000;
let afterEndTimer = null;

/** After the end: a status read every AFTER_END_CHECK_MS; a new run directory there is followed as after a
 * crash and restart (the page clears the old run's, says so, and streams the new one). */
function watchAfterEnd() {
  clearInterval(afterEndTimer);
  afterEndTimer = setInterval(async () => {
    let st;
    try { st = await api.get('/api/v1/live/status'); } catch { return; } // stopped: nobody serves here yet
    if (!st.run_dir || st.run_dir === state.runDir || !st.running) return;
    clearInterval(afterEndTimer);
    afterEndTimer = null;
    resumeLive(st);
  }, AFTER_END_CHECK_MS);
}

/** A new run behind the address of one that ended: live again, on it. */
function resumeLive(st) {
  state.ended = false;
  state.status = st;
  state.lastDataAt = Date.now(); // the new run's silence is counted from now, not from the old run's end
  $('run-status').title = '';
  feed?.stop();
  newRun(st);
  renderStatus(st);
  startFeed();
  startLiveTimers();
}

function onSnapshot(s) {
  exposed.snapshotsReceived += 1;
  state.snapshot = s;
  state.lastDataAt = Date.now();
  if (state.stale) markStale(false);
  map.update(s);
  setText('sim-time', `t = ${formatClock(s.sim_time_s)}`);
  // a signal switched to another controller than the run's is named beside it: `actuated (J5: fixed)`; which
  // signals were switched is the status's word (switchedSignals), never a guess from the controllers' names
  setControllerLabel(controllerText(s.controller, switchedSignals(state.status)));
  const t = s.sim_time_s;
  const q = state.series.queue, f = state.series.fallback;
  if (q.length && t < q[q.length - 1][0]) { // a recovery rewound time (or a new run: the status says which)
    dropAfter(t);
    refreshStatus(true);
  }
  q.push([t, s.network_queue_veh ?? null]); // null: no approach's queue observed (a gap, not 0)
  f.push([t, s.fallback_share * 100]);
  trim(q, t); trim(f, t);
  if (s.interval && s.interval.end_s !== null) {
    // several intervals closed between two snapshots (a fast run, a loop running late, a stream that fell
    // silent): the ones in between come from the API's list, so the charts hold every interval the run has
    const gap = intervalGap(s.interval.end_s);
    addIntervals([s.interval]);
    if (gap) loadIntervals(gap);
  }
  noteControllerFaults(s.controller_faults);
  scheduleOverview();
  scheduleCharts();
  if (state.selected) renderDetail();
  if (!s.running) { if (!state.status || state.status.running) setText('run-status', 'ended'); } // not over `complete`
  else if (state.status && !state.status.running) refreshStatus(); // it started: the controls wake up now
}

//: the all-signals table is rebuilt at most this often, and only while it is open
const OVERVIEW_EVERY_MS = 1000;
let overviewTimer = null;

function scheduleOverview() {
  if (overviewTimer !== null || !$('overview-details').open) return;
  overviewTimer = setTimeout(() => { overviewTimer = null; renderOverview(); }, OVERVIEW_EVERY_MS);
}

/** Every signal in one table (the detail shows one at a time): phase, interval, time in phase, queue, and what
 * holds it (fallback, preemption, override, a switched controller); its id chooses it, as a click on the map. */
function renderOverview() {
  const s = state.snapshot;
  if (!s || !$('overview-details').open) return;
  const switched = Object.fromEntries(switchedSignals(state.status));
  const head = el('tr', {}, ...['signal', 'phase', 'interval', 'in phase', 'queue', 'holds'].map(h => el('th', { scope: 'col' }, h)));
  const rows = s.signals.map(v => {
    const known = Object.values(v.queue_veh || {}).filter(Number.isFinite);
    const flags = [v.fallback ? 'fallback' : '', v.preempted ? 'PREEMPTION' : '', v.override ? 'OVERRIDE' : '',
                   switched[v.intersection_id] ? `controller ${switched[v.intersection_id]}` : ''].filter(Boolean);
    return el('tr', {},
      el('td', {}, el('button', { type: 'button', class: 'small', title: `show ${v.intersection_id} in the detail`,
                                  onclick: () => selectIntersection(v.intersection_id) }, v.intersection_id)),
      el('td', {}, movementOf(v.intersection_id, v.phase_number)),
      el('td', {}, String(v.interval).replace(/_/g, '-')),
      el('td', {}, v.phase_elapsed_s === null || v.phase_elapsed_s === undefined ? '–' : `${v.phase_elapsed_s.toFixed(0)} s`),
      el('td', { title: known.length ? 'halting vehicles on its observed approaches' : 'no approach observed' },
        known.length ? String(known.reduce((a, b) => a + b, 0)) : 'no data'),
      el('td', { class: 'flags' }, flags.join(', ') || '–'));
  });
  $('overview-table').replaceChildren(head, ...rows);
}

/** The controllers' faults since the run began (a snapshot's or the status's `controller_faults`). Both read the
 * run's snapshots, so an answer that counts fewer decisions than the one shown is older: it is not shown. */
function noteControllerFaults(faults) {
  if (!faults || (state.faults && faults.decisions < state.faults.decisions)) return;
  state.faults = faults;
  renderControllerFaults();
}

//: the kinds of controller fault the live region has said for this run: each is said once, when its count
//: leaves 0 (the notice's counts grow with every snapshot: re-said, they would drown the rest)
const faultKindsSaid = new Set();

/** Under the header, in words, while the controllers' decide raised or the shield could not follow a proposal;
 * nothing while both counts are 0. Where to read each kind: controller_errors.csv in the run directory. */
function renderControllerFaults() {
  const f = state.faults;
  const errors = f?.errors || 0, invalid = f?.invalid_proposals || 0;
  announceControllerFaults({ errors, invalid });
  const notice = $('controller-faults-notice');
  notice.hidden = !errors && !invalid;
  if (notice.hidden) { setText('controller-faults-text', ''); return; }
  const count = (n, what) => `${n} ${what}${n === 1 ? '' : 's'}`;
  setText('controller-faults-text', `${count(errors, 'error')} raised by the controller's decide (the shield's `
    + `Webster fallback served in its place) and ${count(invalid, 'invalid proposal')} the shield could not follow `
    + `as given, of ${count(f.decisions, 'decision')} since the run began. controller_errors.csv in the run `
    + `directory (${runName(state.runDir)}) lists each kind with its count, signals, file and line.`);
  notice.title = state.runDir ? `run directory: ${state.runDir}` : '';
}

/** Say, once per run, each kind of controller fault whose count left 0: a short sentence, never the counts. */
function announceControllerFaults(counts) {
  if (!state.faults) { faultKindsSaid.clear(); return; } // a new run: its faults are said afresh
  const words = { errors: "the controller's decide raised an error", invalid: 'the shield could not follow a '
    + "controller's proposal" };
  const fresh = Object.keys(words).filter(kind => counts[kind] > 0 && !faultKindsSaid.has(kind));
  if (!fresh.length) return;
  fresh.forEach(kind => faultKindsSaid.add(kind));
  announce(`Controller faults: ${fresh.map(kind => words[kind]).join(', and ')}; the counts are under the top bar.`);
}

/** The signals a change switched to another controller than the run's, as the status says (`signal_controllers`:
 * signal -> spec; empty while no switch was made): `[[id, spec], ...]`. The one rule for "switched", used by the
 * header and the map alike. A snapshot's per-signal `controller` is the controller object's `name`
 * (`longest-queue` for `py:examples/longest_queue.py:make`), not a spec: comparing it with the run's spec would
 * call every signal of a `py:` controller switched. */
function switchedSignals(st) {
  return Object.entries(st?.signal_controllers || {}).filter(([, spec]) => spec && spec !== st.controller);
}

/** The header's controller: cut with an ellipsis where it is long (CSS), whole in its tooltip. */
function setControllerLabel(text) {
  setText('controller-label', text);
  $('controller-label').title = `controller in force: ${text}`;
}

/** The run's controller, and the signals that run another: `actuated (J5: fixed)`. */
function controllerText(run, others) {
  return others.length ? `${run} (${others.map(([id, spec]) => `${id}: ${spec}`).join(', ')})` : run;
}

/** A recovery rewound the run to `t`: what the charts hold from it on is gone (the run goes over it again);
 * the history before it stays. */
function dropAfter(t) {
  for (const points of [state.series.queue, state.series.fallback]) {
    const keep = points.filter(p => p[0] < t); // the snapshot at `t` itself is the new timeline's
    points.length = 0;
    points.push(...keep);
  }
  state.intervals = state.intervals.filter(i => i.end_s <= t);
}

/** Another run behind the same address (`signalwise live` started again): nothing of the run this page showed
 * may pass for the new one's. Its alerts, charts, changes and values in force are read afresh, the sign-in
 * (made for the run before, perhaps against another key store) is dropped, and the page says so. */
async function newRun(st) {
  const before = state.runDir;
  state.runDir = st.run_dir;
  exposed.newRuns += 1;
  state.alerts = new Map();
  alertsSaid.clear();
  state.ackResults.clear();
  state.series.queue.length = 0;
  state.series.fallback.length = 0;
  state.intervals = [];
  state.intervalS = null;
  state.changes = [];
  state.override = null;
  state.faults = null; // the new run's own, from its first snapshot
  renderControllerFaults();
  document.body.classList.remove('ended');
  mapMessage('');
  for (const id of ['control-result', 'override-result', 'timing-result', 'shield-result']) showResult(id, null, '');
  // a sign-in the new server already refused (a read reached it first) was this page's too: said the same way
  const signedIn = api.who() || api.refusedSignIn();
  if (api.who()) api.forget();
  api.clearRefused();
  setText('run-notice-text', `a new run started: ${runName(st.run_dir)} (${st.scenario}, ${st.controller}). The page `
    + `shows it from now on; what it showed of the run before (${runName(before)}) is cleared: alerts, charts, changes`
    + `${signedIn ? `; ${signedIn.name}'s sign-in was for that run: sign in again for the controls` : ''}.`);
  $('run-notice').hidden = false;
  renderAlerts();
  renderChanges();
  scheduleCharts();
  try { // another corridor, perhaps: its own map
    const network = await api.get('/api/v1/network');
    state.network = network;
    state.configured = network.run?.controller_configured || null;
    map.setNetwork(network);
    fillSignalPick();
    if (state.selected) {
      if (network.intersections.some(i => i.id === state.selected)) selectIntersection(state.selected);
      else { state.selected = null; map.select(null); $('detail-body').hidden = true; $('detail-hint').hidden = false; }
    }
  } catch (err) {
    mapMessage(`map unavailable: ${api.describeError(err)}`);
  }
  loadAlerts();
  loadIntervals();
  loadChanges();
  loadModels();
  loadSafety('all');
}

function runName(dir) { return dir ? String(dir).split('/').filter(Boolean).pop() : '–'; }

function renderFeedMode() {
  const { mode, detail } = state.feedMode;
  const pill = $('feed-mode');
  if (state.readRefused && mode !== 'stream' && mode !== 'ended') {
    pill.textContent = 'sign in to read';
    pill.title = 'the server refuses this page\'s reads without a key: sign in with a key that may read';
    pill.className = 'pill bad';
    return;
  }
  pill.textContent = mode === 'stream' ? 'stream' : mode === 'polling' ? 'polling 500 ms' : mode || '–';
  pill.title = detail;
  pill.className = `pill ${mode === 'stream' ? 'ok' : mode === 'polling' ? 'warn' : ''}`;
}

/** The run is over (`reason`: "the live run ended (complete)", as the stream's close says it): the map, the
 * detail and the charts show what it left, and look it. */
function showEnded(reason) {
  const at = state.snapshot ? formatClock(state.snapshot.sim_time_s) : '–';
  if (!document.body.classList.contains('ended')) announce(`${reason} at t = ${at}`);
  document.body.classList.add('ended');
  mapMessage(`${reason} at t = ${at}: the map shows its last state`);
  $('run-status').title = reason;
  if (state.selected) renderDetail();
}

/** No snapshot for STALE_AFTER_MS while the run goes (the network dropped, the server stopped answering): the
 * page greys the map and says how old what it shows is, rather than show the last states as current. */
function checkStale() {
  if (state.ended || state.lastDataAt === null || document.body.classList.contains('ended')) return;
  const age = Date.now() - state.lastDataAt;
  const st = state.status;
  const tickMs = st && st.speed ? 1000 * (st.step_length_s || 1) / st.speed : 0;
  if (age <= Math.max(STALE_AFTER_MS, 2.5 * tickMs)) return;
  const at = state.snapshot ? formatClock(state.snapshot.sim_time_s) : '–';
  markStale(true, `no data for ${Math.round(age / 1000)} s: the map shows the run as it was at t = ${at} (connection lost?)`);
}

function markStale(on, text = '') {
  const at = state.snapshot ? formatClock(state.snapshot.sim_time_s) : '–';
  if (on && !state.stale) announce(`no data from the server: the page shows the run as it was at t = ${at}`);
  else if (!on && state.stale) announce('data back: the page is live again');
  if (on && !state.stale) { // the lines break here: nothing is known of the time no snapshot came
    for (const points of [state.series.queue, state.series.fallback]) {
      if (points.length && points.at(-1)[1] !== null) points.push([points.at(-1)[0] + 0.001, null]); // after it: the CSV keeps the value
    }
  }
  state.stale = on;
  document.body.classList.toggle('stale', on);
  mapMessage(text);
  if (on) {
    const pill = $('run-status');
    pill.textContent = 'no data';
    pill.className = 'pill bad';
    pill.title = text;
    const feedPill = $('feed-mode'); // a stream that says nothing is no live stream
    feedPill.textContent = `${state.feedMode.mode || 'feed'}: silent`;
    feedPill.className = 'pill bad';
    feedPill.title = text;
  } else {
    $('run-status').title = '';
    renderFeedMode();
    if (state.status) renderStatus(state.status);
  }
  if (state.selected) renderDetail();
}

let statusAsked = null;
/** The run's status again (one request at a time: callers arriving meanwhile share it; `fresh`: one asked
 * after the call, as a change needs). */
async function refreshStatus(fresh = false) {
  if (state.mode !== 'live') return;
  if (fresh && statusAsked) await statusAsked;
  if (!statusAsked) {
    const askedAfterEnd = state.ended;
    statusAsked = api.get('/api/v1/live/status')
      // an answer to a read sent before the run's end says `running`: after the end it would undo the close reason
      .then(st => {
        if (!(askedAfterEnd || !state.ended)) return;
        if (state.runDir && st.run_dir && st.run_dir !== state.runDir) newRun(st);
        state.status = st;
        if (!state.stale) renderStatus(st);
      })
      .catch(() => { /* the next tick tries again */ })
      .finally(() => { statusAsked = null; });
  }
  return statusAsked;
}

function renderStatus(st) {
  setText('run-label', `${st.scenario} · ${st.field === 'sumo' ? 'SUMO' : 'feeds'} · speed ${st.speed ?? 'max'}`);
  const pill = $('run-status');
  pill.textContent = st.status;
  pill.className = `pill ${st.status === 'running' ? 'ok' : st.status.startsWith('failed') ? 'bad' : ''}`;
  if (/^(complete|stopped|failed)/.test(st.status)) showEnded(`the live run ended (${st.status})`); // opened after it, too
  // a controller switched at some signals only is theirs: the run's stays, and the label names the others
  setControllerLabel(controllerText(st.controller, switchedSignals(st)));
  map.setSwitched(Object.fromEntries(switchedSignals(st)));
  followOverride(st.overrides || {});
  noteControllerFaults(st.controller_faults);
  if (st.sim_time_s !== null && st.sim_time_s !== undefined) setText('sim-time', `t = ${formatClock(st.sim_time_s)}`);
  if (st.controller !== 'fixed') state.lastAdaptive = st.controller;
  const toggle = $('toggle-controller');
  const baseline = st.controller === 'fixed';
  toggle.disabled = !st.running;
  // nothing to operate once the run has ended: every control sleeps, not only the toggle
  for (const node of document.querySelectorAll(OPERATING_CONTROLS)) {
    if (node !== toggle) node.disabled = !st.running;
  }
  toggle.textContent = baseline ? 'baseline: fixed' : `adaptive: ${st.controller}`;
  toggle.className = `toggle ${baseline ? 'baseline' : 'adaptive'}`;
  toggle.title = baseline ? `switch to ${adaptiveSpec()}` : `${st.controller}: switch to the fixed-time baseline`;
  if (state.selected) renderDetail();
}

function adaptiveSpec() {
  if (state.configured && state.configured !== 'fixed') return state.configured;
  return state.lastAdaptive || 'max-pressure';
}

/** The history the delay and throughput charts start with (the last hour's intervals, 60 at most); then each
 * snapshot brings the interval closed last, and a gap before it is filled from here (`limit`: the intervals
 * missing, and the one before them). One read at a time: a gap seen meanwhile is read after it. */
let intervalsAsked = null;
let intervalsAgain = 0;
async function loadIntervals(limit = 60) {
  if (intervalsAsked) { intervalsAgain = Math.max(intervalsAgain, limit); return intervalsAsked; }
  const run = state.runDir;
  intervalsAsked = (async () => {
    try {
      const r = await api.get(`/api/v1/live/intervals?limit=${Math.min(60, Math.max(1, Math.ceil(limit)))}`);
      if (run !== state.runDir) return; // a new run meanwhile: this list is the old one's
      if (r.interval_s) state.intervalS = r.interval_s;
      addIntervals(r.intervals.filter(i => i.end_s !== null));
      scheduleCharts();
    } catch { /* the snapshots fill them as intervals close; the next gap asks again */ }
  })();
  await intervalsAsked;
  intervalsAsked = null;
  if (intervalsAgain) { const again = intervalsAgain; intervalsAgain = 0; loadIntervals(again); }
}

/** How many intervals to read to fill the gap between the newest interval held and one ending at `endS`: 0 when
 * there is none (the next interval, or one held already). Intervals are `interval_s` apart (the API says it;
 * until it has, the closest two held). */
function intervalGap(endS) {
  const held = state.intervals;
  if (!held.length) return 0;
  const latest = held[held.length - 1].end_s;
  let step = state.intervalS;
  if (!step) {
    for (let k = 1; k < held.length; k++) step = Math.min(step || Infinity, held[k].end_s - held[k - 1].end_s);
  }
  if (!step || !Number.isFinite(step) || endS <= latest + step * 1.5) return 0;
  return Math.round((endS - latest) / step) + 1;
}

function addIntervals(items) {
  // an interval read again is taken as read (a recovery ran it again): never a value the run no longer has
  const byEnd = new Map(state.intervals.map(i => [i.end_s, i]));
  let added = false;
  for (const i of items) {
    const had = byEnd.get(i.end_s);
    if (had && JSON.stringify(had) === JSON.stringify(i)) continue;
    byEnd.set(i.end_s, i);
    added = true;
  }
  if (!added) return;
  const all = [...byEnd.values()].sort((a, b) => a.end_s - b.end_s);
  const latest = all[all.length - 1].end_s;
  state.intervals = all.filter(i => i.end_s > latest - HOUR_S);
}

// -- charts -----------------------------------------------------------------------------------------
function setupCharts() {
  const opts = { xFormat: formatClock, xName: 'run_time_s', yMin: 0 };
  charts.delay = new Chart($('chart-delay'), { ...opts, empty: 'after the first interval' });
  charts.queue = new Chart($('chart-queue'), opts);
  charts.throughput = new Chart($('chart-throughput'), { ...opts, empty: 'after the first interval' });
  charts.fallback = new Chart($('chart-fallback'), { ...opts, yMax: 100 });
  for (const [name, chart] of Object.entries(charts)) addExport(chart.canvas.closest('figure'), chart, `live-${name}`);
}

const CHART_EVERY_MS = 500; // the charts redraw twice a second at most, whatever the snapshot rate
let chartTimer = null;
let chartsDrawnAt = 0;

function scheduleCharts() {
  state.chartsDirty = true;
  if (chartTimer !== null) return;
  chartTimer = setTimeout(() => { chartTimer = null; drawCharts(false); },
                          Math.max(0, CHART_EVERY_MS - (performance.now() - chartsDrawnAt)));
}

function drawCharts(force) {
  if (!force && (!state.chartsDirty || document.hidden || $('live-view').hidden)) return;
  state.chartsDirty = false;
  chartsDrawnAt = performance.now();
  charts.queue.opts.empty = state.series.queue.length ? 'no data: no queue observed' : 'no data yet';
  charts.queue.setSeries([{ name: 'queue (veh)', color: PALETTE[3], points: state.series.queue }]);
  charts.fallback.setSeries([{ name: 'fallback (%)', color: '#f07c00', points: state.series.fallback }]);
  charts.delay.opts.empty = delayEmptyText(state.intervals);
  charts.delay.setSeries([{ name: 'mean wait (s)', color: PALETTE[1], mode: 'points',
                            points: state.intervals.map(i => [i.end_s, i.mean_wait_s]) }]);
  charts.throughput.setSeries([{ name: 'veh/h', color: PALETTE[2], mode: 'points',
                                 points: state.intervals.map(i => [i.end_s, i.flow_vph]) }]);
  for (const chart of Object.values(charts)) chart.draw();
  labelCharts();
}

//: how often a live chart's name (its latest value in words, for a screen reader) may change: not on every draw
const CHART_LABEL_EVERY_MS = 3000;
let chartsLabelledAt = -Infinity;

/** Each live chart's canvas (role=img) named with its latest value: "network queue: 41 vehicles at t = 12:30". */
function labelCharts() {
  if (performance.now() - chartsLabelledAt < CHART_LABEL_EVERY_MS) return;
  chartsLabelledAt = performance.now();
  const last = points => points.filter(p => p[1] !== null && p[1] !== undefined).at(-1);
  const words = (name, points, value) => {
    const p = last(points);
    return p ? `${name}: ${value(p[1])} at t = ${formatClock(p[0])}` : `${name}: no value yet`;
  };
  const labels = {
    delay: words('delay proxy, mean wait', state.intervals.map(i => [i.end_s, i.mean_wait_s]), v => `${formatNumber(v)} s`),
    queue: words('network queue', state.series.queue, v => `${Math.round(v)} vehicles`),
    throughput: words('throughput', state.intervals.map(i => [i.end_s, i.flow_vph]), v => `${Math.round(v)} vehicles per hour`),
    fallback: words('fallback share', state.series.fallback, v => `${Math.round(v)} % of signals`),
  };
  for (const [name, label] of Object.entries(labels)) charts[name].canvas.setAttribute('aria-label', label);
}

/** What the delay chart says with no point: intervals closed without a wait (a run on detector feeds, which
 * carry counts and occupancy, no waits) are not "to come". */
function delayEmptyText(intervals) {
  if (!intervals.length) return 'after the first interval';
  return intervals.every(i => i.mean_wait_s === null || i.mean_wait_s === undefined)
    ? 'not measured: this run\'s detector feeds carry no waits' : 'after the first interval';
}

function addExport(figure, chart, name) {
  const bar = el('div', { class: 'tools' },
    el('button', { type: 'button', class: 'small', title: 'download as PNG', onclick: () => downloadPNG(chart.canvas, `${name}.png`) }, 'PNG'),
    el('button', { type: 'button', class: 'small', title: 'download the plotted data as CSV', onclick: () => downloadCSV(chart.toCSV(), `${name}.csv`) }, 'CSV'));
  figure.prepend(bar);
}

// -- alerts -----------------------------------------------------------------------------------------
async function loadAlerts() {
  try {
    const r = await api.get('/api/v1/live/alerts?limit=50');
    // the server's list, not merged into what the page held: an alert the run no longer has (a run before a
    // restart) is not kept active
    state.alerts = new Map([...r.history, ...r.active].map(a => [a.id, a]));
    renderAlerts();
  } catch { /* no alert engine, or not yet */ }
}

function renderAlerts() {
  const all = [...state.alerts.values()].sort((a, b) => (a.cleared_at_s === null ? 0 : 1) - (b.cleared_at_s === null ? 0 : 1)
    || b.raised_at_s - a.raised_at_s).slice(0, 50);
  const active = all.filter(a => a.cleared_at_s === null);
  const pill = $('alert-count');
  pill.textContent = String(active.length);
  // in the top bar too: with a signal selected, the alerts panel is below the detail panel, out of sight
  const top = $('alerts-top');
  top.hidden = !active.length;
  top.textContent = `${active.length} active alert${active.length === 1 ? '' : 's'}`;
  const list = $('alert-list');
  announceAlerts(all);
  // redrawn under the keyboard: focus stays on the alert it was on (its button), not lost to the page
  const focused = list.contains(document.activeElement) ? document.activeElement.closest('li')?.dataset.id : null;
  list.replaceChildren(...all.map(a => {
    const answer = state.ackResults.get(a.id);
    const cleared = a.cleared_at_s !== null;
    const every = alertSubjects(a);
    return el('li', { class: `${a.level} ${cleared ? 'cleared' : 'active'}`, 'data-id': a.id,
                      title: every.length ? `signals: ${every.join(', ')}` : null },
      el('b', {}, a.rule), ' ', alertText(a),
      // the message names three signals and counts the rest: the operator acts on every one
      every.length > SHOWN_SUBJECTS ? el('div', { class: 'subjects' }, `every signal: ${every.join(', ')}`) : null,
      el('div', { class: 'meta' },
        `${a.level} · raised ${when(a.raised_at_s, a.wall_time)}${raisedFor(a)}`
        + `${cleared ? ` · cleared ${when(a.cleared_at_s, a.cleared_wall_time)}` : ''}`,
        a.acknowledged_by ? ` · acknowledged by ${a.acknowledged_by}` : ' ',
        a.acknowledged_by || cleared ? null
          : el('button', { type: 'button', class: 'small ack', onclick: () => acknowledge(a.id) }, 'acknowledge')),
      answer ? el('div', { class: `result ack-result ${answer.ok ? 'ok' : 'refused'}`, title: answer.detail || '' }, answer.text) : null);
  }));
  if (!all.length) list.replaceChildren(el('li', { class: 'info' }, 'no alerts'));
  if (focused) list.querySelector(`li[data-id="${CSS.escape(focused)}"] button`)?.focus();
}

//: alert id -> 'active' | 'cleared', as the live region last said it (an alert is announced once per change)
const alertsSaid = new Map();

/** A new or cleared alert, said once: "warning alert: queue_long at J2, J3". The first list read says the alerts
 * already up when the page opens; an alert first seen cleared is not said. */
function announceAlerts(all) {
  const said = [];
  for (const a of all) {
    const now = a.cleared_at_s === null ? 'active' : 'cleared';
    const before = alertsSaid.get(a.id);
    if (before === now) continue;
    alertsSaid.set(a.id, now);
    const subjects = alertSubjects(a);
    const at = subjects.length ? ` at ${subjects.slice(0, SHOWN_SUBJECTS).join(', ')}`
      + `${subjects.length > SHOWN_SUBJECTS ? ` and ${subjects.length - SHOWN_SUBJECTS} more` : ''}` : '';
    if (now === 'active') said.push(`${a.level} alert: ${a.rule}${at}`);
    else if (before === 'active') said.push(`alert cleared: ${a.rule}${at}`);
  }
  if (said.length) announce(said.join('; '));
}

//: how many signals an alert's message names before "and N more" (runtime/live/alerts.py SHOWN_SUBJECTS)
const SHOWN_SUBJECTS = 3;

/** The signals an alert names now (`now_subjects`, while it is up), else those it was raised for. */
function alertSubjects(a) {
  return [...(a.cleared_at_s === null && a.now_subjects ? a.now_subjects : a.subjects || [])];
}

/** An alert's message as it reads now (`now_message`: the signals it names follow the figure while it is up;
 * `message` is the raise's), without its rule's name in front (the rule is written just before it). */
function alertText(a) {
  const text = String(a.now_message || a.message || '');
  return wallTimes(runTimes(text.startsWith(`${a.rule}: `) ? text.slice(a.rule.length + 2) : text));
}

/** The ISO 8601 instants in a server's text (`last seen alive at 2026-11-29T23:14:22.790+00:00`) as the page writes
 * every wall-clock time: the browser's local time of day, `23:14:22 wall clock` (with the date when not today). */
function wallTimes(text) {
  return String(text).replace(/\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?/g, iso => {
    const local = localDateTime(iso);
    const today = localDateTime(new Date().toISOString()).slice(0, 10);
    return `${local.slice(0, 10) === today ? local.slice(11) : local} wall clock`;
  });
}

/** What an alert named when it was raised, when that is no longer what it names: ` · raised for J5`. */
function raisedFor(a) {
  const then = (a.subjects || []).join(', ');
  const now = (a.now_subjects || a.subjects || []).join(', ');
  return a.now_message && then !== now ? ` · raised for ${then || 'none'}, changed at t = ${formatClock(a.now_since_s)}` : '';
}

/** An ISO 8601 instant (the API writes them in UTC, `Z`) as the browser's local date and time, `YYYY-MM-DD HH:MM:SS`. */
function localDateTime(iso) {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return String(iso).slice(0, 19).replace('T', ' ');
  const two = n => String(n).padStart(2, '0');
  return `${t.getFullYear()}-${two(t.getMonth() + 1)}-${two(t.getDate())} `
    + `${two(t.getHours())}:${two(t.getMinutes())}:${two(t.getSeconds())}`;
}

/** When in the run (run time, m:ss) and on the wall clock (local time of day of an ISO 8601 instant). */
function when(runS, iso) {
  const wall = iso ? `${localDateTime(iso).slice(11)} wall clock` : '';
  if (runS === null || runS === undefined) return wall || '–';
  return `at t = ${formatClock(runS)}${wall ? ` (${wall})` : ''}`;
}

/** An acknowledgement's answer goes with its alert, not under the controls, far from it. */
async function acknowledge(id) {
  try {
    const a = await api.post(`/api/v1/live/alerts/${encodeURIComponent(id)}/ack`);
    state.alerts.set(a.id, a);
    state.ackResults.set(a.id, { ok: true, text: `acknowledged by ${a.acknowledged_by}` });
  } catch (err) {
    state.ackResults.set(id, { ok: false, text: `acknowledge: ${api.describeError(err)}`, detail: api.errorDetail(err) });
    if (err.status === 404) await loadAlerts(); // the run has no such alert (any more): its list, as it has it
  }
  const ackable = () => [...$('alert-list').querySelectorAll('button.ack')].map(b => [b.closest('li').dataset.id, b]);
  const before = ackable().map(([alertId]) => alertId);
  renderAlerts();
  // focus stays in the list: on this alert's button when it is still there (refused), else on the next alert's
  // acknowledge, else on the Alerts heading (never lost to the page)
  const after = new Map(ackable());
  const next = after.get(id) || before.slice(before.indexOf(id) + 1).map(i => after.get(i)).find(Boolean)
    || after.values().next().value;
  (next || $('alerts-heading')).focus();
}

// -- changes: every operator's, as the run logs them ----------------------------------------------------
async function loadChanges() {
  try {
    const r = await api.get(`/api/v1/live/changes?limit=${MAX_CHANGES}`);
    state.changes = r.slice().reverse();
    renderChanges();
  } catch { /* the stream brings the next ones */ }
}

function addChange(c) {
  if (!c) return;
  state.changes.unshift(c);
  state.changes.length = Math.min(state.changes.length, MAX_CHANGES);
  renderChanges();
  const ov = state.override;
  if (ov && !ov.done && /^override_(served|expired)$/.test(c.kind) && c.payload?.intersection_id === ov.id) {
    overrideEnded(`${runTimes(c.payload.override || 'the override')}: ended at t = ${formatClock(c.sim_time_s)}`
      + ` (${c.kind.replace('_', ' ')}${c.reason ? `: ${runTimes(c.reason)}` : ''})`);
  }
}

function renderChanges() {
  const list = $('change-list');
  list.replaceChildren(...(state.changes.length ? state.changes.map(c => el('li', {
    class: c.result === 'refused' ? 'refused' : '',
    title: `${c.at ? `${localDateTime(c.at)} wall clock` : ''}${c.reason ? ` · ${runTimes(c.reason)}` : ''}`,
  }, `${c.sim_time_s === null || c.sim_time_s === undefined ? '' : `t = ${formatClock(c.sim_time_s)} `}`
     + `${c.replayed ? `${c.made_by} (earlier run, applied again)` : c.who}: ${describeChange(c)}: ${c.result}`))
    : [el('li', { class: 'note' }, 'none yet')]));
}

function describeChange(c) {
  const p = c.payload || {};
  // a request refused before it became a change: its route and body, not a change's fields
  if (typeof p.request === 'string') return `${p.request} (refused before it became a change)`;
  // the names and units the forms give them (`max data age 0.1 s`), not the API's keys
  // a signal's own `phases` (and a whole change's `per_intersection`) phase by phase: `phase 2 maximum green 35 s`
  const values = o => [...Object.entries(o || {}).filter(([k]) => k !== 'per_intersection' && k !== 'phases').map(([k, v]) => {
    const f = [...TIMING_FIELDS, ...SHIELD_FIELDS].find(x => x.key === k);
    if (v === null) return `${f?.label || k} derived`;
    return `${f?.label || k} ${v}${f?.unit ? ` ${f.unit}` : ''}`;
  }), ...phaseValues(o?.phases),
  ...Object.entries(o?.per_intersection || {}).map(([id, own]) => `${id}: ${values(own) || 'the defaults'}`)].join(', ');
  switch (c.kind) {
    case 'controller': return `controller → ${p.controller}${p.intersections ? ` at ${p.intersections.join(', ')}` : ''}`;
    case 'override': return `${p.action} ${phaseName(p.intersection_id, p.phase_number)} at ${p.intersection_id} for ${p.duration_s} simulated s`;
    case 'cancel_override': return `end override at ${p.intersection_id}`;
    case 'override_served': case 'override_expired': return `${c.kind.replace('_', ' ')} at ${p.intersection_id}`;
    case 'timing': return `timing (every signal): ${values(p.timing)}`;
    case 'signal_timing': return p.timing ? `timing of ${p.intersection_id}: ${values(p.timing)}` : `timing of ${p.intersection_id}: back to the defaults`;
    case 'shield': return `shield: ${values(p.shield)}`;
    case 'alerts': return `alert rules (${(p.rules || []).length} of the operator's)`;
    default: return `${c.kind}${Object.keys(p).length ? ` ${JSON.stringify(p).slice(0, 80)}` : ''}`;
  }
}

/** For a change the run keeps: that it outlives this run, and how to take it back. */
function lastingNote(kind) {
  if (!LASTING_KINDS.has(kind)) return '';
  const file = state.status?.lasting_changes_file;
  return `; kept for later runs of this corridor${file ? ` (${file})` : ''}: a later \`signalwise live\` of it applies`
    + ' it again; undo it with another change, or remove the file before the next start';
}

// -- controls ---------------------------------------------------------------------------------------
function setupControls() {
  setupSafety();
  $('toggle-controller').addEventListener('click', () => {
    const target = state.status?.controller === 'fixed' ? adaptiveSpec() : 'fixed';
    switchController(target);
  });
  $('apply-controller').addEventListener('click', () => {
    const spec = $('controller-spec').value.trim();
    if (spec) switchController(spec);
  });
  $('deploy-model').addEventListener('click', async () => {
    const version = $('model-version').value;
    if (!version) { showResult('control-result', false, 'choose a registered version first (signalwise models add)'); return; }
    await change(`deploy ${version}`, () => api.post('/api/v1/live/deploy', { version }));
  });
  $('rollback-model').addEventListener('click', () => change('rollback', () => api.post('/api/v1/live/rollback', {})));
}

function switchController(spec) {
  return change(`controller → ${spec}`, () => api.post('/api/v1/live/controller', { controller: spec }));
}

async function change(what, fn, resultId = 'control-result') {
  showResult(resultId, true, `${what}: sending…`);
  try {
    const entry = await fn();
    showResult(resultId, true, `${what}: ${entry?.result || 'done'}${entry?.who ? ` (by ${entry.who})` : ''}`
      + `${entry?.result === 'applied' ? lastingNote(entry.kind) : ''}`);
    await refreshStatus(true);
    return entry;
  } catch (err) {
    showResult(resultId, false, `${what}: ${api.describeError(err)}`, api.errorDetail(err));
    return null;
  }
}

async function loadModels() {
  try {
    const r = await api.get('/api/v1/live/models');
    const sel = $('model-version');
    const active = new Set(Object.values(r.active || {}));
    sel.replaceChildren(el('option', { value: '' }, r.versions.length ? 'version…' : 'no model registered'),
      ...r.versions.map(v => el('option', { value: v.version },
        `${v.version}${active.has(v.version) ? ' (active)' : ''} · ${v.scenario || '?'} · ${v.episodes} ep.`)));
    sel.title = `registry: ${r.registry}${r.error ? ` (${r.error})` : ''}`;
  } catch { /* keep the placeholder */ }
}

// -- timing and shield ------------------------------------------------------------------------------
// The safety timing and the shield's thresholds in force (GET /api/v1/live/config), and a change of them
// (PUT /api/v1/live/config/timing | shield; one signal's own timing: PUT|DELETE
// /api/v1/live/config/timing/intersections/{id}, which the server merges into the map in force, so an edit never
// resends, and so never erases, another signal's; every timing change carries the revision it was made from, and
// one made from a revision no longer in force is refused with 409, nothing applied). The inputs' bounds are the
// server's (GET /api/v1/live/config `limits`: the run configuration's, narrowed by the timing profile's), so the
// form offers no value the server refuses; the server still validates every change (minimum green against
// maximum green, ...) and its reason is shown.
const TIMING_FIELDS = [
  { key: 'min_green_s', label: 'minimum green', unit: 's' },
  { key: 'max_green_s', label: 'maximum green', unit: 's' },
  { key: 'yellow_s', label: 'yellow', unit: 's', derived: 'each phase its own: ITE, from its approaches\' speed limits' },
  { key: 'all_red_s', label: 'all-red', unit: 's', derived: 'each phase its own: ITE, from its path through the junction' },
  { key: 'ped_walk_s', label: 'pedestrian walk', unit: 's' },
  { key: 'ped_clearance_s', label: 'pedestrian clearance', unit: 's', derived: 'the longest crossing / the walking speed, rounded up to 0.1 s' },
  { key: 'ped_walking_speed_mps', label: 'pedestrian walking speed', unit: 'm/s' },
  { key: 'cycle_min_s', label: 'cycle minimum', unit: 's' },
  { key: 'cycle_max_s', label: 'cycle maximum', unit: 's' },
  { key: 'cycle_calls', label: 'cycle bound from calls', bool: true, everySignalOnly: true },
];
const SHIELD_FIELDS = [
  { key: 'confidence_threshold', label: 'confidence threshold', unit: '' },
  { key: 'max_observation_age_s', label: 'max data age', unit: 's' },
  { key: 'preempt_distance_m', label: 'preemption distance', unit: 'm' },
  { key: 'preempt_max_dwell_s', label: 'preemption max dwell', unit: 's' },
  { key: 'preempt_ends_walk', label: 'preemption ends a walk', bool: true },
  { key: 'preempt', label: 'preemption on', bool: true },
];
const SAFETY_KINDS = new Set(['timing', 'signal_timing', 'shield']);
const safety = { config: null }; // the latest GET /api/v1/live/config
exposed.safety = safety;

/** A field's row: its label, the value in force, its input. */
function safetyRow(part, f) {
  const input = f.bool
    ? el('input', { type: 'checkbox', id: `${part}-${f.key}`, 'data-key': f.key })
    : el('input', { type: 'number', id: `${part}-${f.key}`, 'data-key': f.key, step: 'any',
                    required: !f.derived, placeholder: f.derived ? 'derived' : undefined,
                    title: f.derived ? `empty: ${f.derived}` : undefined,
                    oninput: e => checkAbove(e.target) });
  return el('tr', { id: `${part}-row-${f.key}` },
    el('th', {}, el('label', { for: `${part}-${f.key}` }, f.label, f.unit ? ` (${f.unit})` : '')),
    el('td', { class: 'now', id: `${part}-now-${f.key}` }, '–'), el('td', {}, input));
}

const UNIT_SUFFIXES = [['_mps', 'm/s'], ['_s', 's'], ['_m', 'm'], ['_pct', '%']];
const KEY_WORDS = { min: 'minimum', max: 'maximum', ped: 'pedestrian', preempt: 'preemption' };
/** A field for a setting the server bounds (`limits`) that the lists above do not name: a setting the server
 * gained is shown and editable without a change here; its label is its key in words, its unit its suffix's. */
function fieldFromKey(key) {
  const [suffix, unit] = UNIT_SUFFIXES.find(([end]) => key.endsWith(end)) || ['', ''];
  const words = key.slice(0, key.length - suffix.length).split('_').map(w => KEY_WORDS[w] || w).join(' ');
  return { key, label: words, unit };
}

/** Every setting of `part` the server gives bounds for gets a field (added once, after the named ones). */
function addBoundedFields(part, fields, bounded) {
  for (const key of Object.keys(bounded || {})) {
    if (fields.some(f => f.key === key)) continue;
    const f = fieldFromKey(key);
    fields.push(f);
    $(`${part}-fields`).append(safetyRow(part, f));
  }
}

function setupSafety() {
  for (const [part, fields] of [['timing', TIMING_FIELDS], ['shield', SHIELD_FIELDS]]) {
    $(`${part}-fields`).replaceChildren(...fields.map(f => safetyRow(part, f)));
    $(`${part}-form`).addEventListener('submit', e => { e.preventDefault(); sendSafety(part); });
    // the answer to the last change goes when a new edit starts, or the browser refuses one (a value out of
    // bounds): an old "applied" under a refused edit would read as its answer
    $(`${part}-form`).addEventListener('input', () => { clearAnswer(`${part}-result`); clearRefusedFields(part); });
    $(`${part}-form`).addEventListener('invalid', () => clearAnswer(`${part}-result`), true);
    $(`${part}-reset`).addEventListener('click', () => { fillSafety(part, true); setText(`${part}-result`, ''); });
  }
  // a signal's phases, each its own minimum and maximum green, in the same table (shown for one signal only)
  $('timing-fields').after(el('tbody', { id: 'timing-phases', hidden: true }));
  $('timing-revision').before(el('p', { id: 'timing-pending', class: 'hint pending' }));
  $('timing-form').addEventListener('input', () => showPending());
  $('timing-scope').addEventListener('change', () => { fillSafety('timing', true); setText('timing-result', ''); });
  $('timing-own-remove').addEventListener('click', () => removeOwnTiming());
  $('safety-details').addEventListener('toggle', () => { if ($('safety-details').open) loadSafety(); });
}

function clearAnswer(resultId) {
  if ($(resultId).textContent && !$(resultId).textContent.endsWith('sending…')) showResult(resultId, null, '');
}

let safetyAsked = null;
/** The values in force again (one request at a time); the fields the operator has not touched follow them. */
async function loadSafety(force = null) { // force: 'timing' | 'shield', whose fields all take the values in force
  if (state.mode !== 'live' || state.ended) return;
  if (safetyAsked) { await safetyAsked; if (!force) return; }
  safetyAsked = api.get('/api/v1/live/config')
    .then(cfg => { safety.config = cfg; applyLimits(cfg.limits || {}); renderSafety(force); })
    .catch(err => showResult('timing-result', false, `values in force: ${api.describeError(err)}`, api.errorDetail(err)))
    .finally(() => { safetyAsked = null; });
  return safetyAsked;
}

/** The server's bounds on each field (`min`, `max`; `above`: a value must exceed it, which an input's `min`
 * cannot say, so the field says it itself). */
function applyLimits(limits) {
  for (const [part, fields] of [['timing', TIMING_FIELDS], ['shield', SHIELD_FIELDS]]) {
    addBoundedFields(part, fields, limits[part]);
    for (const f of fields) {
      if (f.bool) continue;
      const input = $(`${part}-${f.key}`), b = limits[part]?.[f.key] || {};
      for (const [attr, value] of [['min', b.min ?? b.above], ['max', b.max]]) {
        if (value === undefined) input.removeAttribute(attr); else input.setAttribute(attr, String(value));
      }
      if (b.above === undefined) delete input.dataset.above; else input.dataset.above = String(b.above);
      checkAbove(input);
    }
  }
}

function checkAbove(input) {
  const above = input.dataset.above;
  const bad = above !== undefined && input.value.trim() !== '' && !(Number(input.value) > Number(above));
  input.setCustomValidity(bad ? `must be more than ${above}` : '');
}

/** While a timing change waits for some signals' next green, follow them (only while the panel is open). */
function followRevision() {
  const cfg = safety.config;
  if (!cfg || !$('safety-details').open || document.hidden) return;
  if (Object.values(cfg.signal_timing_revisions).some(r => r < cfg.timing_revision)) loadSafety();
}

/** The timing in force for the scope chosen: the defaults, or one signal's (the defaults and its own). */
function timingInForce(scope) {
  const t = safety.config.timing;
  const own = scope ? t.per_intersection?.[scope] || {} : {};
  return { values: { ...t, ...own }, own };
}

// -- a signal's phases: each phase's own minimum and maximum green (`timing.per_intersection.<id>.phases.<n>`, n
// the phase number as the event log has it), the rest of its values the signal's. An empty field: the phase has
// none of its own and runs the signal's (its placeholder). The passage (`controller_options.passage_s`) is the
// controller's: shown where the controller in force times one (GET /api/v1/live/config `passage_s`), changed
// with the controller.
const PHASE_FIELDS = TIMING_FIELDS.filter(f => f.key === 'min_green_s' || f.key === 'max_green_s');

/** The phases of signal `id`: [{number, label}], from the network, else as many as the run's config lists. */
function signalPhases(id) {
  const inter = state.network?.intersections.find(i => i.id === id);
  if (inter?.phases?.length) return inter.phases.map(p => ({ number: p.number, label: p.label || `phase ${p.number}` }));
  const n = safety.config?.derived?.[id]?.yellow_s?.length || 0;
  return Array.from({ length: n }, (_, i) => ({ number: i + 1, label: `phase ${i + 1}` }));
}

function phaseInputId(number, key) { return `timing-phase-${number}-${key}`; }

/** A signal's phase values as the run holds them: the phase's own (or undefined), the signal's, what it runs. */
function phaseInForce(scope, number, key) {
  const own = safety.config.timing.per_intersection?.[scope]?.phases?.[number]?.[key];
  const signal = timingInForce(scope).values[key];
  const runs = safety.config.derived?.[scope]?.[key]?.[number - 1];
  return { own, signal, value: own ?? signal, runs };
}

/** The chosen signal's phase rows (built when the signal or its phases change), filled from the values in force. */
function fillPhases(scope, force) {
  const body = $('timing-phases');
  body.hidden = !scope;
  if (!scope) { body.replaceChildren(); delete body.dataset.scope; return; }
  const phases = signalPhases(scope), passages = safety.config.passage_s?.[scope];
  const shape = JSON.stringify([scope, phases, Boolean(passages)]); // rebuilt when the network names the phases
  if (body.dataset.scope !== shape) {
    force = true;
    body.dataset.scope = shape;
    body.replaceChildren(...phases.flatMap(p => [
      el('tr', { class: 'phase-head' }, el('th', { colspan: 3, scope: 'colgroup' }, `${scope} ${p.label}`)),
      ...PHASE_FIELDS.map(f => el('tr', {},
        el('th', {}, el('label', { for: phaseInputId(p.number, f.key) },
                        el('span', { class: 'visually-hidden' }, `phase ${p.number} `), `${f.label} (${f.unit})`)),
        el('td', { class: 'now', id: `timing-phase-now-${p.number}-${f.key}` }, '–'),
        el('td', {}, el('input', { type: 'number', id: phaseInputId(p.number, f.key), step: 'any',
                                   'data-phase': p.number, 'data-key': f.key, oninput: e => checkAbove(e.target) })))),
      ...(passages ? [el('tr', {}, el('th', {}, el('span', { class: 'visually-hidden' }, `phase ${p.number} `), 'passage (s)'),
        el('td', { class: 'now', id: `timing-phase-now-${p.number}-passage_s`,
                   title: 'the controller\'s (controller_options.passage_s): changed with the controller' },
           passages[p.number - 1] === undefined ? '–' : `${plainNumber(passages[p.number - 1])} s`),
        el('td', { class: 'note' }, 'controller'))] : []),
    ]));
  }
  for (const p of phases) {
    for (const f of PHASE_FIELDS) {
      const { own, signal, runs } = phaseInForce(scope, p.number, f.key);
      const now = $(`timing-phase-now-${p.number}-${f.key}`);
      const configured = own ?? signal;
      now.textContent = `${plainNumber(configured)} s${own === undefined ? ' (the signal\'s)' : ''}`
        + `${runs !== undefined && runs !== configured ? `, runs ${plainNumber(runs)} s` : ''}`;
      now.classList.toggle('own', own !== undefined);
      now.title = runs !== undefined && runs !== configured
        ? 'what the phase runs now: a phase serving a crosswalk gets at least walk + pedestrian clearance' : '';
      const input = $(phaseInputId(p.number, f.key)), signalInput = $(`timing-${f.key}`);
      for (const attr of ['min', 'max']) { // the signal's bounds, which the server holds each phase to
        if (signalInput.hasAttribute(attr)) input.setAttribute(attr, signalInput.getAttribute(attr)); else input.removeAttribute(attr);
      }
      if (signalInput.dataset.above === undefined) delete input.dataset.above; else input.dataset.above = signalInput.dataset.above;
      input.placeholder = plainNumber(signal); // empty: the signal's value
      input.title = `empty: the signal's (${plainNumber(signal)} ${f.unit})`;
      if (force || input.dataset.filled === undefined || input.value === input.dataset.filled) {
        input.value = inputText(f, own);
        input.dataset.filled = input.value;
      }
      checkAbove(input);
    }
  }
  showPending();
}

/** The phase fields that differ from the phase's own values in force: {number: {key: seconds | null}}, null: the
 * phase's own value removed (it runs the signal's). */
function editedPhases(scope) {
  const edited = {};
  if (!scope) return edited;
  for (const input of $('timing-phases').querySelectorAll('input[data-phase]')) {
    const { phase, key } = input.dataset;
    const value = input.value.trim() === '' ? null : Number(input.value);
    const own = phaseInForce(scope, Number(phase), key).own ?? null;
    if (value !== own) (edited[phase] ||= {})[key] = value;
  }
  return edited;
}

/** The signal's own `phases` with the edits: a value removed goes, and a phase left with none goes. */
function phasesAfter(ownPhases, edits) {
  const out = Object.fromEntries(Object.entries(ownPhases || {}).map(([n, v]) => [n, { ...v }]));
  for (const [n, values] of Object.entries(edits)) {
    const phase = out[n] || {};
    for (const [k, v] of Object.entries(values)) { if (v === null) delete phase[k]; else phase[k] = v; }
    if (Object.keys(phase).length) out[n] = phase; else delete out[n];
  }
  return out;
}

/** The phase edits in words, from the values in force to the new: `phase 2 maximum green 40 → 35 s`. */
function phaseEditWords(scope, edits) {
  return Object.entries(edits).flatMap(([n, values]) => Object.entries(values).map(([k, v]) => {
    const f = PHASE_FIELDS.find(x => x.key === k), was = phaseInForce(scope, Number(n), k);
    const to = v === null ? `the signal's ${plainNumber(was.signal)}` : plainNumber(v);
    return `phase ${n} ${f.label} ${plainNumber(was.value)} → ${to} ${f.unit}`;
  }));
}

/** A phase's own values as the change log gives them: `phase 2 maximum green 35 s`. */
function phaseValues(phases) {
  return Object.entries(phases || {}).flatMap(([n, values]) => Object.entries(values || {}).map(([k, v]) => {
    const f = PHASE_FIELDS.find(x => x.key === k);
    return `phase ${n} ${f?.label || k} ${v}${f ? ` ${f.unit}` : ''}`;
  }));
}

/** What `apply timing` would change, before it is sent: the chosen signal's phase edits, from → to. */
function showPending() {
  if (!safety.config) return;
  const scope = $('timing-scope').value;
  const words = scope ? phaseEditWords(scope, editedPhases(scope)) : [];
  setText('timing-pending', words.length ? `will change: ${words.map(w => `${scope} ${w}`).join('; ')}` : '');
}

/** A setting as sent and stored (60, 0.5, 86400): no rounding, it is a rule, not a measurement. */
function plainNumber(v) { return v === null || v === undefined ? '–' : String(v); }

function formatSetting(f, value, scope = null) {
  if (f.bool) return value ? 'yes' : 'no';
  if (value === null || value === undefined) return derivedInForce(f, scope);
  return `${plainNumber(value)}${f.unit ? ` ${f.unit}` : ''}`;
}

/** A derived clearance with the numbers the phases run (one signal's, or every signal's range). */
function derivedInForce(f, scope) {
  const derived = safety.config?.derived || {};
  const values = Object.entries(derived).filter(([id]) => !scope || id === scope).flatMap(([, d]) => d[f.key] || []);
  if (!values.length) return 'derived';
  const lo = Math.min(...values), hi = Math.max(...values);
  return `derived: ${lo === hi ? plainNumber(lo) : `${plainNumber(lo)}–${plainNumber(hi)}`} s${lo === hi ? '' : ' by phase'}`;
}

function inputText(f, value) {
  if (f.bool) return value ? 'true' : 'false';
  return value === null || value === undefined ? '' : String(value);
}

function renderSafety(force) {
  const cfg = safety.config;
  const scopeSel = $('timing-scope');
  const signals = Object.keys(cfg.signal_timing_revisions);
  if (scopeSel.options.length !== signals.length + 1) {
    const chosen = scopeSel.value;
    scopeSel.replaceChildren(el('option', { value: '' }, 'every signal (defaults)'),
      ...signals.map(id => el('option', { value: id }, id)));
    scopeSel.value = signals.includes(chosen) ? chosen : '';
  }
  for (const option of [...scopeSel.options].slice(1)) {
    const text = `${option.value} only${cfg.timing.per_intersection?.[option.value] ? ' (has its own values)' : ''}`;
    if (option.textContent !== text) option.textContent = text;
  }
  fillSafety('timing', force === 'timing' || force === 'all');
  fillSafety('shield', force === 'shield' || force === 'all');
  const t = cfg.timing, sh = cfg.shield;
  setText('safety-summary', `green ${plainNumber(t.min_green_s)}–${plainNumber(t.max_green_s)} s · cycle `
    + `${plainNumber(t.cycle_min_s)}–${plainNumber(t.cycle_max_s)} s · confidence ${plainNumber(sh.confidence_threshold)}`
    + ` · data age ${plainNumber(sh.max_observation_age_s)} s · preemption ${plainNumber(sh.preempt_distance_m)} m`);
  const waiting = Object.entries(cfg.signal_timing_revisions).filter(([, r]) => r < cfg.timing_revision).map(([id]) => id);
  setText('timing-revision', `profile ${t.profile}; ` + (cfg.timing_revision === 0
    ? 'the timing the run started with (no change yet)'
    : `timing revision ${cfg.timing_revision}: ${!waiting.length ? 'every signal runs it'
      : waiting.length === signals.length ? 'each signal takes it at its next green'
      : `${waiting.join(', ')} take${waiting.length === 1 ? 's' : ''} it at the next green, the others run it`}`));
}

/** The values in force beside each field; a field the operator has not edited (or every one, `force`) takes them. */
function fillSafety(part, force) {
  if (!safety.config) return;
  const scope = part === 'timing' ? $('timing-scope').value : '';
  const { values, own } = part === 'timing' ? timingInForce(scope) : { values: safety.config.shield, own: {} };
  if (part === 'timing') { $('timing-own-remove').hidden = !Object.keys(own).length; fillPhases(scope, force); }
  for (const f of part === 'timing' ? TIMING_FIELDS : SHIELD_FIELDS) {
    $(`${part}-row-${f.key}`).hidden = Boolean(scope && f.everySignalOnly);
    const now = $(`${part}-now-${f.key}`);
    now.textContent = formatSetting(f, values[f.key], scope);
    now.classList.toggle('own', f.key in own);
    now.title = f.key in own ? `${scope}'s own (every signal: ${formatSetting(f, safety.config.timing[f.key])})`
      : values[f.key] === null && f.derived ? f.derived : '';
    const input = $(`${part}-${f.key}`);
    const shown = f.bool ? String(input.checked) : input.value;
    if (force || input.dataset.filled === undefined || shown === input.dataset.filled) {
      const text = inputText(f, values[f.key]);
      if (f.bool) input.checked = text === 'true'; else input.value = text;
      input.dataset.filled = text;
    }
  }
}

/** The fields that differ from the values in force: {key: value} (an emptied derived field is null). */
function editedSettings(part) {
  const scope = part === 'timing' ? $('timing-scope').value : '';
  const { values } = part === 'timing' ? timingInForce(scope) : { values: safety.config.shield };
  const edited = {};
  for (const f of part === 'timing' ? TIMING_FIELDS : SHIELD_FIELDS) {
    if (scope && f.everySignalOnly) continue;
    const input = $(`${part}-${f.key}`);
    const value = f.bool ? input.checked : input.value.trim() === '' ? null : Number(input.value);
    const inForce = values[f.key] ?? null;
    if (value !== inForce) edited[f.key] = value;
  }
  return edited;
}

async function sendSafety(part) {
  const resultId = `${part}-result`;
  if (!safety.config) await loadSafety();
  if (!safety.config) return;
  const edited = editedSettings(part);
  const scope = part === 'timing' ? $('timing-scope').value : '';
  const phaseEdits = editedPhases(scope);
  const fields = part === 'timing' ? TIMING_FIELDS : SHIELD_FIELDS;
  const names = Object.fromEntries(fields.map(f => [f.key, f]));
  if (!Object.keys(edited).length && !Object.keys(phaseEdits).length) {
    showResult(resultId, null, 'nothing to send: every field holds the value in force');
    return;
  }
  const what = `${part}${part === 'timing' ? ` (${scope || 'every signal'})` : ''}: ${[...Object.entries(edited).map(([k, v]) =>
    `${names[k].label} ${formatSetting(names[k], v)}`), ...phaseEditWords(scope, phaseEdits)].join(', ')}`;
  // the timing is sent with the revision it was read at: a change another operator made since is never overwritten
  const revision = safety.config.timing_revision;
  let path = `/api/v1/live/config/${part}`, body;
  if (part === 'shield') body = { shield: edited };
  else if (!scope) body = { timing: edited, based_on_revision: revision };
  else { // this signal's own values only: the server keeps the other signals' own as they are in force then
    path = signalTimingPath(scope);
    const own = safety.config.timing.per_intersection?.[scope] || {};
    const timing = { ...own, ...edited };
    const phases = phasesAfter(own.phases, phaseEdits);
    if (Object.keys(phases).length) timing.phases = phases; else delete timing.phases;
    // its last own value removed: back on the defaults, which is a removal (the server refuses an empty timing)
    if (!Object.keys(timing).length) { await removeOwnTiming(); return; }
    body = { timing, based_on_revision: revision };
  }
  showResult(resultId, true, `${what}: sending…`);
  clearRefusedFields(part);
  try {
    const entry = await api.put(path, body);
    const when = part === 'timing' ? 'taken by each signal at its next green' : 'in force at once';
    showResult(resultId, true, `${what}: ${entry?.result || 'done'}${entry?.who ? ` by ${entry.who}` : ''}; ${when}`
      + `${entry?.result === 'applied' ? lastingNote(entry.kind) : ''}`);
    await loadSafety(part);
  } catch (err) {
    await refused(resultId, what, err, [...Object.keys(edited),
      ...Object.entries(phaseEdits).flatMap(([n, values]) => Object.keys(values).map(k => `phases.${n}.${k}`))]);
  }
}

function signalTimingPath(id) { return `/api/v1/live/config/timing/intersections/${encodeURIComponent(id)}`; }

/** The chosen signal's own timing removed (it runs the defaults again), from the revision read. */
async function removeOwnTiming() {
  const scope = $('timing-scope').value;
  if (!scope || !safety.config) return;
  const what = `timing (${scope}): its own values removed, back to the defaults`;
  showResult('timing-result', true, `${what}: sending…`);
  try {
    const entry = await api.del(`${signalTimingPath(scope)}?based_on_revision=${safety.config.timing_revision}`);
    showResult('timing-result', true, `${what}: ${entry?.result || 'done'}${entry?.who ? ` by ${entry.who}` : ''}; `
      + `taken at its next green${entry?.result === 'applied' ? lastingNote(entry.kind) : ''}`);
    await loadSafety('timing');
  } catch (err) {
    await refused('timing-result', what, err);
  }
}

/** A server's refusal in the form's words: each key it names (`min_green_s`, or a path `body.timing.min_green_s`)
 * becomes its field's label, and those fields are marked invalid and described by the answer (a screen reader
 * says, on the field, why it was refused): the named fields the change sent (`sent`, keys), else every one named
 * (a reason may name a field only to explain: `shield.preempt: false turns preemption off`). */
function inFieldWords(part, text, sent = []) {
  clearRefusedFields(part);
  const named = [];
  // one phase's values (`per_intersection.J1.phases.2: max_green_s (400) …`): `J1 phase 2: maximum green (400) …`,
  // and the fields marked are that phase's; a phase the signal does not have: `J1's phase timing names phase 9, …`
  let phase = null;
  text = text.replace(/(?:\btiming\.)?\bper_intersection\.(\S+?)\.phases\.(\d+)(?::\s*|\.(?=\w))/g, (_, id, n) => {
    phase = n;
    return `${id} phase ${n}: `;
  }).replace(/(?:\btiming\.)?\bper_intersection\.(\S+?)\.phases\b/g, (_, id) => `${id}'s phase timing`);
  for (const f of part === 'timing' ? TIMING_FIELDS : part === 'shield' ? SHIELD_FIELDS : []) {
    const key = new RegExp(`(?:\\b\\w+\\.)*\\b${f.key}\\b`, 'g');
    if (!key.test(text)) continue;
    text = text.replace(key, f.label);
    named.push(phase !== null && PHASE_FIELDS.includes(f) ? `phases.${phase}.${f.key}` : f.key);
  }
  const atFault = named.some(k => sent.includes(k)) ? named.filter(k => sent.includes(k)) : named;
  for (const k of atFault) {
    const [, n, key] = k.match(/^phases\.(\d+)\.(.+)$/) || [];
    const input = n ? $(phaseInputId(n, key)) : $(`${part}-${k}`);
    if (!input) continue;
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', `${part}-result`);
  }
  return text;
}

/** The marks of the last refusal go with its answer: on a new edit or a new send. */
function clearRefusedFields(part) {
  for (const input of document.querySelectorAll(`#${part}-form [aria-invalid]`)) {
    input.removeAttribute('aria-invalid');
    input.removeAttribute('aria-describedby');
  }
}

/** A change refused, in the server's words (a 422 says which rule it breaks); nothing of it was applied. A 409:
 * someone else changed the timing since it was read, so the values in force are read again (the fields edited
 * keep their values, to be checked against them and sent again). */
async function refused(resultId, what, err, sent = []) {
  if (err?.status !== 409) {
    const part = resultId.split('-')[0];
    showResult(resultId, false, `${what}: ${inFieldWords(part, api.describeError(err), sent)}`, api.errorDetail(err));
    return;
  }
  showResult(resultId, false, `${what}: not applied: someone else changed the timing since you read it; the values `
    + 'in force are reloaded above (your edits are kept): check them and apply again', api.describeError(err));
  await loadSafety();
  const revision = safety.config?.timing_revision;
  if (revision !== undefined) $(resultId).textContent += ` (timing revision ${revision} in force)`;
}

// -- intersection detail ----------------------------------------------------------------------------
function setupDetail() {
  $('override-form').addEventListener('submit', async e => {
    e.preventDefault();
    const id = state.selected;
    if (!id) return;
    const body = { intersection_id: id, action: $('ov-action').value, phase_number: Number($('ov-phase').value),
                   duration_s: Number($('ov-duration').value) };
    const entry = await change(`${body.action} ${phaseName(id, body.phase_number)} at ${id} for ${body.duration_s} simulated s`,
                               () => api.post('/api/v1/live/override', body), 'override-result');
    // what the shield does with it: deferred by the green in force, cut at each max-out, the override it replaced
    if (entry?.result === 'applied' && entry.reason) $('override-result').textContent += `: ${runTimes(entry.reason)}`;
    // its answer stays while the override lasts, and says when it has ended
    state.override = entry?.result === 'applied' ? { id, seen: false, done: false } : null;
    if (state.override) followOverride(state.status?.overrides || {});
  });
  $('ov-cancel').addEventListener('click', () => {
    const id = state.selected;
    if (!id) return;
    state.override = null; // the answer to this request replaces the override's
    change(`end override at ${id}`, () => api.del(`/api/v1/live/override/${encodeURIComponent(id)}`), 'override-result');
  });
  $('atspm-refresh').addEventListener('click', () => loadAtspm());
  document.addEventListener('keydown', e => { // Escape anywhere shrinks an enlarged ATSPM chart
    if (e.key === 'Escape') for (const img of document.querySelectorAll('.atspm img.zoomed')) img.classList.remove('zoomed');
  });
  $('signal-pick').addEventListener('change', e => { if (e.target.value) selectIntersection(e.target.value); });
  for (const img of [$('atspm-pcd'), $('atspm-split')]) {
    img.addEventListener('click', () => img.classList.toggle('zoomed'));
    img.addEventListener('blur', () => img.classList.remove('zoomed')); // never left over the control focus goes to
    img.addEventListener('keydown', e => { // focusable (tabindex): Enter or Space enlarges it, Escape shrinks it
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); img.classList.toggle('zoomed'); }
      else if (e.key === 'Escape') img.classList.remove('zoomed');
    });
  }
}

/** The network's signals in the detail's list: chosen there (keyboard, screen reader) as by a click on the map. */
function fillSignalPick() {
  const pick = $('signal-pick');
  const ids = (state.network?.intersections || []).map(i => i.id);
  pick.replaceChildren(el('option', { value: '' }, ids.length ? 'choose a signal…' : 'no signal'),
    ...ids.map(id => el('option', { value: id }, id)));
  pick.value = ids.includes(state.selected) ? state.selected : '';
}

function selectIntersection(id, { keyboard = false } = {}) {
  state.selected = id;
  map.select(id);
  $('signal-pick').value = id;
  setText('detail-id', id);
  $('detail-hint').hidden = true;
  $('detail-body').hidden = false;
  const inter = state.network.intersections.find(i => i.id === id);
  const phases = (inter?.phases || []).map(p => p.number).filter(n => n !== null && n !== undefined);
  $('ov-phase').replaceChildren(...phases.map(n => el('option', { value: n }, movementOf(id, n))));
  $('detail-live').hidden = state.mode !== 'live';
  $('detail-facts').hidden = state.mode !== 'live';
  if (state.override?.id !== id) setText('override-result', '');
  state.detailKey = null;
  if (state.mode === 'live') { renderDetail(); scheduleDetailLogs(); loadAtspm(); } else renderStoredDetail(id);
  if (keyboard) announce(signalWords(id));
}

/** A signal chosen with the map's arrows, in a few words: "signal J3: phase 4 (NB/SB left), all-red, fallback". */
function signalWords(id) {
  const view = state.mode === 'live' ? state.snapshot?.signals.find(s => s.intersection_id === id) : null;
  if (!view) return `signal ${id} chosen`;
  return [`signal ${id}: ${phaseName(id, view.phase_number)}, ${String(view.interval).replace(/_/g, '-')}`, view.fallback ? 'fallback' : '',
          view.preempted ? 'preemption' : '', view.override ? 'override' : '',
          view.emergency?.length ? 'emergency vehicle' : ''].filter(Boolean).join(', ');
}

async function renderStoredDetail(id) {
  const sim = $('stored-run').value;
  $('d-approaches').replaceChildren(el('span', { class: 'hint' }, 'loading…'));
  try {
    const r = await api.get(`/api/v1/analytics/wait-times?simulation_id=${encodeURIComponent(sim)}&intersection_id=${encodeURIComponent(id)}`);
    if (id !== state.selected) return;
    const most = Math.max(1, ...r.items.map(i => i.mean_wait_s));
    $('d-approaches').replaceChildren(el('span', { class: 'hint' }, 'approach'), el('span'),
      el('span', { class: 'hint' }, `mean wait (s) in ${sim}; overall ${formatNumber(r.overall?.mean_wait_s)} s`), el('span'),
      ...r.items.flatMap(i => [el('span', {}, i.direction), el('span'),
        el('div', { class: 'qbar', style: `width:${(i.mean_wait_s / most * 100).toFixed(0)}%`, title: `${i.vehicles_crossed} vehicles crossed` }),
        el('span', {}, formatNumber(i.mean_wait_s))]));
  } catch (err) {
    $('d-approaches').replaceChildren(el('span', { class: 'hint' }, api.describeError(err)));
  }
}

function renderDetail() {
  const id = state.selected;
  const view = state.snapshot?.signals.find(s => s.intersection_id === id);
  const inter = state.network?.intersections.find(i => i.id === id);
  if (!inter) return;
  const ovText = runTimes(view?.override || state.status?.overrides?.[id] || 'none');
  if (view?.override && state.override?.id === id) state.override.seen = true;
  const age = detailAge();
  $('detail-age').hidden = !age;
  setText('detail-age', age);
  setText('d-phase', view ? movementOf(id, view.phase_number) : '–');
  setText('d-phase-elapsed', view && view.phase_elapsed_s !== null ? `${view.phase_elapsed_s.toFixed(1)} s` : '–');
  setText('d-interval', view ? `${view.interval}${state.ended ? ' (when the run ended)' : state.stale ? ' (last known)' : ''}` : '–');
  setText('d-elapsed', view ? `${view.elapsed_s.toFixed(1)} s` : '–');
  // the next phase is known once this green ends (the snapshot names it during the clearance), whatever controller
  setText('d-next', view?.next_phase_number ? movementOf(id, view.next_phase_number)
    : view?.interval === 'green' ? 'chosen when this green ends' : '–');
  setText('d-controller', view ? view.controller : '–');
  setText('d-confidence', confidenceText(view));
  setText('d-fallback', view ? (view.fallback ? 'yes: Webster plan serving' : 'no') + (view.preempted ? ' · PREEMPTION' : '') : '–');
  setText('d-override', ovText);
  const coordination = coordinationText(state.status?.coordination?.[id]);
  $('d-coordination-row').hidden = !coordination;
  setText('d-coordination', coordination);
  const evs = view?.emergency || [];
  $('d-emergency-row').hidden = !evs.length;
  setText('d-emergency', evs.map(e => `${e.vehicle_id} from the ${e.approach}, ${Math.round(e.distance_m)} m`).join('; '));
  // the decisions follow the signal: fetched again when it changes phase or interval
  const key = view ? `${id}:${view.phase_number}:${view.interval}` : null;
  if (key !== null && key !== state.detailKey) { state.detailKey = key; scheduleDetailLogs(); }
  const queues = view?.queue_veh || {};
  const most = Math.max(5, ...Object.values(queues).filter(Number.isFinite));
  const rows = [];
  for (const a of inter.approaches) {
    const colour = view ? approachSignal(view.state, a.links) : 'none';
    // null: the server has no observation of the approach's queue (silent detectors): "no data", not an empty road
    const q = view ? queues[a.direction] : undefined;
    const known = Number.isFinite(q);
    rows.push(el('span', {}, a.direction),
      // its shape and letter say the state as well as its colour does (the legend's shapes; CSS .dot)
      el('i', { class: `dot ${colour}`, title: colour, 'aria-label': colour, style: `background:${SIGNAL_COLOURS[colour]}` },
        SIGNAL_LETTERS[colour]),
      el('div', { class: 'qbar', style: `width:${known ? (q / most * 100).toFixed(0) : 0}%` }),
      el('span', { class: known ? '' : 'nodata', title: known ? null : 'no observation of this approach\'s queue' },
        known ? `${q}` : view ? 'no data' : '–'));
  }
  $('d-approaches').replaceChildren(el('span', { class: 'hint' }, 'approach'), el('span'), el('span', { class: 'hint' }, 'queue (halting vehicles)'), el('span'), ...rows);
}

/** A signal's coordination pattern as the status gives it: its plan's cycle and offset, or why it runs Free;
 * '' for a signal whose log names no pattern (its row is hidden). */
function coordinationText(c) {
  if (!c) return '';
  if (c.not_coordinated) return `Free: ${c.not_coordinated}`;
  return `cycle ${+c.cycle_s.toFixed(1)} s, offset ${+c.offset_s.toFixed(1)} s`;
}

/** The confidence of the controller's latest proposal, as the controller states it. While the fallback serves,
 * that proposal is not acted on (stale or missing data, a failed controller, a confidence below the threshold):
 * a bare "1.00" beside "fallback: yes" would read as trust in data the signal does not have. */
function confidenceText(view) {
  const node = $('d-confidence');
  node.title = '';
  if (!view) return '–';
  const c = view.confidence === null || view.confidence === undefined ? null : view.confidence.toFixed(2);
  if (!view.fallback) return c ?? '–';
  const limit = safety.config?.shield?.confidence_threshold;
  if (c !== null && Number.isFinite(limit) && view.confidence < limit) {
    node.title = `below the shield's threshold (${limit}): the fallback serves`;
    return `${c} < ${limit}`;
  }
  node.title = `${c === null ? 'no proposal yet' : `the controller states ${c} for its latest proposal`}; the shield's `
    + 'fallback serves instead (stale or missing data, or a failed controller), so the proposal is not acted on';
  return c === null ? '– (fallback)' : `${c}, not used`;
}

/** Over the detail: the run has ended, or nothing has come for a while; '' while it is live. */
function detailAge() {
  const at = state.snapshot ? formatClock(state.snapshot.sim_time_s) : '–';
  if (document.body.classList.contains('ended')) return `the run has ended: this is its last state, at t = ${at}`;
  if (state.stale) return `no data for ${Math.round((Date.now() - state.lastDataAt) / 1000)} s: as it was at t = ${at}`;
  return '';
}

/** "phase 1 (EB/WB through)", as the ATSPM charts name phases (the network's `label`), or "phase 1". */
function phaseName(id, number) {
  const inter = state.network?.intersections.find(i => i.id === id);
  return inter?.phases?.find(p => p.number === Number(number))?.label || `phase ${number}`;
}

/** A phase as the detail's cells and the override form show it: "1 (EB/WB through)". */
function movementOf(id, number) { return phaseName(id, number).replace(/^phase /, ''); }

/** The server's `until t=250 s` in run time, as every run time on the page: `until t = 4:10`. */
function runTimes(text) {
  return String(text).replace(/\bt=(\d+(?:\.\d+)?) s\b/g, (_, v) => `t = ${formatClock(Number(v))}`);
}

/** The override this page applied: once it is no longer in force (served, expired, ended by someone else), its
 * "applied" answer is replaced by that. */
function followOverride(inForce) {
  const ov = state.override;
  if (!ov || ov.done) return;
  if (inForce[ov.id]) { ov.seen = true; return; }
  if (ov.seen) overrideEnded(`the override at ${ov.id} has ended (t = ${formatClock(state.status?.sim_time_s)})`);
}

function overrideEnded(text) {
  state.override.done = true;
  if (state.selected === state.override.id) showResult('override-result', null, text);
}

const DETAIL_LOGS_EVERY_MS = 1000; // at most once a second, however fast the signal changes
let detailTimer = null;
let detailLoadedAt = 0;

function scheduleDetailLogs() {
  if (detailTimer !== null || state.ended) return; // after the end `signalwise live` stops serving: nothing to ask
  detailTimer = setTimeout(() => { detailTimer = null; loadDetailLogs(); },
                           Math.max(0, DETAIL_LOGS_EVERY_MS - (performance.now() - detailLoadedAt)));
}

async function loadDetailLogs() {
  detailLoadedAt = performance.now();
  const id = state.selected;
  if (!id || state.mode !== 'live' || state.ended) return;
  try {
    const r = await api.get(`/api/v1/live/interventions?intersection_id=${encodeURIComponent(id)}&limit=15`);
    if (id !== state.selected) return;
    $('d-decisions').replaceChildren(...(r.decisions.length ? r.decisions.map(d => el('li', {},
      `t = ${formatClock(d.time_s)} ${d.event}${d.parameter !== null && d.code < 100 ? ` phase ${d.parameter}` : ''}`))
      : [el('li', { class: 'note' }, 'none yet')]));
    $('d-interventions').replaceChildren(...(r.interventions.length ? r.interventions.map(iv => el('li', { class: NOTE_RULES.has(iv.rule) ? 'note' : '' },
      `t = ${formatClock(iv.time_s)} ${iv.rule}: ${runTimes(iv.detail)}`)) : [el('li', { class: 'note' }, 'none')]));
  } catch (err) {
    $('d-decisions').replaceChildren(showError(el('li', { class: 'note' }), api.describeError(err), err));
  }
}

/** Whether the signal's recent events hold a complete cycle, which both ATSPM charts need: a phase green twice, then
 * another phase green (so that phase's second clearance is over: a split from green to green, a PCD cycle from red
 * clearance to red clearance). Asked of a route that answers 200 either way: a young run's chart request is
 * answered 404 with the reason, which every browser logs as an error in its console. null: not known (asked
 * anyway). */
async function hasCompleteCycle(id) {
  let r;
  try {
    r = await api.get(`/api/v1/live/interventions?intersection_id=${encodeURIComponent(id)}&limit=200`);
  } catch {
    return null;
  }
  const greens = r.decisions.filter(d => d.code === 1).reverse(); // the route lists the newest first
  const count = new Map();
  for (const g of greens) {
    if ([...count].some(([phase, n]) => phase !== g.parameter && n >= 2)) return true;
    count.set(g.parameter, (count.get(g.parameter) || 0) + 1);
  }
  return false;
}

let atspmAsked = 0; // the latest loadAtspm: an earlier one's answers (another signal's, an older hour) are dropped
async function loadAtspm() {
  const id = state.selected;
  if (!id || state.mode !== 'live') return;
  const asked = ++atspmAsked;
  const stale = () => asked !== atspmAsked || id !== state.selected;
  const charts = [['pcd', 'atspm-pcd', 'atspm-pcd-msg', 'Purdue Coordination Diagram'],
                  ['split_monitor', 'atspm-split', 'atspm-split-msg', 'Split monitor']];
  for (const [, , capId, title] of charts) setText(capId, `${title}: computing…`);
  if (await hasCompleteCycle(id) === false) {
    if (stale()) return;
    for (const [, imgId, capId, title] of charts) {
      const img = $(imgId);
      if (img.src) URL.revokeObjectURL(img.src);
      img.removeAttribute('src');
      img.alt = title;
      setText(capId, `${title}: no complete cycle of ${id} yet (refresh once its phases have come round)`);
      $(capId).title = '';
    }
    return;
  }
  for (const [chart, imgId, capId, title] of charts) {
    const img = $(imgId);
    if (stale()) return;
    try {
      const resp = await api.get(`/api/v1/live/atspm/${chart}?intersection_id=${encodeURIComponent(id)}&minutes=60`, { raw: true });
      const blob = await resp.blob();
      if (stale()) return; // a later request (another signal, a refresh) shows its own answer
      const url = URL.createObjectURL(blob);
      if (img.src) URL.revokeObjectURL(img.src);
      img.src = url;
      // the text alternative gives the figures the image prints (the route's X-Chart-Figures: its panels' titles)
      const figures = resp.headers.get('X-Chart-Figures');
      img.alt = `${title}, ${id}, last simulated hour${figures ? `: ${figures}` : ''}`;
      // the chart's time axis is simulated time (charts.py names it so: the event log dates every run on one day)
      setText(capId, `${title}, ${id}, last simulated hour; x: simulated time of day, hh:mm (click to enlarge)`);
      $(capId).title = '';
    } catch (err) {
      if (stale()) return;
      img.removeAttribute('src');
      img.alt = title;
      setText(capId, `${title}: ${err.message}`); // the server's reason (no cycle yet), or that it did not answer
      $(capId).title = api.errorDetail(err);
    }
  }
}

// -- stored runs (signalwise serve) -----------------------------------------------------------------
async function startStored() {
  state.mode = 'stored';
  setText('run-label', 'stored runs');
  const pill = $('run-status');
  pill.textContent = 'no live run';
  pill.className = 'pill';
  setText('feed-mode', 'stored');
  $('controls').hidden = true;
  $('safety').hidden = true;
  $('alerts').hidden = true;
  $('charts').hidden = true;
  $('changes').hidden = true; // a live run's change log: a stored run has none to show
  $('overview').hidden = true; // the live signals' states: a stored run has none
  document.querySelector('#map-pane .legend').hidden = true; // a stored map draws no signal states
  $('live-view').style.gridTemplateRows = '1fr';
  $('stored-panel').hidden = false;
  try {
    const sims = await api.get('/api/v1/analytics/simulations?limit=1000');
    state.runs = sims.items;
    state.metricFields = sims.fields || {};
  } catch (err) {
    if (err.status === 401) { waitForKey(err); return; }
    mapMessage(api.describeError(err));
  }
  const sel = $('stored-run');
  sel.replaceChildren(...state.runs.map(r => el('option', { value: r.simulation_id },
    `${r.simulation_id} (${r.scenario} · ${r.controller} · seed ${r.seed})`)));
  // the select is as wide as the panel allows (a run's name is long): the whole of the one chosen is its tooltip
  const named = () => { sel.title = sel.selectedOptions[0]?.textContent || ''; };
  named();
  sel.addEventListener('change', () => { named(); showStoredMap(sel.value); });
  if (state.runs.length) await showStoredMap(state.runs[state.runs.length - 1].simulation_id, true);
  else mapMessage('no stored run yet: `signalwise run … --db URL`, `signalwise publish RUN_DIR`, or `signalwise live --db …`');
  exposed.ready = true;
  showView('compare');
}

async function showStoredMap(simulationId, select = false) {
  if (select) $('stored-run').value = simulationId;
  try {
    state.network = await api.get(`/api/v1/network?simulation_id=${encodeURIComponent(simulationId)}`);
    mapMessage('');
    map.setNetwork(state.network);
    fillSignalPick();
    if (state.selected) selectIntersection(state.selected);
  } catch (err) {
    mapMessage(`map of ${simulationId}: ${api.describeError(err)}`);
  }
}

// -- comparison view --------------------------------------------------------------------------------
const compare = { bars: [], trend: null, table: [], controllers: [] };
exposed.compare = compare;

function setupCompare() {
  $('cmp-load').addEventListener('click', () => showCompare());
  $('cmp-scenario').addEventListener('change', () => { fillMetrics(); showCompare(); });
  compare.trend = new Chart($('cmp-trend'), { xFormat: formatClock, yMin: 0, yLabel: 'delay (s/veh)',
                                              empty: 'tick runs in the table below' });
  $('cmp-trend-png').addEventListener('click', () => downloadPNG($('cmp-trend'), 'delay-over-time.png'));
  $('cmp-trend-csv').addEventListener('click', () => downloadCSV(compare.trend.toCSV(), 'delay-over-time.csv'));
  $('cmp-table-csv').addEventListener('click', () => downloadCSV(toCSV(
    ['scenario', 'controller', 'baseline', 'metric', 'baseline_mean', 'baseline_ci_low', 'baseline_ci_high', 'baseline_n',
     'candidate_mean', 'candidate_ci_low', 'candidate_ci_high', 'candidate_n', 'change_pct', 'p_value', 'conditions',
     'p_value_paired'],
    compare.table), 'baseline-vs-controllers.csv'));
}

let compareLoaded = false;
async function loadCompare() {
  if (compareLoaded) return;
  try {
    const sims = await api.get('/api/v1/analytics/simulations?limit=1000');
    state.runs = sims.items;
    state.metricFields = sims.fields || {};
  } catch (err) {
    setText('cmp-message', api.describeError(err));
    return;
  }
  compareLoaded = true;
  const scenarios = [...new Set(state.runs.map(r => r.scenario).filter(Boolean))].sort();
  const sel = $('cmp-scenario');
  sel.replaceChildren(...scenarios.map(s => el('option', { value: s }, s)));
  const live = state.status?.scenario;
  if (live && scenarios.includes(live)) sel.value = live;
  if (!scenarios.length) {
    setText('cmp-message', 'no stored runs with a scenario and controller yet: this view reads the database the server '
      + 'was started with (--db); runs reach it with `signalwise run … --db URL`, `signalwise publish RUN_DIR`, or '
      + '`signalwise live --db …`');
    return;
  }
  fillMetrics();
  await showCompare();
}

function fillMetrics() {
  const scenario = $('cmp-scenario').value;
  const names = [...new Set(state.runs.filter(r => r.scenario === scenario).flatMap(r => Object.keys(r.metrics || {})))].sort();
  const wanted = DEFAULT_METRICS.filter(m => names.includes(m));
  const chosen = wanted.length ? wanted : names.slice(0, 4);
  $('cmp-metrics').replaceChildren(...names.map(n => el('option', { value: n, selected: chosen.includes(n),
    title: metricField(n).text || null }, metricName(n))));
}

async function showCompare() {
  const scenario = $('cmp-scenario').value;
  const metrics = [...$('cmp-metrics').selectedOptions].map(o => o.value);
  if (!scenario || !metrics.length) return;
  const q = `scenario=${encodeURIComponent(scenario)}&${metrics.map(m => `metric=${encodeURIComponent(m)}`).join('&')}`;
  setText('cmp-message', 'loading…');
  let perf, bva;
  try {
    [perf, bva] = await Promise.all([api.get(`/api/v1/dashboard/performance-comparison?${q}`),
                                     api.get(`/api/v1/analytics/comparison/baseline-vs-ai?${q}&limit=1000`)]);
  } catch (err) {
    setText('cmp-message', api.describeError(err));
    return;
  }
  // runs pair only under the same conditions (duration, demand, timing, ...): one comparison per set of them
  const labels = conditionLabels(bva.items.map(item => item.conditions));
  const mixed = new Set(labels).size > 1;
  // confidence intervals where the API gives them: across seeds, paired with the baseline's seeds (not drawn on
  // the bars when the runs were made under several sets of conditions: which set would a whisker be?)
  const ci = new Map(); // `${controller}|${metric}` -> {lo, hi, n}
  compare.table = [];
  bva.items.forEach((item, k) => {
    for (const m of item.metrics) {
      if (!mixed) {
        ci.set(`${item.baseline_controller}|${m.metric}`, { lo: m.baseline.ci_low, hi: m.baseline.ci_high, n: m.baseline.n });
        ci.set(`${item.controller}|${m.metric}`, { lo: m.candidate.ci_low, hi: m.candidate.ci_high, n: m.candidate.n });
      }
      compare.table.push([item.scenario, item.controller, item.baseline_controller, m.metric, m.baseline.mean,
        m.baseline.ci_low, m.baseline.ci_high, m.baseline.n, m.candidate.mean, m.candidate.ci_low, m.candidate.ci_high,
        m.candidate.n, m.change_pct, m.p_value, labels[k], m.p_value_paired ?? null]);
    }
  });
  compare.controllers = perf.labels;
  const grid = $('cmp-bars');
  grid.replaceChildren();
  compare.bars = [];
  perf.datasets.forEach(ds => {
    const canvas = el('canvas');
    const fig = el('figure', { class: 'chart' }, canvas,
      el('figcaption', {}, `${ds.label}${METRIC_NOTES[ds.label] ? ` (${METRIC_NOTES[ds.label]})` : ''}: mean per controller over its runs; whiskers: 95% CI across seeds paired with ${bva.baseline_controller || 'the baseline'}`));
    grid.append(fig);
    const chart = new Chart(canvas, { title: `${scenario} · ${ds.label}`, yMin: 0 });
    const bars = perf.labels.map((c, i) => {
      const interval = cutInterval(ds.label, ci.get(`${c}|${ds.label}`));
      return { label: c, value: ds.data[i], lo: interval?.lo, hi: interval?.hi, loCut: interval?.loCut,
               hiCut: interval?.hiCut, color: PALETTE[i % PALETTE.length],
               note: `n=${perf.runs[c]}${interval?.note ? `; ${interval.note}` : ''}` };
    });
    chart.setBars(bars);
    const cut = bars.filter(b => b.loCut || b.hiCut);
    if (cut.length) { // said as `signalwise compare` says it (its ci_note): where, and at which bound
      fig.querySelector('figcaption').append(` (${cut.map(b => `${b.label}: ${b.note.split('; ').slice(1).join('; ')}`)
        .join('; ')}, the values ${ds.label} can take; a cut end has no cap)`);
    }
    addExport(fig, chart, `${scenario}-${ds.label}`);
    compare.bars.push(chart);
    chart.draw();
  });
  const head = ['controller', 'metric', 'baseline mean [95% CI]', 'candidate mean [95% CI]', 'change', 'Welch p', 'paired p'];
  // cut as the bars are (the CSV keeps the API's intervals, uncut)
  const fmtCI = (mean, lo, hi, metric) => {
    const c = cutInterval(metric, { lo, hi });
    return `${formatNumber(mean)} [${formatNumber(c?.lo ?? lo)}, ${formatNumber(c?.hi ?? hi)}]${c?.note ? ` (${c.note})` : ''}`;
  };
  $('cmp-table').replaceChildren(el('tr', {}, ...head.map(h => el('th', {}, h))),
    ...compare.table.map(r => el('tr', {}, el('td', {}, `${r[1]} vs ${r[2]}${mixed ? ` (${r[14]})` : ''}`),
      el('td', { title: METRIC_NOTES[r[3]] || '' }, r[3]),
      el('td', {}, fmtCI(r[4], r[5], r[6], r[3])), el('td', {}, fmtCI(r[8], r[9], r[10], r[3])),
      el('td', {}, r[12] === null ? '–' : `${r[12] > 0 ? '+' : ''}${r[12].toFixed(1)} %`),
      el('td', {}, r[13] === null ? '–' : r[13].toPrecision(2)),
      el('td', {}, r[15] === null ? '–' : r[15].toPrecision(2)))));
  if (!compare.table.length) $('cmp-table').replaceChildren(el('tr', {}, el('td', {}, `no run paired with a ${bva.baseline_controller} run of the same seed`)));
  renderRuns(scenario, metrics);
  const unfinished = state.runs.filter(r => r.scenario === scenario && r.status && r.status !== 'complete');
  const runs = `${perf.labels.length} controllers, ${Object.values(perf.runs).reduce((a, b) => a + b, 0)} runs`
    + (unfinished.length ? ` (${unfinished.length} not complete, counted in the means: `
      + `${unfinished.map(r => `${r.simulation_id} ${r.status}`).join(', ')}; see the runs table)` : '');
  setText('cmp-message', mixed
    ? `${runs}, made under ${new Set(labels).size} sets of conditions: the bars average over all of them; the table compares each set apart`
    : runs);
}

//: the values a stored figure can take, where a Student-t interval over a few seeds reaches past them: shares from
//: 0 to 1; savings against the baseline of either sign; every other figure (times, counts, speeds) 0 and up
//: (`analytics.stats.bounded_interval`, `runtime.compare.FIGURE_RANGE`: the rule `signalwise compare` cuts with)
const FIGURE_RANGE = { throughput: [0, 1], co2_saved: [-Infinity, Infinity], fuel_saved: [-Infinity, Infinity] };

/** A 95% CI cut to the values `metric` can take, with its note ("t-interval cut at 0"), as `signalwise compare`
 * cuts its intervals (its ci_note); undefined without an interval. */
function cutInterval(metric, interval) {
  if (!interval || !Number.isFinite(interval.lo) || !Number.isFinite(interval.hi)) return interval;
  const [min, max] = FIGURE_RANGE[metric] || [0, Infinity];
  const loCut = interval.lo < min, hiCut = interval.hi > max;
  const note = [loCut ? `t-interval cut at ${min}` : '', hiCut ? `t-interval cut at ${max}` : ''].filter(Boolean).join('; ');
  return { ...interval, lo: loCut ? min : interval.lo, hi: hiCut ? max : interval.hi, loCut, hiCut, note };
}

/** A stored figure's unit and what it is, as the API gives them (`GET /api/v1/analytics/simulations` `fields`:
 * "unit: what it is"). */
function metricField(name) {
  const text = state.metricFields?.[name];
  if (!text) return { unit: '', text: METRIC_NOTES[name] || '' };
  const at = text.indexOf(': ');
  return at < 0 ? { unit: '', text } : { unit: text.slice(0, at), text: text.slice(at + 2) };
}

/** A stored figure as the metrics list and the runs table name it: its key and unit, `avg_delay_s (s)`. */
function metricName(name) {
  const { unit } = metricField(name);
  return unit && unit !== '?' ? `${name} (${unit})` : name;
}

/** For each comparison, the conditions that tell it from the others ('duration_s 600, demand_scale 1.5'); ''
 *  when they are all alike. */
function conditionLabels(conditions) {
  const keys = new Set(conditions.flatMap(c => Object.keys(c || {})));
  const differ = [...keys].filter(k => new Set(conditions.map(c => JSON.stringify((c || {})[k]))).size > 1).sort();
  return conditions.map(c => differ.map(k => `${k} ${JSON.stringify((c || {})[k] ?? null)}`).join(', '));
}

function renderRuns(scenario, metrics) {
  const runs = state.runs.filter(r => r.scenario === scenario);
  const preselect = new Set(runs.slice(0, MAX_TREND_RUNS).map(r => r.simulation_id));
  $('cmp-runs').replaceChildren(el('tr', {}, el('th', {}, 'run'), el('th', {}, 'status'), el('th', {}, 'controller'),
    el('th', {}, 'seed'), ...metrics.map(m => el('th', { title: metricField(m).text || null }, metricName(m)))),
  ...runs.map(r => el('tr', { class: r.status && r.status !== 'complete' ? 'unfinished' : '' },
    el('td', {}, el('label', {}, el('input', { type: 'checkbox', class: 'trend-pick', value: r.simulation_id,
      checked: preselect.has(r.simulation_id), onchange: () => loadTrend() }), ' ', r.simulation_id)),
    el('td', { title: r.status_reason || '' }, r.status || '?'), el('td', {}, r.controller), el('td', {}, String(r.seed ?? '')),
    ...metrics.map(m => el('td', {}, formatNumber(r.metrics?.[m]))))));
  loadTrend();
}

/** Delay over time, one line per controller (the mean over its ticked runs), as `signalwise compare` draws it. */
async function loadTrend() {
  const picked = [...document.querySelectorAll('.trend-pick:checked')].map(i => i.value).slice(0, MAX_TREND_RUNS);
  if (!picked.length) { compare.trend.setSeries([]); compare.trend.draw(); setText('cmp-trend-note', ''); return; }
  try {
    const r = await api.get(`/api/v1/dashboard/delay-over-time?${picked.map(s => `simulation=${encodeURIComponent(s)}`).join('&')}`);
    const colour = new Map(compare.controllers.map((c, i) => [c, PALETTE[i % PALETTE.length]]));
    compare.trend.setSeries(r.series.map((s, i) => ({ name: `${s.controller} (${s.runs.length} run${s.runs.length === 1 ? '' : 's'})`,
      color: colour.get(s.controller) || PALETTE[i % PALETTE.length], points: s.points })));
    compare.trend.draw();
    setText('cmp-trend-note', r.missing.length ? `left out: ${r.missing.map(m => `${m.simulation_id} (${m.reason})`).join('; ')}` : '');
  } catch (err) {
    setText('cmp-message', `delay over time: ${api.describeError(err)}`);
  }
}

boot().catch(err => { exposed.errors.push(String(err?.message || err)); mapMessage(String(err?.message || err)); });
