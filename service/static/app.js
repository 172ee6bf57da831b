// The page: a drawing pad, its reconstruction and embedding, and an interpolation between two
// digits. It speaks only the service's public API (JSON bodies with base64 PNGs) and shows
// every error the API returns as words in the alert region.
"use strict";

const DEBOUNCE_MS = 150; // wait this long after the last change before asking the service
const FRAME_MS = 120; // animation speed: about 8 frames a second
const INK_WIDTH = 22; // pen width on the 280-px pad: about an MNIST stroke scaled up 10x
const DIGITS = 10;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- the API and its errors

class ApiError extends Error {
  constructor(title, detail, requestId) {
    super(`${title}: ${detail}`);
    this.title = title;
    this.detail = detail;
    this.requestId = requestId || "";
  }
}

async function postJSON(path, body) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError("The service did not answer", `${path}: ${err.message}`);
  }
  if (!response.ok) throw await problemOf(response, path);
  return response.json();
}

async function problemOf(response, path) {
  let problem = {};
  try {
    problem = await response.json();
  } catch {
    // not problem+json (a proxy's error page, say): the status line still says what happened
  }
  const title = problem.title || `${response.status} ${response.statusText}`.trim();
  const detail = problem.detail || `${path} answered with status ${response.status}`;
  return new ApiError(title, detail, problem.request_id);
}

async function fileAsDataURL(path) {
  let response;
  try {
    response = await fetch(path);
  } catch (err) {
    throw new ApiError("The service did not answer", `${path}: ${err.message}`);
  }
  if (!response.ok) throw await problemOf(response, path);
  const blob = await response.blob();
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new ApiError("Cannot read a sample", path));
    reader.readAsDataURL(blob);
  });
}

// One message per part of the page, so a success in one part never hides an error in another.
const alerts = new Map();

function showError(part, err) {
  const known = err instanceof ApiError;
  alerts.set(part, {
    title: known ? err.title : "Something went wrong on this page",
    detail: known ? err.detail : String(err),
    requestId: known ? err.requestId : "",
  });
  renderAlerts();
}

function clearError(part) {
  if (alerts.delete(part)) renderAlerts();
}

function renderAlerts() {
  const items = [...alerts].map(([part, { title, detail, requestId }]) => {
    const box = document.createElement("div");
    box.className = "alert";
    const heading = document.createElement("strong");
    heading.textContent = title;
    const text = document.createElement("p");
    text.textContent = detail;
    box.append(heading, text);
    if (requestId) {
      const id = document.createElement("small");
      id.textContent = `request ${requestId}`;
      box.append(id);
    }
    const dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.textContent = "Dismiss";
    dismiss.addEventListener("click", () => clearError(part));
    box.append(dismiss);
    return box;
  });
  $("alerts").replaceChildren(...items);
}

function debounce(fn, ms) {
  let timer = 0;
  const call = () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
  call.cancel = () => clearTimeout(timer);
  return call;
}

// ---------------------------------------------------------------- the drawing pad

const pad = $("pad");
const pen = pad.getContext("2d");
const strokes = []; // each stroke: [[x, y], ...] in pad pixels; Undo drops the last one
let stroke = null; // the stroke being drawn, while the pointer is down

function paintPad() {
  pen.fillStyle = "#000";
  pen.fillRect(0, 0, pad.width, pad.height);
  strokes.forEach(paintStroke);
  if (!strokes.length) {
    // a hint, dim enough never to count as ink; gone with the first stroke
    pen.fillStyle = "#666";
    pen.font = "16px system-ui, sans-serif";
    pen.textAlign = "center";
    pen.fillText("Draw a digit here", pad.width / 2, pad.height / 2);
  }
}

function paintStroke(points) {
  pen.strokeStyle = pen.fillStyle = "#fff";
  pen.lineWidth = INK_WIDTH;
  pen.lineCap = pen.lineJoin = "round";
  if (points.length === 1) {
    // a tap: a zero-length path draws nothing, so draw the dot itself
    pen.beginPath();
    pen.arc(points[0][0], points[0][1], INK_WIDTH / 2, 0, 2 * Math.PI);
    pen.fill();
    return;
  }
  pen.beginPath();
  pen.moveTo(...points[0]);
  points.slice(1).forEach((p) => pen.lineTo(...p));
  pen.stroke();
}

function padPoint(event) {
  // the pad may be shown smaller than its 280 pixels (phones): map back to pad pixels
  const box = pad.getBoundingClientRect();
  return [
    ((event.clientX - box.left) * pad.width) / box.width,
    ((event.clientY - box.top) * pad.height) / box.height,
  ];
}

pad.addEventListener("pointerdown", (event) => {
  if (event.button !== 0) return;
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  stroke = [padPoint(event)];
  strokes.push(stroke);
  paintPad();
  drawingChanged();
});

pad.addEventListener("pointermove", (event) => {
  if (!stroke) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  events.forEach((e) => stroke.push(padPoint(e)));
  paintPad();
  drawingChanged();
});

for (const name of ["pointerup", "pointercancel"]) {
  pad.addEventListener(name, () => {
    stroke = null;
  });
}

function undo() {
  if (!strokes.length) return;
  strokes.pop();
  stroke = null;
  paintPad();
  drawingChanged();
}

function clearPad() {
  strokes.length = 0;
  stroke = null;
  paintPad();
  drawingChanged();
}

$("undo").addEventListener("click", undo);
$("clear").addEventListener("click", clearPad);
document.addEventListener("keydown", (event) => {
  const typing = event.target.closest && event.target.closest("input, textarea");
  if ((event.ctrlKey || event.metaKey) && event.key === "z" && !typing) {
    event.preventDefault();
    undo();
  }
});

// ---------------------------------------------------------------- reconstruction and embedding

let drawingSeq = 0; // answers to an older drawing than the newest one sent are dropped
const reconstructSoon = debounce(reconstruct, DEBOUNCE_MS);

function drawingChanged() {
  const inked = strokes.length > 0;
  for (const id of ["undo", "clear", "use-a", "use-b"]) $(id).disabled = !inked;
  if (inked) {
    reconstructSoon();
    return;
  }
  reconstructSoon.cancel();
  drawingSeq += 1;
  showReconstruction(null, null);
  drawChart(null);
  clearError("draw");
}

async function reconstruct() {
  const seq = ++drawingSeq;
  const image = pad.toDataURL("image/png");
  try {
    const [redrawn, encoded] = await Promise.all([
      postJSON("/reconstruct?format=json", { image }),
      postJSON("/encode", { image }),
    ]);
    if (seq !== drawingSeq) return;
    showReconstruction(redrawn.images[0], redrawn.mse[0]);
    drawChart(encoded.embeddings[0]);
    clearError("draw");
  } catch (err) {
    if (seq === drawingSeq) showError("draw", err);
  }
}

function showReconstruction(png, mse) {
  const img = $("recon");
  if (png) img.src = `data:image/png;base64,${png}`;
  else img.removeAttribute("src");
  img.hidden = !png;
  $("recon-empty").hidden = Boolean(png);
  $("mse").textContent = mse === null ? "–" : mse.toFixed(4);
}

const chart = $("chart");

function drawChart(values) {
  const g = chart.getContext("2d");
  const { width, height } = chart;
  const mid = height / 2;
  g.clearRect(0, 0, width, height);
  g.fillStyle = "#c9ced6";
  g.fillRect(0, mid, width, 1); // the zero line
  if (!values) {
    chart.setAttribute("aria-label", "Bar chart of the embedding: none yet");
    $("chart-scale").textContent = "The 64 numbers the encoder makes of the drawing.";
    return;
  }
  const scale = Math.max(...values.map(Math.abs)) || 1;
  const slot = width / values.length;
  values.forEach((v, i) => {
    const h = (Math.abs(v) / scale) * (mid - 4);
    g.fillStyle = v >= 0 ? "#2357c5" : "#d0663f";
    g.fillRect(i * slot + 1, v >= 0 ? mid - h : mid + 1, Math.max(slot - 2, 1), h);
  });
  const low = Math.min(...values).toFixed(2);
  const high = Math.max(...values).toFixed(2);
  chart.setAttribute(
    "aria-label",
    `Bar chart of the ${values.length} numbers of the embedding, from ${low} to ${high}`
  );
  $("chart-scale").textContent = `${values.length} numbers, from ${low} to ${high}; bars scaled to ±${scale.toFixed(2)}.`;
}

// ---------------------------------------------------------------- slots A and B, samples

const slots = { a: null, b: null }; // data: URLs of PNGs
const interpolateSoon = debounce(interpolate, DEBOUNCE_MS);

function setSlot(name, dataURL, what) {
  slots[name] = dataURL;
  const img = $(`slot-${name}`);
  img.src = dataURL;
  img.alt = `Slot ${name.toUpperCase()}: ${what}`;
  img.hidden = false;
  $(`slot-${name}-empty`).hidden = true;
  $("run").disabled = !(slots.a && slots.b);
  if (slots.a && slots.b) interpolateSoon();
}

function target() {
  return document.querySelector('input[name="target"]:checked').value;
}

function aimAtOtherSlot(name) {
  // the next sample goes to the other slot, so two picks fill A and B; set at once, before any
  // answer arrives, so quick clicks never land in the same slot
  document.querySelector(`input[name="target"][value="${name === "a" ? "b" : "a"}"]`).checked = true;
}

function useDrawing(name) {
  aimAtOtherSlot(name);
  setSlot(name, pad.toDataURL("image/png"), "your drawing");
}

async function pickSample(digit) {
  const name = target();
  aimAtOtherSlot(name);
  try {
    setSlot(name, await fileAsDataURL(`/static/samples/${digit}.png`), `sample ${digit}`);
    clearError("samples");
  } catch (err) {
    showError("samples", err);
  }
}

function buildSamples() {
  const row = $("samples");
  for (let digit = 0; digit < DIGITS; digit += 1) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sample";
    button.dataset.digit = String(digit);
    button.setAttribute("aria-label", `Sample ${digit}`);
    const img = document.createElement("img");
    img.className = "digit";
    img.src = `/static/samples/${digit}.png`;
    img.alt = "";
    img.width = img.height = 28;
    button.append(img);
    button.addEventListener("click", () => pickSample(digit));
    row.append(button);
  }
}

$("use-a").addEventListener("click", () => useDrawing("a"));
$("use-b").addEventListener("click", () => useDrawing("b"));

// ---------------------------------------------------------------- interpolation

const steps = $("steps");
let interpolateSeq = 0;

function method() {
  return document.querySelector('input[name="method"]:checked').value;
}

async function interpolate() {
  if (!slots.a || !slots.b) return;
  interpolateSoon.cancel();
  const seq = ++interpolateSeq;
  const body = { start: slots.a, end: slots.b, steps: Number(steps.value), method: method() };
  $("interpolate").setAttribute("aria-busy", "true");
  try {
    const answer = await postJSON("/interpolate", body);
    if (seq !== interpolateSeq) return;
    showFrames(answer.frames, `${answer.steps} frames on a ${answer.method} path from A to B.`);
    clearError("interpolate");
  } catch (err) {
    if (seq !== interpolateSeq) return;
    showFrames([], "No frames: see the message above.");
    showError("interpolate", err);
  } finally {
    if (seq === interpolateSeq) $("interpolate").removeAttribute("aria-busy");
  }
}

function showFrames(frames, note) {
  const urls = frames.map((f) => `data:image/png;base64,${f.image}`);
  const items = frames.map((frame, i) => {
    const item = document.createElement("li");
    const img = document.createElement("img");
    img.className = "digit";
    img.src = urls[i];
    img.alt = `t = ${frame.t.toFixed(2)}`;
    img.title = img.alt;
    item.append(img);
    return item;
  });
  $("strip").replaceChildren(...items);
  $("interp-note").textContent = note;
  movie.load(urls);
}

steps.addEventListener("input", () => {
  $("steps-value").textContent = steps.value;
});
steps.addEventListener("change", () => interpolateSoon());
for (const radio of document.querySelectorAll('input[name="method"]')) {
  radio.addEventListener("change", () => interpolateSoon());
}
$("run").addEventListener("click", interpolate);

// The frames played A -> B -> A; paused from the start for people who asked for less motion.
const movie = {
  urls: [],
  index: 0,
  direction: 1,
  timer: 0,
  paused: window.matchMedia("(prefers-reduced-motion: reduce)").matches,

  load(urls) {
    this.urls = urls;
    this.index = 0;
    this.direction = 1;
    $("movie").hidden = $("play").hidden = urls.length === 0;
    this.show();
    this.schedule();
  },

  show() {
    if (this.urls.length) $("movie").src = this.urls[this.index];
  },

  tick() {
    if (this.urls.length < 2) return;
    const next = this.index + this.direction;
    if (next < 0 || next >= this.urls.length) this.direction = -this.direction;
    this.index += this.direction;
    this.show();
  },

  schedule() {
    clearInterval(this.timer);
    if (!this.paused && this.urls.length > 1) this.timer = setInterval(() => this.tick(), FRAME_MS);
    $("play").textContent = this.paused ? "Play" : "Pause";
  },

  toggle() {
    this.paused = !this.paused;
    this.schedule();
  },
};

$("play").addEventListener("click", () => movie.toggle());

// ---------------------------------------------------------------- start

buildSamples();
paintPad();
drawChart(null);
