// The dashboard: reads /dashboard/summary every few seconds and renders it. No framework, no build step.
"use strict";

(() => {
  const FINAL = new Set(["published", "failed", "cancelled", "rejected", "expired"]);
  const byId = (id) => document.getElementById(id);
  let refreshMs = 5000;
  let timer = 0;
  let playing = null;

  function element(tag, props = {}, ...children) {
    const node = Object.assign(document.createElement(tag), props);
    node.append(...children);
    return node;
  }

  function clock(seconds) {
    if (seconds == null) return element("span", { textContent: "—" });
    const when = new Date(seconds * 1000);
    return element("time", { dateTime: when.toISOString(), title: when.toString(),
                             textContent: when.toLocaleTimeString([], { hour12: false }) });
  }

  function span(seconds) {
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  }

  function took(job, now) {
    if (job.finished_at != null) return span(job.finished_at - job.created_at);
    return FINAL.has(job.status) ? "—" : `running ${span(Math.max(0, now - job.created_at))}`;
  }

  function badge(status) {
    return element("span", { className: `badge status-${status}`, textContent: status });
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

  function playButton(job) {
    const [video] = job.outputs;
    if (job.status !== "published" || !video) return "";
    const button = element("button", { type: "button", className: "play", textContent: "Play" });
    Object.assign(button.dataset, { job: job.id, url: video.url, duration: job.duration ?? "" });
    button.setAttribute("aria-pressed", String(playing === job.id));
    button.setAttribute("aria-label", `Play the video of ${job.id}`);
    return button;
  }

  function jobRow(job, now) {
    const cells = [element("code", { textContent: job.id, title: job.model || "" }), badge(job.status),
                   progress(job), clock(job.created_at), clock(job.finished_at), took(job, now),
                   failure(job.error), playButton(job)];
    const row = element("tr", { className: playing === job.id ? "selected" : "" });
    row.dataset.job = job.id;
    row.append(...cells.map((cell) => element("td", {}, cell)));
    return row;
  }

  function renderJobs(summary) {
    const focused = document.activeElement?.dataset?.job;
    const rows = summary.jobs.map((job) => jobRow(job, summary.server_time));
    if (!rows.length) rows.push(element("tr", {}, element("td", { colSpan: 8, textContent: "No jobs yet." })));
    byId("job-rows").replaceChildren(...rows);
    if (focused) document.querySelector(`button.play[data-job="${CSS.escape(focused)}"]`)?.focus();
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

  function play(button) {
    const video = byId("player");
    playing = button.dataset.job;
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

  async function refresh() {
    clearTimeout(timer);
    const status = byId("status");
    try {
      const response = await fetch("/dashboard/summary?limit=50", {
        credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } });
      if (response.status === 401) {
        showBoard(false);
        status.textContent = "Sign in to see the relay.";
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const summary = await response.json();
      renderCounts(summary.counts);
      renderQueues(summary);
      renderJobs(summary);
      showBoard(true);
      refreshMs = (summary.refresh_seconds || 5) * 1000;
      status.textContent = `Updated ${new Date(summary.server_time * 1000).toLocaleTimeString([], { hour12: false })}`
                           + ` · refreshes every ${refreshMs / 1000} s`;
      document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
    } catch (error) {
      status.textContent = `Could not refresh (${error.message}); trying again.`;
    }
    timer = setTimeout(refresh, refreshMs);
  }

  document.addEventListener("DOMContentLoaded", () => {
    byId("job-rows").addEventListener("click", (event) => {
      const button = event.target.closest("button.play");
      if (button) play(button);
    });
    refresh();
  });
})();
