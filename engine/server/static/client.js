// Mimic's browser client: camera → WebRTC → the animated portrait in <video id="output">.
// The token comes from the URL fragment (#token=…), which the browser never sends to the server;
// it travels only in the Authorization header. Given one, streaming starts on load.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: null, pc: null, channel: null, session: null, server: null, rtt: null, reenactor: "" };

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + state.token }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers, cache: "no-store" }));
  let body = {};
  try { body = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok) {
    throw new Error(response.status === 401 ? "wrong token" : (body.error || response.statusText));
  }
  return body;
}

function iceComplete(pc) {  // the server takes the whole offer at once (no trickle)
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 3000);
  });
}

async function start() {
  status("Opening the camera…");
  const camera = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  $("camera").srcObject = camera;
  const pc = state.pc = new RTCPeerConnection({ iceServers: [] });
  const channel = state.channel = pc.createDataChannel("control");
  channel.onmessage = (event) => message(JSON.parse(event.data));
  channel.onopen = () => {
    $("controls").disabled = false;
    $("options").disabled = false;
    setInterval(() => send({ type: "ping", t: performance.now() }), 1000);
  };
  pc.addTransceiver(camera.getVideoTracks()[0], { direction: "sendrecv" });
  pc.ontrack = (event) => { $("output").srcObject = new MediaStream([event.track]); };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "failed" || pc.connectionState === "closed") status("Connection lost: reload to reconnect", true);
  };
  status("Connecting…");
  await pc.setLocalDescription(await pc.createOffer());
  await iceComplete(pc);
  const answer = await api("/offer", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
  });
  state.session = answer.session;
  await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
  setInterval(readLatency, 1000);
}

function send(message) {
  if (state.channel && state.channel.readyState === "open") state.channel.send(JSON.stringify(message));
}

function message(m) {
  if (m.type === "hello") {
    state.reenactor = m.reenactor;
    status("Streaming · " + m.reenactor);
    document.querySelectorAll("[data-option]").forEach((el) => {  // only the controls this reenactor takes
      el.closest("label").hidden = !m.options.includes(el.dataset.option);
    });
    $("latent").closest("label").hidden = !m.targets.includes("latent");
    $("random").hidden = !m.targets.includes("random");
  }
  else if (m.type === "error") status(m.message, true);
  else if (m.type === "pong") state.rtt = performance.now() - m.t;
  else if (m.type === "stats") state.server = m;
  else if (m.type === "ok" && m.of === "target") status("Streaming · " + state.reenactor + " · target ready");
}

async function readLatency() {
  if (!state.pc) return;
  const parts = [];
  let jitter = null, fps = null;
  (await state.pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video") {
      if (r.jitterBufferEmittedCount) jitter = 1000 * r.jitterBufferDelay / r.jitterBufferEmittedCount;
      fps = r.framesPerSecond;
    }
  });
  if (state.rtt !== null) parts.push("round trip " + state.rtt.toFixed(0) + " ms");
  if (state.server) parts.push("server " + state.server.server_ms.toFixed(0) + " ms");
  if (jitter !== null) parts.push("jitter buffer " + jitter.toFixed(0) + " ms");
  if (fps) parts.push(fps.toFixed(0) + " fps");
  if (state.server) parts.push(state.server.dropped + " dropped");
  $("latency").textContent = parts.join(" · ") || "—";
}

async function upload(input, kind) {
  const file = input.files[0];
  if (!file) return;
  status("Uploading " + file.name + "…");
  try {
    await api("/target?kind=" + kind, { method: "POST", body: file, headers: { "X-Mimic-Session": state.session } });
  } catch (e) {
    status(file.name + ": " + e.message, true);
  }
  input.value = "";
}

function wire() {
  $("portrait").onchange = () => upload($("portrait"), "image");
  $("latent").onchange = () => upload($("latent"), "latent");
  $("neutral").onclick = () => send({ type: "neutral" });
  $("random").onclick = () => {
    status("Inventing a face…");
    send({ type: "target", kind: "random", seed: Math.floor(Math.random() * 2147483647) });
  };
  document.querySelectorAll("[data-option]").forEach((el) => {
    el.addEventListener("change", () => {
      const value = el.type === "checkbox" ? el.checked : el.type === "range" ? Number(el.value) : el.value;
      send({ type: "set", name: el.dataset.option, value });
    });
  });
  $("connect").onsubmit = (event) => {
    event.preventDefault();
    state.token = $("token").value.trim();
    $("connect").hidden = true;
    run();
  };
}

function run() {
  start().catch((e) => { status(e.message || String(e), true); $("connect").hidden = false; });
}

wire();
state.token = new URLSearchParams(location.hash.slice(1)).get("token");
if (state.token) run(); else { status("Enter the server's token"); $("connect").hidden = false; }
