// envpools view: jobs, rollouts, live events, trajectories, diffs, artifacts, LLM exchanges.
// Everything shown comes from agents and tasks: it is only ever set as text (textContent),
// never as markup. The one exception is the job charts, SVG drawn by envpools itself, and
// the page's Content-Security-Policy runs no script from them either way.
"use strict";

(() => {
  const API = "api/";
  const TERMINAL = new Set(["succeeded", "failed", "error", "cancelled", "timeout", "timed_out"]);
  const main = document.getElementById("main");
  let stops = [];
  let info = { jobs: false, backend: "" };

  // --- helpers ---------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = String(value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  class SignInNeeded extends Error {}

  async function get(path, as = "json") {
    const response = await fetch(API + path, {
      credentials: "same-origin",
      headers: { Accept: as === "json" ? "application/json" : "*/*" },
    });
    if (response.status === 401) throw new SignInNeeded();
    if (response.status === 404) return null;
    if (!response.ok) {
      let message = `${response.status}`;
      try { message = (await response.json()).error.message; } catch (_) { /* not JSON */ }
      throw new Error(message);
    }
    return as === "json" ? response.json() : response.text();
  }

  const enc = (value) => encodeURIComponent(value);
  const artifactPath = (path) => path.split("/").map(enc).join("/");
  const artifactUrl = (id, path) => `${API}v1/rollouts/${enc(id)}/artifacts/${artifactPath(path)}`;
  const money = (value) => (typeof value === "number" ? `$${value.toFixed(4)}` : "-");
  const rate = (value) => (typeof value === "number" ? `${(100 * value).toFixed(1)}%` : "-");
  const num = (value) => (typeof value === "number" ? value.toLocaleString("en-US") : "-");
  const reward = (value) => (typeof value === "number" ? String(value) : "-");

  function seconds(value) {
    if (typeof value !== "number") return "-";
    if (value < 60) return `${value.toFixed(1)}s`;
    if (value < 3600) return `${Math.floor(value / 60)}m${String(Math.round(value % 60)).padStart(2, "0")}s`;
    return `${(value / 3600).toFixed(1)}h`;
  }

  function age(stamp) {
    const then = Date.parse(stamp);
    if (Number.isNaN(then)) return "-";
    const s = Math.max(0, (Date.now() - then) / 1000);
    if (s < 60) return `${Math.round(s)}s ago`;
    if (s < 3600) return `${Math.round(s / 60)}m ago`;
    if (s < 86400) return `${Math.round(s / 3600)}h ago`;
    return `${Math.round(s / 86400)}d ago`;
  }

  function badge(status) {
    const value = String(status || "-").toLowerCase();
    return h("span", { class: `badge status-${value}`, text: value });
  }

  function table(headers, rows, attrs) {
    return h(
      "table",
      attrs || {},
      h("thead", {}, h("tr", {}, headers.map((title) => h("th", { text: title })))),
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell))))),
    );
  }

  function progress(done, total, id) {
    const share = total ? Math.min(1, done / total) : 0;
    const bar = h("span", { class: "bar" }, h("span", { class: "fill" }));
    bar.firstChild.style.width = `${(100 * share).toFixed(1)}%`;
    return h("span", { class: "progress", id }, bar, h("span", { class: "count", text: `${done}/${total}` }));
  }

  function every(ms, task) {
    let stopped = false;
    const tick = async () => {
      if (stopped) return;
      try { await task(); } catch (error) { if (error instanceof SignInNeeded) return signIn(); }
      if (!stopped) timer = setTimeout(tick, ms);
    };
    let timer = setTimeout(tick, ms);
    stops.push(() => { stopped = true; clearTimeout(timer); });
  }

  function live(on) {
    document.getElementById("live").hidden = !on;
  }

  function fail(error) {
    if (error instanceof SignInNeeded) return signIn();
    main.replaceChildren(h("p", { class: "error", text: `Could not load this page: ${error.message}` }));
  }

  // --- signing in ------------------------------------------------------------------------

  async function post(path, body) {
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  async function redeemCode() {
    const match = location.hash.match(/^#code=([A-Za-z0-9_-]+)/);
    if (!match) return;
    history.replaceState(null, "", location.pathname + location.search + "#/");
    const response = await post("session", { code: match[1] });
    if (!response.ok) {
      main.replaceChildren(
        h("p", { class: "error", text: "This sign-in link was used already or has expired." }),
        h("p", { text: "Run 'envpools view' again for a new one (each link opens one browser once)." }),
      );
      throw new SignInNeeded();
    }
  }

  function signIn() {
    stop();
    const key = h("input", { type: "password", id: "api-key", autocomplete: "off", placeholder: "API key" });
    const note = h("p", { class: "muted" });
    const form = h(
      "form",
      {
        class: "signin",
        onsubmit: async (event) => {
          event.preventDefault();
          const response = await post("session", { api_key: key.value });
          key.value = "";
          if (response.ok) return start();
          note.textContent = "That key is not valid here (or this viewer takes sign-in links only).";
        },
      },
      h("h1", { text: "Sign in" }),
      h("p", { text: "Open the link 'envpools view' printed, or enter an API key of this backend." }),
      key,
      h("button", { type: "submit", text: "Sign in" }),
      note,
    );
    main.replaceChildren(form);
  }

  // --- routes ----------------------------------------------------------------------------

  function stop() {
    for (const fn of stops) fn();
    stops = [];
    live(false);
  }

  function route() {
    stop();
    const hash = location.hash.replace(/^#/, "") || "/";
    const [path, query] = hash.split("?");
    const params = new URLSearchParams(query || "");
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    for (const link of document.querySelectorAll("nav a")) link.classList.remove("here");
    if (parts[0] === "jobs" && parts[1]) return jobView(parts[1]);
    if (parts[0] === "rollouts" && parts[1]) return rolloutView(parts[1]);
    if (parts[0] === "rollouts" || (!parts[0] && !info.jobs)) return rolloutsView(params);
    return jobsView();
  }

  // --- jobs ------------------------------------------------------------------------------

  async function jobsView() {
    document.getElementById("nav-jobs").classList.add("here");
    const body = h("div", {});
    main.replaceChildren(h("h1", { text: "Jobs" }), body);
    if (!info.jobs) {
      body.append(h("p", { class: "muted", text: "Jobs are kept by the CLI that ran them: 'envpools view' shows them." }));
      return;
    }
    const draw = async () => {
      const jobs = await get("jobs");
      if (!jobs.length) {
        body.replaceChildren(h("p", { class: "muted", text: "No jobs on this backend yet (envpools jobs run)." }));
        return;
      }
      body.replaceChildren(
        table(
          ["job", "name", "status", "progress", "passed", "pass rate", "cost", "created"],
          jobs.map((job) => [
            h("a", { href: `#/jobs/${enc(job.id)}`, text: job.id }),
            job.name,
            badge(job.status),
            progress(job.ended, job.total),
            `${job.passes}`,
            rate(job.pass_rate),
            money(job.cost_usd),
            age(job.created_at),
          ]),
          { id: "jobs" },
        ),
      );
    };
    try { await draw(); } catch (error) { return fail(error); }
    every(2000, draw);
  }

  function jobView(id) {
    document.getElementById("nav-jobs").classList.add("here");
    main.replaceChildren(h("h1", { text: id }), h("p", { class: "muted", text: "Loading…" }));
    const source = new EventSource(`${API}jobs/${enc(id)}/events`);
    source.addEventListener("job", (event) => {
      live(true);
      drawJob(JSON.parse(event.data));
    });
    source.onerror = async () => {
      live(false);
      try { await get("info"); } catch (error) { source.close(); fail(error); }
    };
    stops.push(() => source.close());
  }

  function drawJob(doc) {
    const job = doc.job;
    const result = doc.result;
    const charts = doc.charts || {};
    const k = result.k;
    const cards = h(
      "div",
      { class: "cards" },
      h("div", { class: "card" }, "rollouts ended", progress(result.ended, result.planned, "job-progress")),
      h("div", { class: "card" }, "launched", h("b", { text: `${job.launched}/${job.total}` })),
      h("div", { class: "card" }, "passed", h("b", { text: `${job.passes}` })),
      h("div", { class: "card" }, "pass rate", h("b", { text: rate(job.pass_rate) })),
      h("div", { class: "card" }, "cost", h("b", { text: money(job.cost_usd) })),
      h("div", { class: "card" }, "status", h("b", { id: "job-status" }, badge(job.status))),
    );
    const totals = table(
      ["agent / model", "tasks", "pass", "rate", "95% CI", "pass@1", `pass@${k}`, "reward", "time", "cost", "errors"],
      result.totals.map((t) => [
        t.agent_label, `${t.tasks}`, `${t.passes}/${t.attempts}`, rate(t.pass_rate),
        t.ci_low === null ? "-" : `${rate(t.ci_low)}–${rate(t.ci_high)}`,
        rate(t.pass_at_1), rate(t.pass_at_k), reward(t.mean_reward), seconds(t.mean_duration_sec),
        money(t.cost_usd), `${t.errors}`,
      ]),
      { id: "job-totals" },
    );
    const groups = table(
      ["task", "agent / model", "pass", "pass@1", `pass@${k}`, "reward", "time", "cost", "errors"],
      result.groups.map((g) => [
        g.task_id, g.agent_label, `${g.passes}/${g.attempts}`, rate(g.pass_at_1), rate(g.pass_at_k),
        reward(g.mean_reward), seconds(g.mean_duration_sec), money(g.cost_usd), `${g.errors}`,
      ]),
    );
    const rollouts = table(
      ["rollout", "task", "agent / model", "#", "status", "reward", "time", "cost"],
      doc.rollouts.map((r) => [
        h("a", { href: `#/rollouts/${enc(r.rollout_id)}`, text: r.rollout_id }),
        r.task_id, r.agent_label, `${r.attempt}`, badge(r.status), reward(r.reward),
        seconds(r.duration_sec), money(r.cost_usd),
      ]),
      { id: "job-rollouts" },
    );
    const chartGrid = h("div", { class: "grid2" });
    for (const [title, markup] of Object.entries(charts)) {
      const holder = h("section", { class: "chart-box" }, h("h3", { text: title }));
      const drawn = h("div", {});
      drawn.innerHTML = markup; // drawn by envpools (jobs/report.py), labels escaped there
      for (const key of drawn.querySelectorAll("i[style]")) {
        key.style.background = key.getAttribute("style").replace(/^background:\s*/, "");
      }
      holder.append(drawn);
      chartGrid.append(holder);
    }
    main.replaceChildren(
      h("h1", { text: job.name }),
      h("p", { class: "muted" }, `job ${job.id} · pool ${job.pool_id} · ${job.tasks} task(s) × ${job.agents.length} agent(s) × ${job.attempts} attempt(s)`),
      cards,
      h("h2", { text: "Totals per agent and model" }), totals,
      chartGrid,
      h("h2", { text: "Per task" }), groups,
      h("h2", { text: "Rollouts" }), rollouts,
    );
  }

  // --- rollouts --------------------------------------------------------------------------

  async function rolloutsView(params) {
    document.getElementById("nav-rollouts").classList.add("here");
    const chosen = { pool: params.get("pool") || "", status: params.get("status") || "", agent: params.get("agent") || "", job: params.get("job") || "" };
    const select = (name, options) => {
      const node = h("select", { name, onchange: () => apply() }, h("option", { value: "", text: `any ${name}` }));
      for (const value of options) node.append(h("option", { value, text: value, selected: value === chosen[name] }));
      return node;
    };
    const [pools, jobs] = await Promise.all([
      get("v1/pools").catch((error) => { if (error instanceof SignInNeeded) throw error; return []; }),
      info.jobs ? get("jobs") : Promise.resolve([]),
    ]).catch((error) => { fail(error); return [null, null]; });
    if (pools === null) return;
    const filters = h(
      "form",
      { class: "filters", id: "filters", onsubmit: (event) => { event.preventDefault(); apply(); } },
      select("pool", (pools || []).map((p) => p.pool_id)),
      select("status", ["queued", "starting", "running", "verifying", "succeeded", "failed", "error", "cancelled"]),
      select("agent", ["oracle", "nop", "claude-code", "codex", "opencode"]),
      select("job", (jobs || []).map((j) => j.id)),
    );
    const apply = () => {
      const query = new URLSearchParams();
      for (const field of filters.querySelectorAll("select")) if (field.value) query.set(field.name, field.value);
      location.hash = `#/rollouts${query.toString() ? "?" + query : ""}`;
    };
    const body = h("div", {});
    main.replaceChildren(h("h1", { text: "Rollouts" }), filters, body);
    const draw = async () => {
      const query = new URLSearchParams({ limit: "200" });
      if (chosen.pool) query.set("pool_id", chosen.pool);
      if (chosen.status) query.set("status", chosen.status);
      const page = await get(`v1/rollouts?${query}`);
      const rows = (page.rollouts || []).filter((r) =>
        (!chosen.agent || (r.agent || {}).harness === chosen.agent) &&
        (!chosen.job || (r.metadata || {}).envpools_job === chosen.job));
      body.replaceChildren(
        rows.length
          ? table(
            ["rollout", "status", "task", "agent / model", "reward", "pool", "created"],
            rows.map((r) => [
              h("a", { href: `#/rollouts/${enc(r.rollout_id)}`, text: r.rollout_id }),
              badge(r.status), `${(r.task_ref || {}).dataset}/${(r.task_ref || {}).task_id}`,
              [(r.agent || {}).harness, (r.agent || {}).model_id].filter(Boolean).join(" / "),
              reward(r.reward_primary), r.pool_id || "-", age(r.created_at),
            ]),
            { id: "rollouts" },
          )
          : h("p", { class: "muted", text: "No rollouts match." }),
      );
      live(rows.some((r) => !TERMINAL.has(String(r.status).toLowerCase())));
    };
    try { await draw(); } catch (error) { return fail(error); }
    every(2000, draw);
  }

  function describe(envelope) {
    const data = envelope.data;
    if (typeof data !== "object" || data === null) return String(data ?? "");
    if (envelope.event === "lifecycle") {
      return [data.status, data.message, data.error && `${data.error.code}: ${data.error.message}`].filter(Boolean).join(" · ");
    }
    if (envelope.event === "reward") return `reward ${data.reward}`;
    const what = data.kind ? `[${data.kind}] ` : "";
    if (data.text !== undefined) return what + data.text;
    if (data.tool !== undefined) {
      const input = typeof data.input === "string" ? data.input : JSON.stringify(data.input);
      return `${what}${data.tool} ${input ?? ""}${data.output ? " → " + data.output : ""}`;
    }
    return what + JSON.stringify(data);
  }

  function rolloutView(id) {
    document.getElementById("nav-rollouts").classList.add("here");
    const status = h("span", { id: "rollout-status" });
    const header = h("div", { class: "meta" });
    const sections = {
      events: h("section", { id: "events" }),
      trajectory: h("section", { id: "trajectory", hidden: true }),
      diff: h("section", { id: "diff", hidden: true }),
      artifacts: h("section", { id: "artifacts", hidden: true }),
      exchanges: h("section", { id: "exchanges", hidden: true }),
    };
    const titles = { events: "Events", trajectory: "Trajectory", diff: "Diff", artifacts: "Artifacts", exchanges: "LLM exchanges" };
    const tabs = h("nav", { class: "tabs" });
    for (const [name, title] of Object.entries(titles)) {
      tabs.append(h("button", {
        type: "button", id: `tab-${name}`, class: name === "events" ? "here" : "", text: title,
        onclick: () => {
          for (const [other, node] of Object.entries(sections)) node.hidden = other !== name;
          for (const button of tabs.children) button.classList.toggle("here", button.id === `tab-${name}`);
        },
      }));
    }
    const list = h("ol", { class: "events", id: "event-list" });
    sections.events.append(list);
    main.replaceChildren(h("h1", {}, id, " ", status), header, tabs, ...Object.values(sections));

    let finished = false;
    const refresh = async () => {
      const [doc, usage] = await Promise.all([get(`v1/rollouts/${enc(id)}`), get(`v1/rollouts/${enc(id)}/usage`)]);
      if (!doc) { main.replaceChildren(h("p", { class: "error", text: `No rollout ${id}.` })); return; }
      status.replaceChildren(badge(doc.status));
      const task = doc.task_ref || {};
      const agent = doc.agent || {};
      header.replaceChildren(
        `${task.dataset}/${task.task_id} · ${[agent.harness, agent.model_id].filter(Boolean).join(" / ")}`,
        doc.pool_id ? ` · pool ${doc.pool_id}` : "",
        ` · reward ${reward(doc.reward_primary)}`,
        usage ? ` · ${num(usage.llm_input_tokens)} in / ${num(usage.llm_output_tokens)} out tokens · ${money(usage.cost_usd)}` : "",
        usage && ["agent", "gateway"].includes(usage.usage_source) ? ` (as counted by the ${usage.usage_source})` : "",
        doc.error ? h("div", { class: "error", text: `${doc.error.code}: ${doc.error.message}` }) : "",
      );
      if (TERMINAL.has(String(doc.status).toLowerCase()) && !finished) {
        finished = true;
        await Promise.all([showTrajectory(id, sections.trajectory), showDiff(id, sections.diff), showArtifacts(id, sections.artifacts), showExchanges(id, sections.exchanges)]);
      }
    };
    for (const node of [sections.trajectory, sections.diff, sections.artifacts, sections.exchanges]) {
      node.append(h("p", { class: "muted", text: "Written when the rollout ends." }));
    }
    refresh().catch(fail);

    const source = new EventSource(`${API}v1/rollouts/${enc(id)}/events`);
    const seen = new Set();
    const onEvent = (event) => {
      let envelope;
      try { envelope = JSON.parse(event.data); } catch (_) { return; }
      if (envelope.seq !== undefined) {
        if (seen.has(envelope.seq)) return;
        seen.add(envelope.seq);
      }
      live(true);
      list.append(h(
        "li",
        { class: `event event-${envelope.event}` },
        h("span", { class: "seq", text: envelope.seq ?? "" }),
        h("span", { class: "time", text: (envelope.timestamp || "").slice(11, 23) }),
        h("span", { class: "type", text: envelope.event }),
        h("span", { class: "text", text: describe(envelope) }),
      ));
      if (envelope.event === "lifecycle" && TERMINAL.has(String((envelope.data || {}).status).toLowerCase())) {
        source.close();
        live(false);
        refresh().catch(fail);
      } else if (envelope.event === "lifecycle") {
        refresh().catch(() => {});
      }
    };
    for (const type of ["lifecycle", "agent", "verifier", "reward", "message"]) source.addEventListener(type, onEvent);
    source.onerror = () => live(false);
    stops.push(() => source.close());
  }

  function stepView(step) {
    const metrics = step.metrics || {};
    const tokens = [
      typeof metrics.prompt_tokens === "number" && `${num(metrics.prompt_tokens)} in`,
      metrics.cached_tokens ? `${num(metrics.cached_tokens)} cached` : null,
      typeof metrics.completion_tokens === "number" && `${num(metrics.completion_tokens)} out`,
      typeof metrics.cost_usd === "number" && money(metrics.cost_usd),
    ].filter(Boolean).join(" · ");
    const text = (value) => (typeof value === "string" ? value : (value || []).map((p) => p.text || `[${p.type}]`).join("\n"));
    const node = h(
      "article",
      { class: `step step-${step.source}` },
      h("header", {},
        h("b", { text: `#${step.step_id} ${step.source}` }),
        step.model_name ? h("span", { class: "muted", text: step.model_name }) : null,
        tokens ? h("span", { class: "tokens", text: tokens }) : null,
        step.extra && step.extra.llm_exchange !== undefined ? h("span", { class: "muted", text: `exchange ${step.extra.llm_exchange}` }) : null),
    );
    if (step.reasoning_content) node.append(h("details", { class: "reasoning" }, h("summary", { text: "thinking" }), h("pre", { text: step.reasoning_content })));
    const message = text(step.message);
    if (message) {
      const long = step.source === "system" || message.length > 2000;
      node.append(long ? h("details", {}, h("summary", { text: message.split("\n")[0].slice(0, 120) || "…" }), h("pre", { text: message })) : h("pre", { class: "message", text: message }));
    }
    const results = new Map(((step.observation || {}).results || []).map((r) => [r.source_call_id, r]));
    for (const call of step.tool_calls || []) {
      const args = JSON.stringify(call.arguments, null, 2);
      node.append(h("details", { class: "call" }, h("summary", {}, h("span", { class: "arrow", text: "→ " }), h("code", { text: call.function_name }), " ", h("span", { class: "muted", text: args.replace(/\s+/g, " ").slice(0, 140) })), h("pre", { text: args })));
      const result = results.get(call.tool_call_id);
      results.delete(call.tool_call_id);
      if (result) {
        const output = text(result.content);
        const error = result.extra && result.extra.is_error;
        node.append(h("details", { class: `result${error ? " failed" : ""}` }, h("summary", {}, h("span", { class: "arrow", text: "← " }), h("span", { text: output.split("\n").find((line) => line.trim()) || "(no output)" })), h("pre", { text: output })));
      }
    }
    for (const result of results.values()) node.append(h("pre", { class: "result", text: text(result.content) }));
    return node;
  }

  async function showTrajectory(id, node) {
    const raw = await get(`v1/rollouts/${enc(id)}/artifacts/trajectory.json`, "text").catch(() => null);
    if (!raw) { node.replaceChildren(h("p", { class: "muted", text: "No trajectory for this rollout." })); return; }
    const doc = JSON.parse(raw);
    const final = doc.final_metrics || {};
    const outside = (final.extra || {}).outside_steps;
    node.replaceChildren(
      h("p", { class: "muted" },
        `${doc.schema_version} · ${doc.agent.name} ${doc.agent.version}${doc.agent.model_name ? " · " + doc.agent.model_name : ""} · ${doc.steps.length} steps · ${num(final.total_prompt_tokens)} in / ${num(final.total_completion_tokens)} out · ${money(final.total_cost_usd)}`,
        outside ? ` · outside the steps: ${num(outside.prompt_tokens)} in / ${num(outside.completion_tokens)} out (${outside.llm_calls || 0} calls)` : "",
        " · ", h("a", { href: artifactUrl(id, "trajectory.json") + "?download=1", download: "trajectory.json", text: "download" })),
      ...doc.steps.map(stepView),
    );
  }

  async function showDiff(id, node) {
    const diff = await get(`v1/rollouts/${enc(id)}/artifacts/workspace.diff`, "text").catch(() => null);
    if (diff === null) { node.replaceChildren(h("p", { class: "muted", text: "No workspace.diff." })); return; }
    if (!diff.trim()) { node.replaceChildren(h("p", { class: "muted", text: "The agent changed nothing in the workspace." })); return; }
    const lines = diff.split("\n").map((line) => {
      let kind = "ctx";
      if (line.startsWith("+++") || line.startsWith("---") || line.startsWith("diff ")) kind = "file";
      else if (line.startsWith("@@")) kind = "hunk";
      else if (line.startsWith("+")) kind = "add";
      else if (line.startsWith("-")) kind = "del";
      return h("div", { class: `line ${kind}`, text: line || " " });
    });
    node.replaceChildren(h("div", { class: "diff" }, lines));
  }

  const TEXTUAL = /^(text\/|application\/json)/;

  async function showArtifacts(id, node) {
    const page = await get(`v1/rollouts/${enc(id)}/artifacts?limit=10000`).catch(() => null);
    const entries = (page && page.artifacts) || [];
    if (!entries.length) { node.replaceChildren(h("p", { class: "muted", text: "No artifacts." })); return; }
    const viewer = h("pre", { class: "artifact", id: "artifact-view", hidden: true });
    const open = async (entry) => {
      viewer.hidden = false;
      viewer.textContent = "Loading…";
      viewer.textContent = await get(`v1/rollouts/${enc(id)}/artifacts/${artifactPath(entry.path)}`, "text");
    };
    node.replaceChildren(
      table(
        ["path", "size", "from", ""],
        entries.map((entry) => [
          h("code", { text: entry.path }),
          num(entry.size_bytes),
          entry.provenance || "",
          h("span", {},
            TEXTUAL.test(entry.content_type || "") && entry.size_bytes < 2 * 1024 * 1024
              ? h("button", { type: "button", class: "link", text: "open", onclick: () => open(entry).catch(fail) })
              : null,
            " ",
            h("a", { class: "download", href: artifactUrl(id, entry.path) + "?download=1", download: entry.path.split("/").pop(), text: "download" })),
        ]),
        { id: "artifact-table" },
      ),
      viewer,
    );
  }

  async function showExchanges(id, node) {
    const raw = await get(`v1/rollouts/${enc(id)}/artifacts/llm/exchanges.jsonl`, "text").catch(() => null);
    if (raw === null) { node.replaceChildren(h("p", { class: "muted", text: "No LLM exchanges recorded (none made, or recording is off for this pool)." })); return; }
    const lines = raw.split("\n").filter((line) => line.trim()).map((line) => { try { return JSON.parse(line); } catch (_) { return null; } }).filter(Boolean);
    lines.sort((a, b) => a.index - b.index);
    node.replaceChildren(...lines.map((e) => {
      const usage = e.usage || {};
      return h("details", { class: "exchange" },
        h("summary", {},
          h("b", { text: `#${e.index}` }), ` ${e.method} ${e.path} · `, badge(String(e.status ?? "failed")),
          ` · ${e.model || "-"} · ${num(e.latency_ms)} ms · ${num(usage.prompt_tokens)} in / ${num(usage.completion_tokens)} out${e.streamed ? " · streamed" : ""}`,
          e.error ? h("span", { class: "error", text: ` · ${e.error}` }) : null),
        h("h4", { text: "request" }), h("pre", { text: JSON.stringify(e.request, null, 2) }),
        h("h4", { text: "response" }), h("pre", { text: JSON.stringify(e.response, null, 2) }));
    }));
  }

  // --- start -----------------------------------------------------------------------------

  async function start() {
    try {
      await redeemCode();
      info = await get("info");
      document.getElementById("backend").textContent = info.backend;
    } catch (error) {
      if (error instanceof SignInNeeded) { if (!main.querySelector(".error")) signIn(); return; }
      return fail(error);
    }
    route();
  }

  window.addEventListener("hashchange", () => {
    if (/^#code=/.test(location.hash)) start(); else route();
  });
  start();
})();
