// SearchGym trajectory viewer: plain JS, no build step. Routes live in the URL hash:
//   #/run/RUN?filters   episode list          #/run/RUN/ep/I          one episode
//   #/compare/A/B?status  flipped tasks       #/compare/A/B/task/ID   both runs side by side
//   #/world?key=KEY     an entity or article of the world
"use strict";

const PAGE = 100;
let INFO = null;

// ---- small helpers -------------------------------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "style") el.style.cssText = v; // CSSOM: allowed by the page's CSP, unlike style attributes
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const pct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%");
const num = (x, d = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(d).replace(/\.?0+$/, "") || "0");
const yesno = (b) => (b ? h("span", { class: "ok" }, "✓") : h("span", { class: "bad" }, "✗"));
const worldLink = (key, text) => h("a", { href: "#/world?key=" + encodeURIComponent(key) }, text || key);
const epLink = (run, i, text) => h("a", { href: `#/run/${run}/ep/${i}` }, text);

async function api(path, params) {
  const qs = params ? "?" + new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined)) : "";
  const r = await fetch(path + qs, { headers: { Accept: "application/json" } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || r.status));
  return body;
}

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query || "") };
}

function setView(...nodes) {
  const v = document.getElementById("view");
  v.replaceChildren(...nodes);
}

function showError(e) {
  setView(h("div", { class: "error-box", id: "error" }, String(e.message || e)));
}

// ---- header ----------------------------------------------------------------------------------------------------
function header(active) {
  const nav = document.getElementById("runs");
  const links = INFO.runs.map((r) =>
    h("a", { href: `#/run/${r.id}`, class: active === r.id ? "active" : "" }, `${r.label} (${r.episodes})`),
  );
  const evals = INFO.runs.filter((r) => r.kind !== "train");
  if (INFO.runs.length >= 2) {
    const [a, b] = INFO.compare || [evals[0]?.id || INFO.runs[0].id, (evals[1] || INFO.runs[1]).id];
    links.push(h("a", { href: `#/compare/${a}/${b}`, class: active === "compare" ? "active" : "", id: "nav-compare" }, "compare"));
  }
  nav.replaceChildren(...links);
  document.getElementById("root").textContent = INFO.root + (INFO.world ? "  ·  world " + INFO.world : "");
  document.getElementById("notes").replaceChildren(...INFO.notes.map((n) => h("div", {}, n)));
}

// ---- episode list ----------------------------------------------------------------------------------------------
const FILTERS = [
  ["type", "type", "select"], ["hops", "hops", "select"], ["level", "level", "select"], ["split", "split", "select"],
  ["success", "success", "bool"], ["invalid", "format", "invalid"], ["reward_min", "reward ≥", "number"],
  ["reward_max", "reward ≤", "number"], ["step", "step", "select"], ["q", "search question / answer", "text"],
];
const SORTS = ["i", "reward", "f1", "turns", "searches", "accesses", "hops", "level", "type", "task_id", "evidence_recall", "step", "advantage"];

async function listView(run, params) {
  header(run);
  const offset = Number(params.get("offset") || 0);
  const query = Object.fromEntries(params);
  const data = await api(`/api/runs/${run}/episodes`, { ...query, offset, limit: PAGE });
  const go = (changes) => {
    const p = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) (v === "" || v === null ? p.delete(k) : p.set(k, v));
    if (!("offset" in changes)) p.delete("offset");
    location.hash = `#/run/${run}?${p}`;
  };
  const controls = FILTERS.filter(([k]) => k !== "step" || data.facets.step.length).map(([key, label, kind]) => {
    const cur = params.get(key) || "";
    let input;
    if (kind === "select") {
      input = h("select", { id: "f-" + key, onchange: (e) => go({ [key]: e.target.value }) },
        h("option", { value: "" }, "all"), data.facets[key].map((v) => h("option", { value: v, selected: String(v) === cur }, v)));
    } else if (kind === "bool" || kind === "invalid") {
      const names = kind === "bool" ? ["success", "failure"] : ["invalid only", "valid only"];
      input = h("select", { id: "f-" + key, onchange: (e) => go({ [key]: e.target.value }) },
        h("option", { value: "" }, "all"), h("option", { value: "true", selected: cur === "true" }, names[0]),
        h("option", { value: "false", selected: cur === "false" }, names[1]));
    } else {
      let timer = null;
      input = h("input", {
        id: "f-" + key, class: kind === "text" ? "text" : "num", type: kind === "text" ? "search" : "number", step: "any", value: cur,
        placeholder: kind === "text" ? "text…" : "",
        oninput: (e) => { clearTimeout(timer); timer = setTimeout(() => go({ [key]: e.target.value }), 350); },
      });
    }
    return h("label", {}, label, input);
  });
  const sort = params.get("sort") || "i";
  controls.push(h("label", {}, "sort",
    h("select", { id: "f-sort", onchange: (e) => go({ sort: e.target.value }) }, SORTS.map((s) => h("option", { value: s, selected: s === sort }, s === "i" ? "file order" : s)))));
  const desc = params.get("desc") === "true";
  controls.push(h("button", { id: "f-desc", onclick: () => go({ desc: desc ? "" : "true" }) }, desc ? "↓ desc" : "↑ asc"));
  controls.push(h("button", { id: "f-clear", onclick: () => (location.hash = `#/run/${run}`) }, "clear"));

  const s = data.stats;
  const stat = h("div", { class: "statbar" },
    h("span", { id: "count" }, h("b", {}, s.n.toLocaleString()), ` of ${data.total.toLocaleString()} episodes`),
    h("span", {}, "success ", h("b", { id: "success-rate" }, pct(s.success))),
    h("span", {}, "mean reward ", h("b", {}, num(s.reward))),
    h("span", {}, "F1 ", h("b", {}, pct(s.f1))),
    h("span", {}, "turns ", h("b", {}, num(s.turns, 2))),
    h("span", {}, "invalid format ", h("b", {}, pct(s.invalid_format))));
  const groups = h("div", { class: "groups", id: "groups" }, Object.entries(data.groups).filter(([, g]) => Object.keys(g).length)
    .map(([key, g]) => h("table", {}, h("tr", {}, h("th", {}, key), h("th", { class: "num" }, "n"), h("th", { class: "num" }, "success")),
      Object.entries(g).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", { class: "num" }, v.n), h("td", { class: "num" }, pct(v.success)))))));

  const train = data.facets.step.length > 0;
  const cols = ["#", "task", "question", "answer", "gold", "type", "hops", "lvl", ...(train ? ["step", "adv"] : []), "reward", "ok", "turns", "srch", "acc", "fmt"];
  const rows = data.rows.map((r) => h("tr", { class: "clickable", onclick: () => (location.hash = `#/run/${run}/ep/${r.i}`) },
    h("td", { class: "num" }, r.i), h("td", {}, r.task_id + (r.sample ? ` #${r.sample}` : "")), h("td", {}, r.question),
    h("td", {}, r.answer ?? h("span", { class: "muted" }, "—")), h("td", {}, r.gold.join(" | ")), h("td", {}, r.type),
    h("td", { class: "num" }, r.hops ?? "–"), h("td", { class: "num" }, r.level ?? "–"),
    train ? [h("td", { class: "num" }, r.step ?? "–"), h("td", { class: "num" }, num(r.advantage, 2))] : [],
    h("td", { class: "num" }, num(r.reward)), h("td", {}, yesno(r.success)), h("td", { class: "num" }, r.turns ?? "–"),
    h("td", { class: "num" }, r.searches ?? "–"), h("td", { class: "num" }, r.accesses ?? "–"),
    h("td", {}, r.format_ok === false ? h("span", { class: "bad" }, "invalid") : r.format_ok ? "ok" : "–")));
  const last = Math.max(0, s.n - 1);
  const pager = h("div", { class: "pager" },
    h("button", { id: "prev", disabled: offset <= 0, onclick: () => go({ offset: Math.max(0, offset - PAGE) }) }, "← prev"),
    h("span", { id: "page-info" }, s.n ? `${offset + 1}–${Math.min(offset + PAGE, s.n)} of ${s.n}` : "no episode matches"),
    h("button", { id: "next", disabled: offset + PAGE > last, onclick: () => go({ offset: offset + PAGE }) }, "next →"));
  setView(h("div", { class: "filters" }, controls), stat, groups, pager,
    h("table", { id: "episodes" }, h("thead", {}, h("tr", {}, cols.map((c) => h("th", {}, c)))), h("tbody", {}, rows)));
  const focus = document.activeElementId && document.getElementById(document.activeElementId);
  if (focus) { focus.focus(); if (focus.type === "search") focus.setSelectionRange(focus.value.length, focus.value.length); }
}
document.addEventListener("focusin", (e) => { if (e.target.id && e.target.id.startsWith("f-")) document.activeElementId = e.target.id; });

// ---- one episode ---------------------------------------------------------------------------------------------
function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(([, v]) => v !== undefined).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "–")]));
}

function rewardCard(ep) {
  const p = ep.reward_parts, s = ep.signals;
  const parts = [
    ["reward", h("b", {}, num(p.reward))],
    [`answer score${p.outcome_score ? " (" + p.outcome_score + ")" : ""}`, num(p.outcome)],
    ["EM / F1 / cover-EM", `${num(p.scores.em)} / ${num(p.scores.f1)} / ${num(p.scores.cover_em)}`],
    ["format", p.format_ok === null || p.format_ok === undefined ? "–" : p.format_ok ? h("span", { class: "ok" }, "ok")
      : h("span", { class: "bad" }, p.gated ? `failed: gate set reward to ${num(p.format_fail_reward ?? p.reward)}` : "failed")],
    ["shaping", p.shaping === null ? "–" : num(p.shaping) + (p.surface_weight || p.open_weight
      ? ` (= ${num(p.surface_weight)}×surfaced ${num(p.surfaced_recall, 2)} + ${num(p.open_weight)}×opened ${num(p.opened_recall, 2)})` : "")],
  ];
  const sig = [["ended", s.done_reason], ["terminated / truncated", s.terminated === null && s.truncated === null ? undefined : `${s.terminated} / ${s.truncated}`],
    ["turns · searches · accesses", `${s.turns ?? "–"} · ${s.searches ?? "–"} · ${s.accesses ?? "–"}`],
    ["invalid turns / format errors", `${s.invalid_turns ?? "–"} / ${s.format_errors ?? "–"}`],
    ["evidence surfaced / opened / any", `${pct(s.surfaced_recall)} / ${pct(s.opened_recall)} / ${pct(s.evidence_recall)}`]];
  return h("div", { class: "card", id: "reward" }, h("h3", {}, "Reward and its parts"), kv(parts), h("h3", {}, "Process signals"), kv(sig));
}

// text with every occurrence of the needles (evidence sentences, other-end names, values) in <mark>
function marked(text, needles) {
  const out = [];
  let rest = text || "";
  const ns = (needles || []).filter((n) => n && n.length);
  while (rest.length) {
    let at = -1, len = 0;
    for (const n of ns) { const k = rest.indexOf(n); if (k >= 0 && (at < 0 || k < at || (k === at && n.length > len))) { at = k; len = n.length; } }
    if (at < 0) { out.push(rest); break; }
    out.push(rest.slice(0, at), h("mark", {}, rest.slice(at, at + len)));
    rest = rest.slice(at + len);
  }
  return out;
}

function hitView(hit, evidenceUrls) {
  const ev = evidenceUrls.has(hit.url);
  return h("div", { class: "hit" + (ev ? " evidence" : "") },
    h("b", {}, `[${hit.rank}] `), worldLink(hit.url, hit.title || hit.url), ev ? h("span", { class: "badge read" }, "evidence") : null,
    h("div", { class: "url" }, hit.url), hit.snippet ? h("div", {}, marked(hit.snippet, evidenceUrls.get(hit.url))) : null);
}

function turnView(t, evidenceUrls) {
  const what = t.kind === "search" ? ["query: ", h("code", {}, t.arg ?? "")]
    : t.kind === "access" ? ["open: ", t.url ? worldLink(t.url) : "–", t.part ? ` (part ${t.part})` : ""]
    : t.kind === "answer" ? ["answer: ", h("b", {}, t.arg ?? "")] : t.arg ? [h("code", {}, String(t.arg))] : [];
  let obs = null;
  if (t.kind === "search") obs = t.hits.length ? h("div", {}, t.hits.map((x) => hitView(x, evidenceUrls))) : h("div", { class: "muted" }, t.observation || "no results");
  else if (t.kind === "access" && t.page) obs = h("div", {}, h("div", { class: "muted" }, `part ${t.page.part ?? "?"} of ${t.page.parts ?? "?"}`,
    evidenceUrls.has(t.url) ? h("span", { class: "badge read" }, "evidence article") : null), h("pre", {}, marked(t.page.text || "", evidenceUrls.get(t.url))));
  else if (t.lines) obs = h("pre", {}, t.lines.join("\n"));
  else if (t.observation) obs = h("pre", {}, t.observation);
  return h("div", { class: "turn" + (t.error ? " error" : ""), "data-turn": t.n },
    h("div", {}, h("b", {}, `Turn ${t.n} `), h("span", { class: "badge " + t.kind }, t.kind), ...what),
    t.error ? h("div", { class: "bad" }, "error: " + t.error) : null,
    h("details", {}, h("summary", { class: "muted" }, "model text"), h("pre", {}, t.action || "")), obs);
}

function chainView(ev, runId) {
  if (!ev) return h("div", { class: "card", id: "chain" }, h("h3", {}, "Gold evidence chain"), h("p", { class: "muted" }, "task not found in any task set (pass --world)"));
  const at = (label, xs) => (xs.length ? h("span", { class: "badge" }, `${label} @ turn ${xs.join(", ")}`) : null);
  const steps = ev.steps.map((s) => {
    const e = s.edge;
    return h("div", { class: "ev-step" + (ev.broke_at === s.n ? " broke" : ""), "data-status": s.status },
      h("div", {}, h("b", {}, `${s.n}. `), worldLink(s.entity, s.entity_name || s.entity), s.entity_type ? h("span", { class: "muted" }, ` (${s.entity_type})`) : null,
        " ", h("span", { class: "badge " + s.status }, s.status)),
      h("div", { class: "url" }, worldLink(s.url, s.title ? `${s.title} — ${s.url}` : s.url)),
      e && e.relation ? h("div", {}, "edge ", h("code", {}, `#${e.id}`), " ", worldLink(e.source, e.source_name), ` —${e.relation}→ `, worldLink(e.target, e.target_name))
        : s.relation ? h("div", {}, "relation ", h("code", {}, s.relation)) : null,
      s.attribute ? h("div", {}, "attribute ", h("code", {}, s.attribute), s.value !== null && s.value !== undefined ? ` = ${s.value}` : "") : null,
      s.sentence ? h("div", { class: "sentence" }, "“" + s.sentence + "”") : null,
      h("div", {}, at("surfaced", s.surfaced_at), at("opened", s.opened_at), at("read", s.read_at)),
      ev.broke_at === s.n ? h("div", { class: "broke-label" }, "the chain broke here") : null);
  });
  return h("div", { class: "card", id: "chain" }, h("h3", {}, "Gold evidence chain"),
    ev.complete ? h("div", { class: "ok" }, "every step was read") : ev.broke_at ? h("div", { class: "bad" }, `broke at step ${ev.broke_at} of ${ev.steps.length}`) : null, steps);
}

function tokenColour(mode, v) {
  if (v === null || v === undefined) return "";
  if (mode === "r_hat") {
    const a = Math.min(1, Math.abs(v) / 2.5);
    return v >= 0 ? `rgba(9,105,218,${0.12 + 0.7 * a})` : `rgba(207,34,46,${0.12 + 0.7 * a})`;
  }
  return `rgba(26,127,55,${0.08 + 0.8 * Math.max(0, Math.min(1, v))})`;
}

function tokenView(tok, ep) {
  if (!tok) return null;
  const modes = [["r_hat", "teacher reward r̂"], ["omega", "ω = w_P·w_D·w_C"], ["w_c", "w_C"], ["mask", "model / observation"]].filter(([m]) => m === "mask" || tok[m]);
  let mode = modes[0][0];
  const box = h("div", { class: "tokens", id: "tokens" });
  const legend = h("div", { class: "legend", id: "legend" });
  const draw = () => {
    const spans = tok.text.map((t, k) => {
      const model = tok.mask[k] === 1;
      const v = mode === "mask" ? null : tok[mode] ? tok[mode][k] : null;
      const title = model ? `token ${tok.ids ? tok.ids[k] : k}` + ["r_hat", "omega", "w_c"].filter((m) => tok[m]).map((m) => `  ${m} ${num(tok[m][k])}`).join("") : "observation (not trained)";
      return h("span", { class: "tok" + (model ? "" : " obs"), style: model && v !== null ? `background:${tokenColour(mode, v)}` : null, title, "data-k": k }, t);
    });
    box.replaceChildren(...spans);
    legend.replaceChildren(...(mode === "r_hat"
      ? ["r̂ ≤ −2.5", h("span", { class: "swatch", style: `background:${tokenColour("r_hat", -2.5)}` }), h("span", { class: "swatch", style: `background:${tokenColour("r_hat", -0.3)}` }), "0",
        h("span", { class: "swatch", style: `background:${tokenColour("r_hat", 0.3)}` }), h("span", { class: "swatch", style: `background:${tokenColour("r_hat", 2.5)}` }), "≥ +2.5 (teacher pushes up)"]
      : mode === "mask" ? ["grey: observation tokens (env mask 0), black: model tokens"]
      : ["0", h("span", { class: "swatch", style: `background:${tokenColour(mode, 0)}` }), h("span", { class: "swatch", style: `background:${tokenColour(mode, 0.5)}` }), h("span", { class: "swatch", style: `background:${tokenColour(mode, 1)}` }), "1"]));
    buttons.forEach((b) => b.classList.toggle("on", b.dataset.mode === mode));
  };
  const buttons = modes.map(([m, label]) => h("button", { id: "mode-" + m, "data-mode": m, onclick: () => { mode = m; draw(); } }, label));
  draw();
  const trac = tok.trac;
  const group = ep.group || [];
  return h("div", { class: "card", id: "token-card" }, h("h3", {}, "Tokens"),
    trac ? kv([["w_P (problem)", num(trac.w_p)], ["w_D (discrimination, this trajectory)", h("b", { id: "w-d" }, num(trac.w_d))], ["advantage", num(ep.row.advantage)],
      ["group outcomes", h("span", { class: "chips", id: "group-outcomes" }, (group.length ? group : trac.group_success.map((ok, k) => ({ success: ok, i: null, sample: k })))
        .map((g) => { const chip = h("span", { class: (g.success ? "yes" : "no") + (g.i === ep.row.i ? " me" : ""), title: `sample ${g.sample}` }, g.success ? "✓" : "✗");
          return g.i !== null && g.i !== undefined ? epLink(ep.run, g.i, chip) : chip; }))]])
      : h("p", { class: "muted" }, "no TRAC terms recorded for this rollout (plain GRPO, or teacher unavailable)"),
    h("div", {}, buttons), legend, box);
}

function episodeBody(ep) {
  const r = ep.row;
  const evidenceUrls = new Map(); // evidence URL -> what its steps need to be shown (highlighted)
  for (const s of ep.evidence ? ep.evidence.steps : []) evidenceUrls.set(s.url, [...(evidenceUrls.get(s.url) || []), s.sentence, ...(s.needles || [])]);
  const final = h("div", { class: "card", id: "final" }, h("div", { class: "question" }, r.question || h("span", { class: "muted" }, "(question not recorded)")),
    kv([["task", r.task_id + (r.sample ? ` sample ${r.sample}` : "")], ["type · hops · level · split", `${r.type || "–"} · ${r.hops ?? "–"} · ${r.level ?? "–"} · ${r.split || "–"}`],
      ["final answer", r.answer !== null ? h("b", {}, r.answer) : h("span", { class: "muted" }, "no answer")], ["gold", r.gold.join(" | ") || "–"], ["success", yesno(r.success)],
      ...(r.step !== null ? [["training step · group", `${r.step} · ${r.group ?? "–"}`]] : [])]));
  const turns = h("div", { class: "card", id: "turns" }, h("h3", {}, `Turns (${ep.turns.length})`),
    ep.turns.length ? ep.turns.map((t) => turnView(t, evidenceUrls)) : h("p", { class: "muted" }, r.has_trace ? "no turns" : "this run recorded outcomes only (no trajectory)"));
  return { final, reward: rewardCard(ep), turns, tokens: tokenView(ep.tokens, ep), chain: chainView(ep.evidence, ep.run) };
}

async function episodeView(run, i) {
  header(run);
  const ep = await api(`/api/runs/${run}/episodes/${i}`);
  const b = episodeBody(ep);
  const back = h("a", { href: `#/run/${run}` }, "← episodes");
  const nav = h("div", { class: "pager" }, back, Number(i) > 0 ? epLink(run, Number(i) - 1, "← previous") : null, epLink(run, Number(i) + 1, "next →"));
  setView(nav, h("div", { class: "episode", id: "episode" }, h("div", {}, b.final, b.tokens, b.turns), h("div", {}, b.reward, b.chain)));
}

// ---- compare -------------------------------------------------------------------------------------------------
const STATUS_TEXT = { fixed: "fixed (✗→✓)", broken: "broken (✓→✗)", both: "both right", neither: "both wrong", only_a: "only in A", only_b: "only in B" };

async function compareView(a, b, params) {
  header("compare");
  const offset = Number(params.get("offset") || 0);
  const status = params.get("status") || "";
  const data = await api("/api/compare", { a, b, status, q: params.get("q") || "", offset, limit: PAGE });
  const label = (id) => (INFO.runs.find((r) => r.id === id) || { label: id }).label;
  const pick = (which, cur) => h("select", { id: "cmp-" + which, onchange: (e) => (location.hash = which === "a" ? `#/compare/${e.target.value}/${b}` : `#/compare/${a}/${e.target.value}`) },
    INFO.runs.map((r) => h("option", { value: r.id, selected: r.id === cur }, r.label)));
  const go = (s) => (location.hash = `#/compare/${a}/${b}` + (s ? `?status=${s}` : ""));
  const chips = h("div", { class: "statbar", id: "flip-counts" }, h("button", { class: status ? "" : "on", onclick: () => go("") }, `all ${data.total}`),
    Object.entries(data.counts).map(([s, n]) => h("button", { class: status === s ? "on" : "", id: "status-" + s, onclick: () => go(s) }, `${STATUS_TEXT[s]}: ${n}`)));
  const side = (x) => (x ? [h("td", {}, yesno(x.success > 0), x.n > 1 ? ` ${pct(x.success)}` : ""), h("td", {}, x.answer ?? h("span", { class: "muted" }, "—"))] : [h("td", {}, "–"), h("td", {}, "")]);
  const rows = data.items.map((it) => h("tr", { class: "clickable", onclick: () => (location.hash = `#/compare/${a}/${b}/task/${encodeURIComponent(it.task_id)}`) },
    h("td", {}, it.task_id), h("td", {}, it.question), h("td", {}, it.gold.join(" | ")), h("td", {}, it.type), h("td", { class: "num" }, it.level ?? "–"),
    side(it.a), side(it.b), h("td", { class: "status-" + it.status }, STATUS_TEXT[it.status])));
  setView(h("div", { class: "filters" }, h("label", {}, "A", pick("a", a)), h("label", {}, "B", pick("b", b))),
    h("p", {}, `Tasks of ${label(a)} (A) and ${label(b)} (B): `, h("b", { id: "flipped" }, `${data.counts.fixed} fixed, ${data.counts.broken} broken`), ` of ${data.total}`), chips,
    h("table", { id: "compare" }, h("thead", {}, h("tr", {}, ["task", "question", "gold", "type", "lvl", "A", "A answer", "B", "B answer", "status"].map((c) => h("th", {}, c)))), h("tbody", {}, rows)),
    h("div", { class: "pager" }, h("button", { disabled: offset <= 0, onclick: () => (location.hash = `#/compare/${a}/${b}?status=${status}&offset=${Math.max(0, offset - PAGE)}`) }, "← prev"),
      `${data.matched ? offset + 1 : 0}–${Math.min(offset + PAGE, data.matched)} of ${data.matched}`,
      h("button", { disabled: offset + PAGE >= data.matched, onclick: () => (location.hash = `#/compare/${a}/${b}?status=${status}&offset=${offset + PAGE}`) }, "next →")));
}

async function sideBySide(a, b, taskId) {
  header("compare");
  const cols = await Promise.all([a, b].map(async (run) => {
    const eps = (await api(`/api/runs/${run}/tasks/${encodeURIComponent(taskId)}`)).episodes;
    const label = (INFO.runs.find((r) => r.id === run) || { label: run }).label;
    if (!eps.length) return h("div", { class: "card" }, h("h2", {}, label), h("p", { class: "muted" }, "this task is not in the run"));
    const ep = await api(`/api/runs/${run}/episodes/${eps[0]}`);
    const x = episodeBody(ep);
    return h("div", { class: "compare-col", "data-run": run }, h("h2", {}, label, " ", epLink(run, eps[0], "open"), eps.length > 1 ? h("span", { class: "muted" }, ` (sample 1 of ${eps.length})`) : null),
      x.final, x.reward, x.chain, x.turns);
  }));
  setView(h("div", { class: "pager" }, h("a", { href: `#/compare/${a}/${b}` }, "← flipped tasks")), h("div", { class: "side-by-side", id: "side-by-side" }, cols));
}

// ---- world ---------------------------------------------------------------------------------------------------
async function worldView(key) {
  header("");
  const w = await api("/api/world/entity", { key });
  const e = w.entity, d = w.document;
  const parts = [h("h2", {}, e ? e.name : d.title, h("span", { class: "muted" }, e ? ` ${e.id} · ${e.type}` : ` ${d.id} · not an entity article`))];
  if (d) parts.push(h("div", { class: "url" }, d.url));
  if (e) parts.push(h("div", { class: "card" }, h("h3", {}, "Attributes"), kv(Object.entries(e.attrs).map(([k, v]) => [k, String(v)]))));
  if (w.edges.length) parts.push(h("div", { class: "card" }, h("h3", {}, `Edges (${w.edges.length})`), h("table", { id: "edges" },
    h("tr", {}, ["edge", "relation", "", "other end", "stated in", "verified", "sentence"].map((c) => h("th", {}, c))),
    w.edges.map((x) => h("tr", {}, h("td", {}, "#" + x.id), h("td", {}, x.relation), h("td", {}, x.direction === "out" ? "→" : "←"), h("td", {}, worldLink(x.other, x.other_name)),
      h("td", {}, x.holder === "this" ? "this article" : "the other's"), h("td", {}, x.verified ? "yes" : h("span", { class: "warn" }, "no " + x.failures.join(","))), h("td", {}, x.sentence || "–"))))));
  if (d) parts.push(h("div", { class: "card" }, h("h3", {}, "Article"), h("div", { class: "article", id: "article" }, d.text)));
  if (w.tasks.length) parts.push(h("div", { class: "card" }, h("h3", {}, `Tasks whose evidence uses this article (${w.tasks.length})`),
    h("div", {}, w.tasks.map((t) => [h("code", {}, t), " "]))));
  setView(h("div", { id: "world" }, parts));
}

// ---- router --------------------------------------------------------------------------------------------------
async function route() {
  const { parts, params } = parseHash();
  try {
    if (!INFO) INFO = await api("/api/info");
    if (parts[0] === "run" && parts[2] === "ep") await episodeView(parts[1], parts[3]);
    else if (parts[0] === "run") await listView(parts[1], params);
    else if (parts[0] === "compare" && parts[3] === "task") await sideBySide(parts[1], parts[2], parts.slice(4).join("/"));
    else if (parts[0] === "compare") await compareView(parts[1], parts[2], params);
    else if (parts[0] === "world") await worldView(params.get("key") || "");
    else if (INFO.runs.length) location.replace(`#/run/${INFO.runs[0].id}`);
    else showError(new Error("no runs"));
  } catch (e) {
    showError(e);
  }
  document.body.dataset.ready = location.hash; // the page for this hash is drawn (browser tests wait on it)
}
window.addEventListener("hashchange", route);
route();
