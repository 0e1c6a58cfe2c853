/// The page served at `/`: one static HTML document with its script, talking to the JSON API.
/// No build step and no external resources, so it works offline and on loopback.
///
/// Query parameters pre-fill it (shareable probes): `prompt`, `candidates` (separated by `|`),
/// `compare=1`, `stream=0|1`, and `run=1` to probe and complete on load.
enum WebPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Engram</title>
<style>
  :root { --fg:#1d2433; --muted:#667085; --line:#d9dee8; --bg:#f6f7fb; --card:#fff; --accent:#2f5bea; --up:#0b7a3e; --down:#b42318; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
  header { display:flex; align-items:baseline; gap:16px; padding:14px 24px; background:var(--card); border-bottom:1px solid var(--line); }
  header h1 { font-size:18px; margin:0; }
  header .status { color:var(--muted); }
  main { display:grid; grid-template-columns: minmax(0,1.25fr) minmax(0,1fr); gap:16px; padding:16px 24px; }
  section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:14px 16px; }
  section h2 { font-size:15px; margin:0 0 10px; }
  label { display:block; font-weight:600; margin:8px 0 4px; }
  textarea, input[type=text], input[type=password], input[type=number], select { width:100%; padding:7px 9px; border:1px solid var(--line); border-radius:6px; font:inherit; background:#fff; }
  textarea { min-height:58px; resize:vertical; }
  .row { display:flex; gap:8px; align-items:center; flex-wrap:wrap; }
  .row > * { flex:1; }
  .row > .fixed { flex:0 0 auto; }
  button { padding:7px 14px; border:1px solid var(--accent); background:var(--accent); color:#fff; border-radius:6px; font:inherit; cursor:pointer; }
  button.secondary { background:#fff; color:var(--accent); }
  button.danger { background:#fff; color:var(--down); border-color:var(--down); }
  button:disabled { opacity:.5; cursor:default; }
  .out { white-space:pre-wrap; background:var(--bg); border:1px solid var(--line); border-radius:6px; padding:8px 10px; min-height:40px; margin-top:8px; font-family: ui-monospace, Menlo, monospace; font-size:13px; }
  .out .prompt { color:var(--muted); }
  table { width:100%; border-collapse:collapse; margin-top:10px; }
  th, td { text-align:left; padding:5px 6px; border-bottom:1px solid var(--line); vertical-align:top; }
  th { color:var(--muted); font-weight:600; font-size:12px; }
  td.num { font-variant-numeric: tabular-nums; white-space:nowrap; }
  .bar { height:6px; background:var(--accent); border-radius:3px; min-width:1px; }
  .bar.old { background:#98a2b3; }
  .up { color:var(--up); } .down { color:var(--down); }
  .error { color:var(--down); margin-top:6px; white-space:pre-wrap; }
  .muted { color:var(--muted); }
  .edit { border:1px solid var(--line); border-radius:6px; padding:8px 10px; margin-top:8px; }
  .edit.off { opacity:.55; }
  .edit .fact { font-weight:600; }
  .pill { display:inline-block; padding:0 7px; border-radius:10px; background:var(--bg); border:1px solid var(--line); font-size:12px; color:var(--muted); }
  .topk { display:flex; flex-wrap:wrap; gap:6px; margin-top:8px; }
  .topk span { background:var(--bg); border:1px solid var(--line); border-radius:5px; padding:1px 6px; font-family: ui-monospace, Menlo, monospace; font-size:12px; }
</style>
</head>
<body>
<header><h1>Engram</h1><span class="status" id="status">connecting…</span></header>
<main>
  <div>
    <section>
      <h2>Probe</h2>
      <label for="probe-prompt">Prompt</label>
      <textarea id="probe-prompt">The Eiffel Tower is located in the city of</textarea>
      <label for="probe-candidates">Candidate answers (one per line)</label>
      <textarea id="probe-candidates" rows="3" style="min-height:76px">Paris
Rome</textarea>
      <div class="row" style="margin-top:8px">
        <label class="fixed" style="margin:0;font-weight:400"><input type="checkbox" id="probe-compare" checked> compare with the unedited model</label>
        <span></span>
        <button class="fixed" id="probe-run">Probe</button>
      </div>
      <div id="probe-error" class="error"></div>
      <div id="probe-result"></div>
    </section>
    <section style="margin-top:16px">
      <h2>Complete</h2>
      <label for="gen-prompt">Prompt</label>
      <textarea id="gen-prompt">The Eiffel Tower is located in the city of</textarea>
      <div class="row" style="margin-top:8px">
        <label class="fixed" style="margin:0;font-weight:400">max tokens <input type="number" id="gen-max" value="24" min="1" max="1024" style="width:80px"></label>
        <label class="fixed" style="margin:0;font-weight:400"><input type="checkbox" id="gen-chat"> chat</label>
        <label class="fixed" style="margin:0;font-weight:400"><input type="checkbox" id="gen-stream" checked> stream</label>
        <span></span>
        <button class="fixed" id="gen-run">Generate</button>
      </div>
      <div id="gen-error" class="error"></div>
      <div class="out" id="gen-out"></div>
    </section>
  </div>
  <div>
    <section>
      <h2>Add an edit</h2>
      <label for="edit-prompt">Prompt (containing the subject)</label>
      <input type="text" id="edit-prompt" value="The Eiffel Tower is located in the city of">
      <div class="row">
        <div><label for="edit-subject">Subject</label><input type="text" id="edit-subject" value="The Eiffel Tower"></div>
        <div><label for="edit-target">New target</label><input type="text" id="edit-target" value="Rome"></div>
      </div>
      <div class="row">
        <div><label for="edit-method">Method</label><select id="edit-method"></select></div>
        <div><label for="edit-token">Token</label><input type="password" id="edit-token" placeholder="bearer token for editing"></div>
      </div>
      <label for="edit-hyper">Hyper-parameters (JSON)</label>
      <input type="text" id="edit-hyper" value="{}">
      <div class="row" style="margin-top:10px"><span class="muted" id="method-help"></span><button class="fixed" id="edit-add">Add edit</button></div>
      <div id="edit-error" class="error"></div>
    </section>
    <section style="margin-top:16px">
      <h2>Edits <span class="pill" id="edit-count">0</span></h2>
      <div id="edits"><div class="muted">No edits yet.</div></div>
    </section>
  </div>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
const pct = (p) => (p * 100 >= 0.01 ? (p * 100).toFixed(2) : (p * 100).toExponential(1)) + "%";
let methods = [];

function headers() {
  const h = {"Content-Type": "application/json"};
  const token = $("edit-token").value.trim();
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

async function api(method, path, body, auth) {
  const res = await fetch(path, {method, headers: headers(), body: body === undefined ? undefined : JSON.stringify(body)});
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error((data.error && data.error.message) || (res.status + " " + res.statusText));
  return data;
}

async function refreshStatus() {
  try {
    const h = await api("GET", "/health");
    $("status").textContent = h.model + " · " + h.edits_in_force.length + " edit(s) in force · queue " + h.queue_waiting +
      (h.editing_enabled ? "" : " · editing disabled (no token configured)");
  } catch (e) { $("status").textContent = "offline: " + e.message; }
}

async function loadMethods() {
  const m = await api("GET", "/v1/methods");
  methods = m.data;
  $("edit-method").innerHTML = methods.map((x) => `<option>${esc(x.name)}</option>`).join("");
  showMethodHelp();
}
function showMethodHelp() {
  const m = methods.find((x) => x.name === $("edit-method").value);
  $("method-help").textContent = m ? (m.changes_weights ? "changes weights" : "prompt-side: no weights change") +
    (m.parameters.length ? " · " + m.parameters.map((p) => p.name + (p.default !== undefined ? "=" + p.default : "")).join(", ") : "") : "";
}

function candidateList() {
  return $("probe-candidates").value.split("\n").map((s) => s.trim()).filter((s) => s.length);
}

async function probe() {
  $("probe-error").textContent = "";
  $("probe-run").disabled = true;
  try {
    const r = await api("POST", "/v1/probe", {prompt: $("probe-prompt").value, candidates: candidateList(), top_k: 8,
                                              compare_unedited: $("probe-compare").checked});
    renderProbe(r);
  } catch (e) { $("probe-error").textContent = e.message; }
  finally { $("probe-run").disabled = false; }
}

function renderProbe(r) {
  const cmp = !!r.unedited;
  let html = `<table><tr><th>candidate</th><th>P now</th>${cmp ? "<th>P unedited</th><th>change</th>" : ""}<th>log P</th><th>rank of 1st token</th></tr>`;
  r.current.candidates.forEach((c, i) => {
    const u = cmp ? r.unedited.candidates[i] : null;
    const delta = u ? c.logprob - u.logprob : 0;
    html += `<tr><td>${esc(c.text)}<div class="bar" style="width:${Math.max(c.probability * 100, 0.5)}%"></div>` +
            (u ? `<div class="bar old" style="width:${Math.max(u.probability * 100, 0.5)}%"></div>` : "") + `</td>` +
            `<td class="num">${pct(c.probability)}</td>` +
            (u ? `<td class="num">${pct(u.probability)}</td><td class="num ${delta > 0 ? "up" : delta < 0 ? "down" : ""}">${delta > 0 ? "+" : ""}${delta.toFixed(2)} nats</td>` : "") +
            `<td class="num">${c.logprob.toFixed(3)}</td><td class="num">${c.first_token_rank}${u ? ` <span class="muted">(was ${u.first_token_rank})</span>` : ""}</td></tr>`;
  });
  html += `</table><div class="muted" style="margin-top:8px">Most likely next tokens now:</div><div class="topk">` +
          r.current.top_k.map((t) => `<span>${esc(JSON.stringify(t.text))} ${pct(t.probability)}</span>`).join("") + `</div>`;
  if (cmp) html += `<div class="muted" style="margin-top:6px">Unedited:</div><div class="topk">` +
          r.unedited.top_k.map((t) => `<span>${esc(JSON.stringify(t.text))} ${pct(t.probability)}</span>`).join("") + `</div>`;
  html += `<div class="muted" style="margin-top:6px">edits in force: ${r.edits_in_force.length ? r.edits_in_force.map(esc).join(", ") : "none"}</div>`;
  $("probe-result").innerHTML = html;
}

async function generate() {
  $("gen-error").textContent = "";
  $("gen-run").disabled = true;
  const prompt = $("gen-prompt").value, chat = $("gen-chat").checked;
  $("gen-out").innerHTML = chat ? "" : `<span class="prompt">${esc(prompt)}</span>`;
  const path = chat ? "/v1/chat/completions" : "/v1/completions";
  const stream = $("gen-stream").checked;
  const body = {max_tokens: Number($("gen-max").value) || 24, temperature: 0, stream};
  if (chat) body.messages = [{role: "user", content: prompt}]; else body.prompt = prompt;
  try {
    if (!stream) {
      const r = await api("POST", path, body);
      $("gen-out").insertAdjacentText("beforeend", chat ? r.choices[0].message.content : r.choices[0].text);
      return;
    }
    const res = await fetch(path, {method: "POST", headers: headers(), body: JSON.stringify(body)});
    if (!res.ok) { const d = await res.json().catch(() => ({})); throw new Error((d.error && d.error.message) || res.statusText); }
    const reader = res.body.getReader(), decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const line = buffer.slice(0, cut).replace(/^data: /, ""); buffer = buffer.slice(cut + 2);
        if (line === "[DONE]") continue;
        const chunk = JSON.parse(line);
        if (chunk.error) throw new Error(chunk.error.message);
        const c = chunk.choices[0];
        const piece = c ? (chat ? (c.delta.content || "") : c.text) : "";
        $("gen-out").insertAdjacentText("beforeend", piece);
      }
    }
  } catch (e) { $("gen-error").textContent = e.message; }
  finally { $("gen-run").disabled = false; }
}

async function addEdit() {
  $("edit-error").textContent = "";
  $("edit-add").disabled = true;
  try {
    let hyper;
    try { hyper = JSON.parse($("edit-hyper").value || "{}"); } catch (e) { throw new Error("hyper-parameters: " + e.message); }
    await api("POST", "/v1/edits", {method: $("edit-method").value, hyper_parameters: hyper, requests: [{
      prompt: $("edit-prompt").value, subject: $("edit-subject").value, target_new: $("edit-target").value}]}, true);
    await refreshEdits();
  } catch (e) { $("edit-error").textContent = e.message; }
  finally { $("edit-add").disabled = false; }
}

async function refreshEdits() {
  const list = await api("GET", "/v1/edits");
  $("edit-count").textContent = list.data.length;
  $("edits").innerHTML = list.data.length ? list.data.map((e) => `
    <div class="edit ${e.enabled ? "" : "off"}">
      <div class="fact">${e.requests.map((r) => esc(r.prompt) + " → <u>" + esc(r.target_new) + "</u>").join("<br>")}</div>
      <div class="muted">${esc(e.id)} · ${esc(e.method)} · ${e.enabled ? "in force" : "disabled"} · ${e.patch.bytes} bytes</div>
      <div class="muted">${Object.entries(e.hyper_parameters).map(([k, v]) => esc(k) + "=" + esc(v)).join(", ")}</div>
      <div class="row" style="margin-top:6px">
        <button class="secondary fixed" data-act="${e.enabled ? "disable" : "enable"}" data-id="${esc(e.id)}">${e.enabled ? "Disable" : "Enable"}</button>
        <button class="danger fixed" data-act="delete" data-id="${esc(e.id)}">Delete</button>
        <a class="fixed" href="/v1/edits/${encodeURIComponent(e.id)}/patch">patch file</a><span></span>
      </div>
    </div>`).join("") : `<div class="muted">No edits yet.</div>`;
  refreshStatus();
}

$("edits").addEventListener("click", async (ev) => {
  const b = ev.target.closest("button"); if (!b) return;
  $("edit-error").textContent = "";
  try {
    const id = encodeURIComponent(b.dataset.id);
    if (b.dataset.act === "delete") await api("DELETE", "/v1/edits/" + id, undefined, true);
    else await api("POST", "/v1/edits/" + id + "/" + b.dataset.act, undefined, true);
    await refreshEdits();
  } catch (e) { $("edit-error").textContent = e.message; }
});
$("probe-run").addEventListener("click", probe);
$("gen-run").addEventListener("click", generate);
$("edit-add").addEventListener("click", addEdit);
$("edit-method").addEventListener("change", showMethodHelp);
$("edit-token").addEventListener("change", () => sessionStorage.setItem("engram-token", $("edit-token").value));
$("edit-token").value = sessionStorage.getItem("engram-token") || "";

(async () => {
  const q = new URLSearchParams(location.search);
  if (q.get("prompt")) { $("probe-prompt").value = q.get("prompt"); $("gen-prompt").value = q.get("prompt"); }
  if (q.get("candidates")) $("probe-candidates").value = q.get("candidates").split("|").join("\n");
  if (q.get("compare")) $("probe-compare").checked = q.get("compare") === "1";
  if (q.get("stream")) $("gen-stream").checked = q.get("stream") === "1";
  try { await Promise.all([loadMethods(), refreshEdits()]); } catch (e) { $("edit-error").textContent = e.message; }
  if (q.get("run") === "1") { await probe(); await generate(); }
})();
</script>
</body>
</html>
"""#
}
