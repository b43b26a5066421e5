// The page of `moderncnn serve`: plain JavaScript, no build step and no CDN, so it works offline.
"use strict";

const $ = (id) => document.getElementById(id);
let meta = null;
let token = sessionStorage.getItem("moderncnn-token") || "";

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

// Every API call goes through here: the token when there is one, and the server's one-sentence errors shown.
async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token) headers["Authorization"] = "Bearer " + token;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (response.status === 401) $("token-box").hidden = false;
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function summary(m) {
  const accuracy = m.test_accuracy == null ? "not recorded" : (100 * m.test_accuracy).toFixed(1) + " %";
  const shape = m.input_shape.join("×");
  return `${m.parameters.toLocaleString()} parameters · input ${shape} · ${m.num_classes} classes ` +
    `(${m.classes.slice(0, 12).join(", ")}${m.num_classes > 12 ? ", …" : ""}) · test accuracy ${accuracy} · ` +
    `${m.backend} · ${m.source}`;
}

async function loadNetwork() {
  meta = await api("/metadata");
  $("network-name").textContent = meta.network;
  $("summary").textContent = summary(meta);
  $("draw-box").hidden = meta.channels !== 1;
  if (meta.explain) {
    const f = await api("/filters");
    $("filters").src = "data:image/png;base64," + f.png;
    $("filters").hidden = false;
    $("filters-layer").textContent = `${f.layer}: ${f.shape.join("×")}`;
  } else {
    $("cam-note").textContent = "Explanations need the PyTorch network: serve the run rather than its ONNX export.";
  }
}

function showBars(prediction) {
  const bars = $("bars");
  bars.replaceChildren();
  for (const item of prediction.top_k) {
    const row = document.createElement("div");
    row.className = "bar";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = item.class;
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = (100 * item.probability).toFixed(1) + "%";
    track.append(fill);
    const value = document.createElement("span");
    value.textContent = (100 * item.probability).toFixed(1) + " %";
    row.append(name, track, value);
    bars.append(row);
  }
  $("top-label").textContent = prediction.label;
}

function showExplanation(answer) {
  $("overlay").src = "data:image/png;base64," + answer.overlay_png;
  $("overlay").hidden = false;
  $("cam-note").textContent = `Grad-CAM of "${answer.target}" (${(100 * answer.probability).toFixed(1)} %) at ` +
    `layer ${answer.layer}.`;
  const stages = $("stages");
  stages.replaceChildren();
  for (const stage of answer.stages) {
    const box = document.createElement("figure");
    box.className = "stage";
    const img = document.createElement("img");
    img.src = "data:image/png;base64," + stage.png;
    img.alt = stage.name;
    const caption = document.createElement("figcaption");
    caption.className = "small muted";
    caption.textContent = `${stage.name}: ${stage.shape.join("×")}`;
    box.append(img, caption);
    stages.append(box);
  }
}

async function classify(blob, name) {
  showError("");
  $("top-label").textContent = "…";
  const form = () => {
    const data = new FormData();
    data.append("file", blob, name);
    return data;
  };
  try {
    const answer = await api("/predict?top_k=5", { method: "POST", body: form() });
    showBars(answer.predictions[0]);
    $("preprocessing").textContent = `Preprocessing: ${answer.preprocessing.color}, resized to ` +
      `${answer.preprocessing.resize.join("×")}, normalised with the training data's mean and std.`;
    if (meta && meta.explain) showExplanation(await api("/explain", { method: "POST", body: form() }));
  } catch (err) {
    $("top-label").textContent = "—";
    showError(err.message);
  }
}

function useFile(file) {
  if (!file) return;
  $("preview").src = URL.createObjectURL(file);
  $("preview").hidden = false;
  classify(file, file.name);
}

function setUpDrop() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => useFile(e.target.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    useFile(e.dataTransfer.files[0]);
  });
}

function setUpCanvas() {
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  const clear = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height); };
  clear();
  let drawing = false;
  const point = (e) => {
    const box = canvas.getBoundingClientRect();
    return [(e.clientX - box.left) * canvas.width / box.width, (e.clientY - box.top) * canvas.height / box.height];
  };
  canvas.addEventListener("pointerdown", (e) => { drawing = true; ctx.beginPath(); ctx.moveTo(...point(e)); });
  canvas.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    ctx.lineTo(...point(e));
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 22;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.stroke();
  });
  window.addEventListener("pointerup", () => { drawing = false; });
  $("clear").addEventListener("click", clear);
  $("classify-drawing").addEventListener("click", () => canvas.toBlob((blob) => classify(blob, "drawing.png")));
}

$("token-save").addEventListener("click", () => {
  token = $("token").value;
  sessionStorage.setItem("moderncnn-token", token);
  $("token-box").hidden = true;
  loadNetwork().catch((err) => showError(err.message));
});
setUpDrop();
setUpCanvas();
loadNetwork().catch((err) => showError(err.message));
