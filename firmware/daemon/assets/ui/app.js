// edgenvr's page: per camera a timeline of what is recorded, a player that plays from any
// moment and runs on from clip to clip, the events, and the box's live state.
//
// Plain browser JavaScript, no build step and nothing from the internet. It talks to the box's
// own API: GET /api/recordings (ranges, gaps, events), GET /api/clip.mp4 (played by <video>, with
// Range requests), GET /api/live (Server-Sent Events of the state bus) and, for outputs,
// POST /api/outputs/{name}. The login cookie authenticates every request.
//
// Safety: text that comes from the box (camera and sensor names) only ever goes into the page as
// textContent or an attribute value, never as HTML. Times are shown in the browser's time zone.
"use strict";

/** One clip request covers at most this much video; the next clip is asked for when it ends. */
const CHUNK_MS = 10 * 60 * 1000;
/** While the view includes now, the listing is refreshed this often. */
const REFRESH_MS = 10 * 1000;
/** The narrowest and widest view of the timeline. */
const MIN_VIEW_MS = 60 * 1000;
const MAX_VIEW_MS = 7 * 24 * 3600 * 1000;
/** Video left in a range shorter than this (about a frame) counts as its end. */
const END_SLACK_MS = 40;
/** Tick spacings of the time axis, in seconds. */
const TICK_STEPS_MS = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200].map(
  (s) => s * 1000,
);

const $ = (id) => document.getElementById(id);

/** A new element with a class and text (as text, never HTML). */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

const timeFormat = new Intl.DateTimeFormat(undefined, {
  hour: "numeric",
  minute: "2-digit",
  second: "2-digit",
});
const minuteFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const dateFormat = new Intl.DateTimeFormat(undefined, {
  weekday: "short",
  month: "short",
  day: "numeric",
});

function fmtTime(ms) {
  return timeFormat.format(new Date(ms));
}

function fmtMinute(ms) {
  return minuteFormat.format(new Date(ms));
}

/** "10:02:13", with the date in front when it is not today. */
function fmtMoment(ms) {
  const sameDay = localDayStart(ms) === localDayStart(Date.now());
  return sameDay ? fmtTime(ms) : `${dateFormat.format(new Date(ms))} ${fmtTime(ms)}`;
}

function fmtDuration(ms) {
  let s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  s %= 60;
  if (h) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m) return `${m}m${String(s).padStart(2, "0")}s`;
  return `${s}s`;
}

function fmtBytes(bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value < 10 && unit ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** Local midnight of the day holding `ms`, and of the day after. */
function localDayStart(ms) {
  const d = new Date(ms);
  return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
}

function nextLocalDay(dayStartMs) {
  const d = new Date(dayStartMs);
  return new Date(d.getFullYear(), d.getMonth(), d.getDate() + 1).getTime();
}

function previousLocalDay(dayStartMs) {
  const d = new Date(dayStartMs);
  return new Date(d.getFullYear(), d.getMonth(), d.getDate() - 1).getTime();
}

function clipUrl(params) {
  return `/api/clip.mp4?${new URLSearchParams(params)}`;
}

/** The API's JSON, or an Error carrying its message; a 401 goes back to the login. */
async function api(path, options) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  if (response.status === 401) {
    window.location.assign("/login");
    throw new Error("logged out");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

// ---------------------------------------------------------------------------------------------
// The view and the listing of what is recorded in it

const view = { from: 0, to: 0 };
/** The last listing of the view: {cameras: [{camera, ranges, events}]}. */
let listing = { cameras: [] };
let listingSeq = 0;
let refreshSoon = null;

function setView(from, to) {
  let length = Math.min(Math.max(to - from, MIN_VIEW_MS), MAX_VIEW_MS);
  const middle = (from + to) / 2;
  view.from = Math.round(middle - length / 2);
  view.to = view.from + length;
  const day = localDayStart(middle);
  const d = new Date(day);
  $("day").value = [
    d.getFullYear(),
    String(d.getMonth() + 1).padStart(2, "0"),
    String(d.getDate()).padStart(2, "0"),
  ].join("-");
  length = view.to - view.from;
  // The view in numbers, for scripts and tests that click a moment.
  $("timeline-box").dataset.fromMs = String(view.from);
  $("timeline-box").dataset.toMs = String(view.to);
  $("view-range").textContent = `${fmtMoment(view.from)} – ${fmtMoment(view.to)} (${fmtDuration(length)})`;
  render();
  loadListing();
}

function showDay(dayStartMs) {
  setView(dayStartMs, nextLocalDay(dayStartMs));
}

async function loadListing() {
  const seq = ++listingSeq;
  $("listing-status").textContent = "loading…";
  try {
    const body = await api(`/api/recordings?${new URLSearchParams({ from: view.from, to: view.to })}`);
    if (seq !== listingSeq) return;
    listing = body;
    $("listing-status").textContent = "";
    render();
  } catch (error) {
    if (seq === listingSeq) $("listing-status").textContent = `listing failed: ${error.message}`;
  }
}

/** Refreshes the listing shortly (after a sensor or event change), once for a burst. */
function scheduleRefresh(delayMs) {
  if (refreshSoon) return;
  refreshSoon = setTimeout(() => {
    refreshSoon = null;
    loadListing();
  }, delayMs);
}

function viewIncludesNow() {
  const now = Date.now();
  return view.from <= now && now <= view.to + REFRESH_MS;
}

// ---------------------------------------------------------------------------------------------
// Rendering the timeline

/** Percent of the view's width at wall time `ms`. */
function pct(ms) {
  return ((ms - view.from) / (view.to - view.from)) * 100;
}

/** Positions `node` over [start, end] of the view (at least `minPx` wide via CSS). */
function place(node, start, end) {
  const left = Math.max(0, Math.min(100, pct(start)));
  const right = Math.max(0, Math.min(100, pct(end)));
  node.style.left = `${left}%`;
  node.style.width = `${Math.max(0, right - left)}%`;
}

function render() {
  renderAxis();
  renderCameras();
  renderEvents();
  updatePlayhead();
}

function renderAxis() {
  const axis = $("axis");
  axis.replaceChildren();
  const width = axis.clientWidth || 600;
  const length = view.to - view.from;
  // Labels with seconds need more room than "10:30".
  const fits = (s) => length / s <= Math.max(2, Math.floor(width / (s < 60 * 1000 ? 100 : 70)));
  const step = TICK_STEPS_MS.find(fits) || 24 * 3600 * 1000;
  // Ticks on round local times: count from local midnight before the view.
  let tick = localDayStart(view.from);
  while (tick < view.from) tick += step;
  const format = step < 60 * 1000 ? fmtTime : fmtMinute;
  for (; tick <= view.to; tick += step) {
    // A label centred on the very edge would be cut in half.
    if (pct(tick) < 3 || pct(tick) > 97) continue;
    const label = el("span", "tick", format(tick));
    label.style.left = `${pct(tick)}%`;
    axis.append(label);
  }
}

function renderCameras() {
  const box = $("cameras");
  box.replaceChildren();
  $("no-cameras").hidden = listing.cameras.some((c) => c.ranges.length > 0);
  for (const camera of listing.cameras) {
    const row = el("div", "camera");
    row.dataset.camera = camera.camera;
    const head = el("div", "camera-head");
    head.append(el("span", "camera-name", camera.camera));
    const download = downloadLink(camera);
    if (download) head.append(download);
    row.append(head);

    const track = el("div", "track");
    track.dataset.camera = camera.camera;
    track.title = `${camera.camera}: click to play from that moment`;
    for (const range of camera.ranges) {
      const bar = el("div", "range");
      place(bar, range.start_ms, range.end_ms);
      bar.title = `${camera.camera}: ${fmtMoment(range.start_ms)} – ${fmtMoment(range.end_ms)}`;
      track.append(bar);
    }
    for (const event of camera.events) {
      const mark = el("button", "event");
      mark.type = "button";
      mark.dataset.eventId = event.id;
      place(mark, event.start_ms, event.end_ms);
      const sensors = event.sensors.join(", ");
      mark.title = `${sensors} at ${fmtMoment(event.trigger_start_ms)}: play from the pre-roll`;
      mark.append(el("span", "flag", sensors));
      mark.addEventListener("click", (e) => {
        e.stopPropagation();
        playEvent(camera.camera, event);
      });
      track.append(mark);
    }
    if (viewIncludesNow()) {
      const now = el("div", "now-line");
      now.style.left = `${pct(Date.now())}%`;
      track.append(now);
    }
    track.append(el("div", "playhead"));
    track.addEventListener("click", (e) => {
      const rect = track.getBoundingClientRect();
      const ms = view.from + ((e.clientX - rect.left) / rect.width) * (view.to - view.from);
      playAt(camera.camera, ms);
    });
    row.append(track);
    box.append(row);
  }
}

/** "Download" for the part of the view that holds video of `camera`: the same clip
 * `nvrctl pull --camera C --from T --to T` gets. */
function downloadLink(camera) {
  const shown = camera.ranges.filter((r) => r.end_ms > view.from && r.start_ms < view.to);
  if (!shown.length) return null;
  const from = Math.max(view.from, Math.min(...shown.map((r) => r.start_ms)));
  const to = Math.min(view.to, Math.max(...shown.map((r) => r.end_ms)));
  let bytes = 0;
  for (const r of shown) {
    const overlap = Math.min(to, r.end_ms) - Math.max(from, r.start_ms);
    bytes += r.end_ms > r.start_ms ? (r.bytes * overlap) / (r.end_ms - r.start_ms) : r.bytes;
  }
  const format = to - from < 10 * 60 * 1000 ? fmtTime : fmtMinute;
  const link = el("a", "download", `⬇ ${format(from)}–${format(to)} · ~${fmtBytes(bytes)}`);
  link.href = clipUrl({ camera: camera.camera, from: Math.floor(from), to: Math.ceil(to) });
  link.download = "";
  link.title = "Download the video of this camera shown on the timeline, as one MP4";
  return link;
}

function renderEvents() {
  const list = $("events");
  list.replaceChildren();
  const events = listing.cameras
    .flatMap((c) => c.events.map((e) => ({ camera: c.camera, event: e })))
    .sort((a, b) => b.event.trigger_start_ms - a.event.trigger_start_ms);
  $("event-count").textContent = events.length ? `(${events.length} in view)` : "(none in view)";
  for (const { camera, event } of events) {
    const item = el("li", "event-item");
    item.dataset.eventId = event.id;
    const play = el("button", "play", `▶ ${fmtMoment(event.trigger_start_ms)}`);
    play.type = "button";
    play.title = "Play from the pre-roll";
    play.addEventListener("click", () => playEvent(camera, event));
    item.append(play);
    item.append(el("span", "event-camera", camera));
    item.append(el("span", "event-sensors", event.sensors.join(", ")));
    const ongoing = event.trigger_end_ms === null;
    item.append(el("span", "muted", ongoing ? "ongoing" : fmtDuration(event.end_ms - event.start_ms)));
    const download = el("a", "download", "⬇");
    download.href = clipUrl({ event: event.id, camera });
    download.download = "";
    download.title = "Download this event (pre-roll to post-roll)";
    item.append(download);
    list.append(item);
  }
}

// ---------------------------------------------------------------------------------------------
// Playback: one clip at a time, each within one gap-free range, so that the clip's time maps to
// wall time as X-Clip-Start + currentTime. When a clip ends, the next one starts where it ended
// (or at the next range, after a gap).

const player = $("player");
/** The clip playing: {camera, startMs, endMs}. */
let current = null;
let playSeq = 0;
/** Listeners of the clip being loaded, removed when another load supersedes it. */
let loading = null;

function say(text) {
  $("now-playing").textContent = text;
}

function showPlayerError(text) {
  const note = $("player-error");
  note.textContent = text || "";
  note.hidden = !text;
  if (text) player.dataset.error = text;
  else delete player.dataset.error;
}

/** The ranges of `camera` that end after `ms`, in order, and whether the last of them may
 * still be growing (it is the newest there is): from the listing when it covers that, else
 * asked for. */
async function rangesAfter(camera, ms) {
  const listed = listing.cameras.find((c) => c.camera === camera);
  const known = listed ? listed.ranges.filter((r) => r.end_ms > ms + END_SLACK_MS) : [];
  const listingReachesNow = view.to >= Date.now();
  if (known.length && known[0].start_ms <= ms && (known.length > 1 || listingReachesNow)) {
    return known;
  }
  const body = await api(`/api/recordings?${new URLSearchParams({ camera, from: Math.floor(ms) })}`);
  const found = body.cameras.find((c) => c.camera === camera);
  return (found ? found.ranges : [])
    .filter((r) => r.end_ms > ms + END_SLACK_MS)
    .sort((a, b) => a.start_ms - b.start_ms);
}

/** The clip to ask for to play `camera` from `ms`: within one gap-free range (so its time maps
 * to wall time), at most CHUNK_MS long; null when there is no video after `ms`. */
async function nextClip(camera, ms) {
  const ranges = await rangesAfter(camera, ms);
  const range = ranges[0];
  if (!range) return null;
  const from = Math.max(ms, range.start_ms);
  // The newest range may still be recording: ask past its listed end, the box sends what
  // exists. Any other range ends where its gap starts.
  const newest = range === ranges[ranges.length - 1];
  const to = newest ? from + CHUNK_MS : Math.min(from + CHUNK_MS, range.end_ms);
  return { from, url: clipUrl({ camera, from: Math.floor(from), to: Math.ceil(to) }) };
}

/** Plays `camera` from wall time `ms`, or from the next video after it (a click in a gap). */
async function playAt(camera, ms) {
  const seq = ++playSeq;
  showPlayerError("");
  say(`${camera}: looking for video at ${fmtMoment(ms)}…`);
  try {
    const clip = await nextClip(camera, ms);
    if (seq !== playSeq) return;
    if (!clip) {
      say(`${camera}: no video after ${fmtMoment(ms)}.`);
      return;
    }
    await loadClip(seq, camera, clip.url, clip.from);
  } catch (error) {
    if (seq === playSeq) showPlayerError(`Cannot play ${camera}: ${error.message}`);
  }
}

/** Plays an event from its pre-roll: the clip of `?event=ID`, then on like any moment. */
async function playEvent(camera, event) {
  const seq = ++playSeq;
  showPlayerError("");
  say(`${camera}: loading the event at ${fmtMoment(event.trigger_start_ms)}…`);
  try {
    await loadClip(seq, camera, clipUrl({ event: event.id, camera }), event.start_ms);
  } catch (error) {
    if (seq === playSeq) showPlayerError(`Cannot play the event: ${error.message}`);
  }
}

/** Loads clip `url` of `camera` into the player, seeks to wall time `seekMs` and plays. The clip
 * starts at the key frame at or before what was asked; X-Clip-Start says where exactly, read
 * with a HEAD request sent alongside the player's own first request. */
async function loadClip(seq, camera, url, seekMs) {
  if (loading) loading.abort();
  const listeners = new AbortController();
  loading = listeners;
  const head = fetch(url, { method: "HEAD", credentials: "same-origin" }).then(async (response) => {
    if (!response.ok) {
      const answer = await fetch(url, { method: "GET", headers: { Range: "bytes=0-0" } });
      const body = await answer.json().catch(() => ({}));
      throw new Error(body.error || `HTTP ${response.status}`);
    }
    return {
      startMs: Date.parse(response.headers.get("X-Clip-Start")),
      endMs: Date.parse(response.headers.get("X-Clip-End")),
    };
  });
  const metadata = new Promise((resolve, reject) => {
    player.addEventListener("loadedmetadata", resolve, { once: true, signal: listeners.signal });
    player.addEventListener("error", () => reject(new Error(mediaError())), {
      once: true,
      signal: listeners.signal,
    });
  });
  player.src = url;
  let clip;
  try {
    [clip] = await Promise.all([head, metadata]);
  } finally {
    listeners.abort();
  }
  if (seq !== playSeq) return;
  if (!Number.isFinite(clip.startMs)) throw new Error("the box did not say where the clip starts");
  current = { camera, startMs: clip.startMs, endMs: clip.endMs };
  player.dataset.camera = camera;
  player.dataset.clipStartMs = String(clip.startMs);
  player.dataset.clipEndMs = String(clip.endMs);
  player.dataset.seekMs = String(Math.round(seekMs));
  player.currentTime = Math.max(0, (seekMs - clip.startMs) / 1000);
  player.playbackRate = Number($("speed").value);
  try {
    await player.play();
  } catch (error) {
    if (error.name !== "NotAllowedError") throw error;
    // No gesture this page can vouch for (e.g. a reload): play muted rather than not at all.
    player.muted = true;
    await player.play();
  }
  updatePlayhead();
}

/** The next clip after the one that ended, across a gap when there is one. */
async function playOn() {
  if (!current) return;
  const { camera, endMs } = current;
  const seq = ++playSeq;
  try {
    const clip = await nextClip(camera, endMs);
    if (seq !== playSeq) return;
    if (!clip) {
      say(`${camera}: end of the recording at ${fmtMoment(endMs)}.`);
      return;
    }
    await loadClip(seq, camera, clip.url, clip.from);
  } catch (error) {
    if (seq === playSeq) showPlayerError(`Cannot play on: ${error.message}`);
  }
}

function mediaError() {
  const error = player.error;
  if (!error) return "playback failed";
  if (error.code === 4) {
    return "this browser cannot play this video (H.265 needs a browser with HEVC support); download it instead";
  }
  return `playback failed (${error.message || `code ${error.code}`})`;
}

/** The wall time shown by the player, or null. */
function playingWallMs() {
  if (!current || Number.isNaN(player.currentTime)) return null;
  return current.startMs + player.currentTime * 1000;
}

function updatePlayhead() {
  const wall = playingWallMs();
  for (const head of document.querySelectorAll(".playhead")) {
    const mine = current && head.parentElement.dataset.camera === current.camera;
    const visible = mine && wall !== null && wall >= view.from && wall <= view.to;
    head.hidden = !visible;
    if (visible) head.style.left = `${pct(wall)}%`;
  }
  if (wall !== null) {
    player.dataset.wallMs = String(Math.round(wall));
    const state = player.paused ? "paused" : "playing";
    say(`${current.camera} · ${fmtMoment(wall)} · ${state}`);
  }
}

player.addEventListener("timeupdate", updatePlayhead);
player.addEventListener("pause", updatePlayhead);
player.addEventListener("ended", playOn);
player.addEventListener("error", () => {
  if (player.getAttribute("src")) showPlayerError(mediaError());
});
$("speed").addEventListener("change", () => {
  player.playbackRate = Number($("speed").value);
});

// ---------------------------------------------------------------------------------------------
// Live state: one EventSource on /api/live, fed by the box's state bus.

/** id → sensor as the stream describes it ({id, name, kind, unit, role, camera_role, value,
 * time_ms}) plus its row. */
const sensors = new Map();
let live = null;

/** The live panel's groups: [title, the roles in it]. */
const GROUPS = [
  ["Sensors", ["sensor"]],
  ["Outputs", ["output"]],
  ["Cameras", ["camera"]],
  ["Box", ["health", "store_status", "counter"]],
];

function setLiveStatus(text, ok) {
  const badge = $("live-status");
  badge.textContent = text;
  badge.classList.toggle("ok", ok);
}

function connectLive() {
  live = new EventSource("/api/live");
  live.addEventListener("open", () => setLiveStatus("live", true));
  live.addEventListener("snapshot", (e) => {
    sensors.clear();
    for (const sensor of JSON.parse(e.data).sensors) sensors.set(sensor.id, sensor);
    renderState();
    setLiveStatus("live", true);
  });
  live.addEventListener("sensor", (e) => {
    const sensor = JSON.parse(e.data);
    sensors.set(sensor.id, sensor);
    renderState();
  });
  live.addEventListener("change", (e) => {
    const change = JSON.parse(e.data);
    const sensor = sensors.get(change.id);
    if (!sensor) return;
    sensor.value = change.value;
    sensor.text = change.text;
    sensor.time_ms = change.time_ms;
    updateSensorRow(sensor);
    // A trigger or an event's end changes what the timeline shows.
    const triggers = sensor.role === "sensor" && sensor.kind === "binary";
    const events = sensor.role === "camera" && ["event", "recording"].includes(sensor.camera_role);
    if ((triggers || events) && viewIncludesNow()) scheduleRefresh(1500);
  });
  live.addEventListener("error", () => {
    setLiveStatus("reconnecting…", false);
    if (live.readyState === EventSource.CLOSED) {
      // Refused (logged out, or too many pages open): find out which, then retry.
      api("/api/recordings?from=0&to=0")
        .then(() => setTimeout(connectLive, 5000))
        .catch(() => {});
    }
  });
}

function renderState() {
  const box = $("state");
  box.replaceChildren();
  for (const [title, roles] of GROUPS) {
    const members = [...sensors.values()]
      .filter((s) => roles.includes(s.role))
      .sort((a, b) => a.name.localeCompare(b.name));
    if (!members.length) continue;
    const group = el("div", "state-group");
    group.append(el("h3", null, title));
    for (const sensor of members) {
      sensor.row = sensorRow(sensor);
      group.append(sensor.row);
      updateSensorRow(sensor);
    }
    box.append(group);
  }
}

function sensorRow(sensor) {
  const row = el("div", "sensor");
  row.dataset.name = sensor.name;
  row.append(el("span", "name", sensor.name));
  const value = el("span", "value");
  row.append(value);
  if (sensor.role === "output" && sensor.kind === "binary") {
    const toggle = el("button", "switch");
    toggle.type = "button";
    toggle.addEventListener("click", () => switchOutput(sensor.name, sensor.value !== true));
    row.append(toggle);
  }
  row.append(el("span", "since muted"));
  return row;
}

/** The words for a binary value, by what the sensor is. */
function binaryWords(sensor) {
  if (sensor.role === "output") return ["on", "off"];
  switch (sensor.camera_role) {
    case "online":
      return ["online", "offline"];
    case "recording":
      return ["recording", "not recording"];
    case "event":
      return ["event", "no event"];
    default:
      return ["active", "idle"];
  }
}

function valueText(sensor) {
  const v = sensor.value;
  if (v === null || v === undefined) return "–";
  // Status codes (a camera's, the store's) come with their words.
  if (sensor.text) return sensor.text;
  if (sensor.kind === "binary") return binaryWords(sensor)[v ? 0 : 1];
  if (typeof v === "number") {
    const whole = sensor.kind === "unsigned" || sensor.role === "counter" || Math.abs(v) >= 100;
    const digits = whole ? 0 : Math.abs(v) >= 10 ? 1 : 2;
    return `${v.toFixed(digits)}${sensor.unit ? ` ${sensor.unit}` : ""}`;
  }
  return String(v);
}

function updateSensorRow(sensor) {
  const row = sensor.row;
  if (!row) return;
  row.querySelector(".value").textContent = valueText(sensor);
  // Active sensors and outputs stand out; a camera's states are good news when true.
  const active = sensor.kind === "binary" && sensor.value === true;
  const alerting = sensor.role === "sensor" || sensor.role === "output";
  row.classList.toggle("on", active && alerting);
  row.classList.toggle("good", active && sensor.role === "camera");
  const healthy = sensor.text === "online" || sensor.text === "ok";
  row.classList.toggle("bad", !!sensor.text && !healthy);
  row.dataset.value = JSON.stringify(sensor.value);
  if (sensor.time_ms) row.dataset.timeMs = String(sensor.time_ms);
  const since = row.querySelector(".since");
  since.textContent = sensor.time_ms ? `since ${fmtMoment(sensor.time_ms)}` : "";
  const toggle = row.querySelector(".switch");
  if (toggle) {
    toggle.textContent = sensor.value === true ? "Switch off" : "Switch on";
    toggle.setAttribute("aria-pressed", String(sensor.value === true));
  }
}

// Output switches: POST /api/outputs/{name}?state=on|off, the request `nvrctl set` sends (see
// the README's "Switching outputs from upstream"). The new level arrives over /api/live like any
// change, so the row shows what the pin really did, not what was asked.
async function switchOutput(name, on) {
  const note = $("output-error");
  note.hidden = true;
  try {
    const path = `/api/outputs/${encodeURIComponent(name)}?${new URLSearchParams({ state: on ? "on" : "off" })}`;
    await api(path, { method: "POST" });
  } catch (error) {
    note.textContent = `Cannot switch ${name}: ${error.message}`;
    note.hidden = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Controls

function zoom(factor) {
  const wall = playingWallMs();
  const length = view.to - view.from;
  const center = wall !== null && wall >= view.from && wall <= view.to ? wall : view.from + length / 2;
  const newLength = Math.min(Math.max(length * factor, MIN_VIEW_MS), MAX_VIEW_MS);
  const share = (center - view.from) / length;
  setView(center - newLength * share, center + newLength * (1 - share));
}

function fit() {
  const ranges = listing.cameras.flatMap((c) => c.ranges);
  if (!ranges.length) return;
  const start = Math.min(...ranges.map((r) => r.start_ms));
  const end = Math.max(...ranges.map((r) => r.end_ms));
  const margin = Math.max((end - start) * 0.05, 5000);
  setView(start - margin, end + margin);
}

function pan(share) {
  const shift = (view.to - view.from) * share;
  setView(view.from + shift, view.to + shift);
}

$("day-prev").addEventListener("click", () => showDay(previousLocalDay(localDayStart(view.from))));
$("day-next").addEventListener("click", () => showDay(nextLocalDay(localDayStart(view.from))));
$("day").addEventListener("change", () => {
  const [y, m, d] = $("day").value.split("-").map(Number);
  if (y && m && d) showDay(new Date(y, m - 1, d).getTime());
});
$("zoom-in").addEventListener("click", () => zoom(1 / 4));
$("zoom-out").addEventListener("click", () => zoom(4));
$("zoom-fit").addEventListener("click", fit);
$("pan-left").addEventListener("click", () => pan(-0.5));
$("pan-right").addEventListener("click", () => pan(0.5));
window.addEventListener("resize", renderAxis);

setInterval(() => {
  if (viewIncludesNow() && !document.hidden) loadListing();
}, REFRESH_MS);

showDay(localDayStart(Date.now()));
connectLive();
