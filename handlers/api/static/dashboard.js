// The dashboard: reads /dashboard/summary every few seconds and renders it; a click on a job reads
// /dashboard/jobs/{id} into the details panel. No framework, no build step. Times and figures are shown
// in the viewer's own locale and time zone (Intl formats with the browser's defaults). An admin's board
// has a tenant column and a tenant filter; anyone else's shows its own tenant's jobs only.
"use strict";

(() => {
  const FINAL = new Set(["published", "failed", "cancelled", "rejected", "expired"]);
  const WHEN = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "medium" });
  const TIME = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
  const CREDITS = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
  const byId = (id) => document.getElementById(id);
  let refreshMs = 5000;
  let timer = 0;
  let playing = null;
  let opened = null;
  let admin = false;
  const tenants = new Set();  // every tenant an admin's board has named so far: the filter's choices

  function element(tag, props = {}, ...children) {
    const node = Object.assign(document.createElement(tag), props);
    node.append(...children);
    return node;
  }

  // The API's times are RFC 3339 strings; the arithmetic below is in seconds since the epoch.
  const seconds = (time) => (time == null ? null : Date.parse(time) / 1000);

  function clock(time) {
    if (time == null) return element("span", { textContent: "—" });
    const when = new Date(time);
    return element("time", { dateTime: when.toISOString(), title: when.toString(), textContent: WHEN.format(when) });
  }

  function span(length) {
    if (length < 60) return `${length.toFixed(1)} s`;
    return `${Math.floor(length / 60)} min ${Math.round(length % 60)} s`;
  }

  function took(job, now) {
    if (job.finished_at != null) return span(seconds(job.finished_at) - seconds(job.created_at));
    if (FINAL.has(job.status)) return "—";
    const waited = span(Math.max(0, seconds(now) - seconds(job.created_at)));
    return job.status === "queued" ? `waiting ${waited}` : `running ${waited}`;
  }

  // A queued job's badge also says its place in the queue: "queued #3" (3: two jobs go to EvoLink first).
  function badge(status, place = null) {
    const node = element("span", { className: `badge status-${status}`,
                                   textContent: place == null ? status : `${status} #${place}` });
    if (place != null) node.title = `number ${place} in the queue`;
    return node;
  }

  // A job whose completed result is still not copied as its URLs near expiry (job.at_risk) is marked.
  function statusCell(job) {
    const status = badge(job.status, job.queue_position);
    if (!job.at_risk_at || FINAL.has(job.status)) return status;
    return element("span", {}, status, " ", element("span", { className: "badge at-risk", textContent: "at risk",
      title: `result not copied in time; its URLs expire 24 h after EvoLink completed it (at risk since ${job.at_risk_at})` }));
  }

  function tenantChip(tenant) {
    return element("span", { className: "tenant", textContent: tenant });
  }

  function credits(value) {
    return value == null ? "—" : CREDITS.format(value);
  }

  function progress(job) {
    const bar = element("progress", { max: 100, value: job.progress });
    bar.setAttribute("aria-label", `progress of ${job.id}`);
    return element("span", { className: "progress" }, bar, ` ${job.progress}%`);
  }

  function failure(error) {
    if (!error) return "";
    return element("span", { className: "error", title: error.message || "" },
                   element("code", { textContent: error.code || "error" }), ` ${error.message || ""}`);
  }

  // A poster thumbnail keeps its <img> across refreshes, so that it is fetched once.
  const thumbnails = new Map();

  function thumbnail(url) {
    if (!thumbnails.has(url)) thumbnails.set(url, element("img", { className: "thumb", src: url, alt: "" }));
    return thumbnails.get(url);
  }

  function playButton(job) {
    const [video] = job.outputs;
    if (job.status !== "published" || !video) return "";
    const button = element("button", { type: "button", className: "play" });
    if (video.poster_thumbnail) button.append(thumbnail(video.poster_thumbnail));
    button.append("Play");
    Object.assign(button.dataset, { job: job.id, url: video.url, poster: video.poster ?? "", duration: job.duration ?? "" });
    button.setAttribute("aria-pressed", String(playing === job.id));
    button.setAttribute("aria-label", `Play the video of ${job.id}`);
    return button;
  }

  function jobLink(job) {
    const link = element("button", { type: "button", className: "link open", title: job.model || "" },
                         element("code", { textContent: job.id }));
    link.dataset.job = job.id;
    link.setAttribute("aria-label", `Details of ${job.id}`);
    return link;
  }

  function jobRow(job, now) {
    const cells = [jobLink(job), ...(admin ? [tenantChip(job.tenant)] : []), statusCell(job),
                   progress(job), clock(job.created_at), clock(job.finished_at), took(job, now), failure(job.error),
                   playButton(job)];
    const row = element("tr");
    row.classList.toggle("selected", playing === job.id);
    row.classList.toggle("open", opened === job.id);
    row.dataset.job = job.id;
    row.append(...cells.map((cell) => element("td", {}, cell)));
    return row;
  }

  function renderJobs(summary) {
    const focused = document.activeElement?.dataset?.job;
    const focusedClass = document.activeElement?.classList?.contains("play") ? "play" : "open";
    const rows = summary.jobs.map((job) => jobRow(job, summary.server_time));
    const empty = summary.status ? `No ${summary.status} jobs.` : "No jobs yet.";
    if (!rows.length) rows.push(element("tr", {}, element("td", { colSpan: admin ? 9 : 8, textContent: empty })));
    byId("tenant-column").hidden = !admin;
    byId("job-rows").replaceChildren(...rows);
    if (focused) document.querySelector(`button.${focusedClass}[data-job="${CSS.escape(focused)}"]`)?.focus();
  }

  function renderCounts(counts) {
    const chips = Object.entries(counts).filter(([, c]) => c.count > 0).map(([status, c]) =>
      element("li", {}, badge(status), element("strong", { textContent: `${c.count}${c.more ? "+" : ""}` })));
    byId("counts").replaceChildren(...(chips.length ? chips : [element("li", { textContent: "No jobs yet." })]));
  }

  function renderQueues(summary) {
    byId("queue-rows").replaceChildren(...summary.queues.map((queue) => {
      const dead = element("td", { className: queue.dead > 0 ? "dead alert" : "dead", textContent: queue.dead });
      dead.dataset.queue = queue.name;
      return element("tr", {}, element("th", { scope: "row" }, `${queue.name} `,
                                       element("span", { className: "kind", textContent: queue.kind })),
                     element("td", { textContent: queue.visible }), element("td", { textContent: queue.in_flight }),
                     dead);
    }));
    const total = byId("dlq-total");
    total.textContent = summary.dead_letters ? `${summary.dead_letters} dead letter${summary.dead_letters === 1 ? "" : "s"}`
                                             : "no dead letters";
    total.classList.toggle("alert", summary.dead_letters > 0);
  }

  function budget(line) {
    if (!line.budget) return element("span", { className: "none", textContent: "no budget" });
    return `${CREDITS.format(line.budget.credits)} / ${line.budget.per}`;
  }

  // What is left of a budget, with a bar of the share held or spent (nothing to show without a budget).
  function remaining(line) {
    if (!line.budget) return "—";
    const used = Math.min(line.budget.credits, line.held + line.spent);
    const bar = element("progress", { max: line.budget.credits, value: used });
    bar.setAttribute("aria-label", `${line.tenant}: ${CREDITS.format(used)} of ${CREDITS.format(line.budget.credits)} `
                                   + "credits held or spent");
    return element("span", { className: "progress" }, bar, ` ${CREDITS.format(line.remaining)}`);
  }

  function usageRow(line) {
    const period = line.period.slice(line.period.indexOf(":") + 1);
    const row = element("tr", {}, element("th", { scope: "row" }, tenantChip(line.tenant)),
                        element("td", { title: line.period, textContent: period }), element("td", {}, budget(line)),
                        element("td", { textContent: credits(line.held) }),
                        element("td", { textContent: credits(line.spent) }),
                        element("td", { className: line.remaining === 0 ? "remaining alert" : "remaining" },
                                remaining(line)),
                        element("td", { textContent: line.jobs }), element("td", {}, clock(line.resets_at)));
    row.dataset.tenant = line.tenant;
    return row;
  }

  function renderUsage(usage) {
    const rows = usage.map(usageRow);
    if (!rows.length) rows.push(element("tr", {}, element("td", { colSpan: 8, textContent: "No credits held or spent yet." })));
    byId("usage-rows").replaceChildren(...rows);
  }

  // The admin's tenant filter: every tenant named by the usage or by a row so far, the chosen one kept.
  function renderTenantFilter(summary) {
    byId("tenant-filter-label").hidden = !admin;
    if (!admin) return;
    const known = tenants.size;
    [...summary.usage.map((line) => line.tenant), ...summary.jobs.map((job) => job.tenant), summary.tenant]
      .filter(Boolean).forEach((tenant) => tenants.add(tenant));
    const select = byId("tenant-filter");
    if (tenants.size !== known) {
      select.replaceChildren(element("option", { value: "", textContent: "all" }),
                             ...[...tenants].sort().map((tenant) => element("option", { textContent: tenant })));
    }
    select.value = summary.tenant || "";
  }

  function fact(label, value) {
    return element("div", {}, element("dt", { textContent: label }), element("dd", {}, value ?? "—"));
  }

  // Every EvoLink task of the job, oldest first; a task that failed with a code saying try again shows it (the
  // next task retried the job).
  function tasks(attempts) {
    if (!attempts.length) return null;
    return element("ol", { className: "tasks" }, ...attempts.map((attempt) => {
      const item = element("li", {}, element("code", { textContent: attempt.task_id }));
      if (attempt.code) {
        item.append(" ", element("code", { className: "task-code", textContent: attempt.code,
                                           title: `${attempt.message || ""} (${attempt.failed_at || ""})` }));
      }
      return item;
    }));
  }

  function renderDetails(job) {
    byId("details-id").textContent = job.id;
    const queued = job.status === "queued" ? [fact("place in queue", job.queue_position == null ? null
                                                                       : `#${job.queue_position}`)] : [];
    byId("details-facts").replaceChildren(
      fact("status", badge(job.status)), ...queued, fact("tenant", tenantChip(job.tenant)),
      fact("progress", `${job.progress}%`), fact("model", job.model),
      fact("task", job.task_id), fact("created", clock(job.created_at)), fact("submitted", clock(job.submitted_at)),
      fact("finished", clock(job.finished_at)), fact("updated", clock(job.updated_at)),
      ...(job.at_risk_at ? [fact("at risk since", clock(job.at_risk_at))] : []), fact("deadline", clock(job.deadline_at)),
      fact("attempts", tasks(job.attempts)), fact("idempotency key", job.idempotency_key),
      ...["estimated", "held", "reserved", "used"].map((kind) => fact(`credits ${kind}`, credits(job.credits[kind]))));
    byId("details-request").textContent = JSON.stringify(job.request, null, 2);
    byId("details-metadata").textContent = JSON.stringify(job.metadata, null, 2);
    const outputs = job.outputs.map((o) => element("li", {}, element("a", { href: o.url, textContent: `output ${o.index}` }),
                                                   ` ${o.content_type}, ${o.size.toLocaleString()} bytes`, ...described(o)));
    byId("details-outputs").replaceChildren(...(outputs.length ? outputs : [element("li", { className: "none", textContent: "none" })]));
    byId("details-error").replaceChildren(job.error ? failure(job.error) : "none");
    const events = job.events.map((e) => element("li", {}, element("code", { textContent: e.type || "event" }), ` ${e.id}`));
    byId("details-events").replaceChildren(...(events.length ? events : [element("li", { className: "none", textContent: "none published yet" })]));
    const panel = byId("details");
    if (panel.hidden) {
      panel.hidden = false;
      panel.scrollIntoView({ block: "nearest" });
    }
  }

  // What the relay read of an output: its media facts, its checks against the request, its pictures.
  function described(output) {
    if (!output.media) return [];
    const m = output.media;
    const sound = m.has_audio ? ` + ${m.audio_codec}` : ", no audio";
    const facts = `${m.duration} s · ${m.width}×${m.height} · ${m.fps} fps · ${m.video_codec}${sound}`;
    const checks = output.checks.map((c) => element("li", { className: c.ok ? "check ok" : "check failed",
      title: `expected ${c.expected}, got ${c.actual}`, textContent: `${c.ok ? "✓" : "✗"} ${c.name}` }));
    const pictures = ["poster", "last-frame"].filter((role) => output.frames[role]).map((role) =>
      element("a", { href: output.frames[role] }, element("img", { className: "frame",
        src: output.frames[`${role}-thumbnail`] || output.frames[role], alt: `${role.replace("-", " ")} of output ${output.index}` })));
    return [element("div", { className: "media" }, facts), element("ul", { className: "checks" }, ...checks),
            element("div", { className: "frames" }, ...pictures)];
  }

  async function loadDetails(jobId) {
    const response = await fetch(`/dashboard/jobs/${encodeURIComponent(jobId)}`, {
      credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } });
    if (response.status === 401) return refresh();
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    if (opened === jobId) renderDetails(await response.json());
  }

  function openDetails(jobId) {
    opened = jobId;
    document.querySelectorAll("#job-rows tr").forEach((row) => row.classList.toggle("open", row.dataset.job === jobId));
    loadDetails(jobId).catch((error) => { byId("status").textContent = `Could not load ${jobId} (${error.message}).`; });
  }

  function closeDetails() {
    opened = null;
    byId("details").hidden = true;
    document.querySelectorAll("#job-rows tr.open").forEach((row) => row.classList.remove("open"));
  }

  function play(button) {
    const video = byId("player");
    playing = button.dataset.job;
    video.poster = button.dataset.poster;
    video.src = button.dataset.url;
    const length = button.dataset.duration ? ` · ${button.dataset.duration} s requested` : "";
    byId("player-caption").textContent = `${playing}${length}`;
    document.querySelectorAll("#job-rows tr").forEach((row) => row.classList.toggle("selected", row.dataset.job === playing));
    document.querySelectorAll("button.play").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
    video.play().catch(() => {});
  }

  function showBoard(signedIn) {
    byId("sign-in").hidden = signedIn;
    byId("board").hidden = !signedIn;
    byId("sign-out").hidden = !signedIn;
  }

  function summaryUrl() {
    const query = new URLSearchParams({ limit: "50" });
    const status = byId("status-filter").value;
    const tenant = admin ? byId("tenant-filter").value : "";
    if (status) query.set("status", status);
    if (tenant) query.set("tenant", tenant);
    return `/dashboard/summary?${query}`;
  }

  async function refresh() {
    clearTimeout(timer);
    const status = byId("status");
    try {
      const response = await fetch(summaryUrl(), {
        credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } });
      if (response.status === 401) {
        showBoard(false);
        if (byId("sign-in-error").hidden) status.textContent = "Sign in to see the relay.";
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const summary = await response.json();
      admin = summary.admin;
      renderCounts(summary.counts);
      renderQueues(summary);
      renderUsage(summary.usage);
      renderTenantFilter(summary);
      renderJobs(summary);
      showBoard(true);
      if (opened) await loadDetails(opened);
      refreshMs = (summary.refresh_seconds || 5) * 1000;
      status.textContent = `Updated ${TIME.format(new Date(summary.server_time))}`
                           + ` · refreshes every ${refreshMs / 1000} s`
                           + (admin ? ` · admin: ${summary.tenant ? `tenant ${summary.tenant}` : "every tenant"}`
                                    : ` · tenant ${summary.tenant}`);
      document.body.dataset.shown = summary.status || "all";
      document.body.dataset.tenant = summary.tenant || "all";
      document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
    } catch (error) {
      status.textContent = `Could not refresh (${error.message}); trying again.`;
    }
    timer = setTimeout(refresh, refreshMs);
  }

  document.addEventListener("DOMContentLoaded", () => {
    byId("job-rows").addEventListener("click", (event) => {
      const button = event.target.closest("button.play");
      if (button) return play(button);
      const row = event.target.closest("tr[data-job]");
      if (row && !event.target.closest("a")) openDetails(row.dataset.job);
    });
    byId("details-close").addEventListener("click", closeDetails);
    byId("status-filter").addEventListener("change", refresh);
    byId("tenant-filter").addEventListener("change", refresh);
    refresh();
  });
})();
