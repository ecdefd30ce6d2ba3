// /admin/sync: no build step, no dependencies. The secret lives in this tab's
// sessionStorage and travels only in the Authorization header: never in a URL,
// never written into the page. All server text is inserted with textContent.
"use strict";
(() => {
  const STORAGE_KEY = "kaitenSyncSecret";
  const FAST_REFRESH_MS = 2000;   // while a run is going or webhooks are pending
  const SLOW_REFRESH_MS = 30000;  // idle: still notice webhook-triggered runs
  const KIND = { incremental: "инкрементальная", full: "полная" };
  const TRIGGER = { api: "вручную", webhook: "вебхук" };
  const OUTCOME = {
    running: "идёт", success: "успешно", failed: "ошибка",
    cancelled: "остановлена", interrupted: "прервана сбоем сервиса",
  };
  const $ = (id) => document.getElementById(id);

  let secret = sessionStorage.getItem(STORAGE_KEY);
  let timer = null;

  const when = (iso) => (iso ? new Date(iso).toLocaleString("ru-RU") : "—");
  const seconds = (s) => (s < 90 ? `${s.toFixed(1)} с` : `${Math.floor(s / 60)} мин ${Math.round(s % 60)} с`);
  const records = (run) =>
    Object.entries(run.records).map(([stream, n]) => `${stream}: ${n}`).join(", ") || "—";

  function cell(row, text, className) {
    const td = row.insertCell();
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function say(text, isError = false) {
    $("message").textContent = text;
    $("message").className = isError ? "error" : "";
  }

  async function api(path, method = "GET") {
    const response = await fetch(path, {
      method,
      headers: { Authorization: `Bearer ${secret}` },
      cache: "no-store",
      credentials: "omit",
    });
    let body = null;
    try { body = await response.json(); } catch { /* empty or non-JSON error body */ }
    return { status: response.status, body };
  }

  function showLogin(problem = "") {
    secret = null;
    sessionStorage.removeItem(STORAGE_KEY);
    clearTimeout(timer);
    $("panel").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = problem;
    $("secret").focus();
    document.body.dataset.state = "login";
  }

  function showPanel() {
    $("login").hidden = true;
    $("panel").hidden = false;
    $("logout").hidden = false;
    refresh();
  }

  function render(status) {
    const run = status.current_run;
    const busy = Boolean(run);
    $("sync-incremental").disabled = busy;
    $("sync-full").disabled = busy;
    $("current").textContent = busy
      ? `Идёт ${KIND[run.kind] || run.kind} синхронизация (${TRIGGER[run.trigger] || run.trigger}), ` +
        `начата ${when(run.started_at)}, ${seconds(run.duration_seconds)}; записей: ${run.records_total}`
      : "Синхронизация не идёт.";
    const pending = status.pending;
    $("pending").textContent = pending
      ? `Ожидают вебхуки: ${pending.events}; ` +
        (pending.waiting_for_current_run ? "запуск после текущего." : `запуск через ${seconds(pending.run_due_in_seconds)}.`)
      : "";

    const tbody = $("runs").tBodies[0];
    tbody.replaceChildren();
    for (const r of status.runs) {
      const row = tbody.insertRow();
      row.dataset.runId = r.id;
      row.dataset.outcome = r.outcome;
      cell(row, when(r.started_at));
      cell(row, seconds(r.duration_seconds));
      cell(row, KIND[r.kind] || r.kind);
      cell(row, TRIGGER[r.trigger] || r.trigger);
      const outcome = cell(row, OUTCOME[r.outcome] || r.outcome, "outcome");
      if (r.error) {
        const detail = document.createElement("div");
        detail.className = "hint";
        detail.textContent = r.error;
        outcome.append(detail);
      }
      cell(row, records(r));
    }
    $("no-runs").hidden = status.runs.length > 0;

    const marks = status.bookmarks;
    $("bookmarks-reason").textContent = marks.available ? "" : marks.reason;
    $("bookmarks").hidden = marks.states.length === 0;
    const mbody = $("bookmarks").tBodies[0];
    mbody.replaceChildren();
    for (const state of marks.states) {
      const label = state.state_id ?? state.id ?? "";
      const streams = Object.entries(state.streams || {});
      if (streams.length === 0) streams.push(["—", "—"]);
      for (const [stream, value] of streams) {
        const row = mbody.insertRow();
        cell(row, String(label));
        cell(row, stream);
        cell(row, String(value));
        cell(row, when(state.updated_at));
      }
    }

    const hooks = status.webhooks;
    $("webhooks").textContent = hooks.received
      ? `Получено с запуска сервиса: ${hooks.received} (` +
        Object.entries(hooks.by_event).map(([e, n]) => `${e}: ${n}`).join(", ") + ")"
      : "С запуска сервиса вебхуков не было.";
    $("refreshed").textContent = new Date().toLocaleTimeString("ru-RU");
    document.body.dataset.state = busy ? "running" : "idle";
    return busy || Boolean(pending);
  }

  async function refresh() {
    clearTimeout(timer);
    let fast = false;
    try {
      const { status, body } = await api("/api/sync/status");
      if (status === 401) return showLogin("Неверный ключ.");
      if (status !== 200) throw new Error(body?.error || `HTTP ${status}`);
      fast = render(body);
    } catch (problem) {
      say(`Не удалось получить статус: ${problem.message}`, true);
      fast = true;
    }
    timer = setTimeout(refresh, fast ? FAST_REFRESH_MS : SLOW_REFRESH_MS);
  }

  async function startSync(kind) {
    $("sync-incremental").disabled = true;
    $("sync-full").disabled = true;
    try {
      const { status, body } = await api(kind === "full" ? "/api/sync/full" : "/api/sync", "POST");
      if (status === 401) return showLogin("Неверный ключ.");
      if (status === 202) say(`Запущена ${KIND[kind]} синхронизация (${body.run_id}).`);
      else if (status === 409) say("Синхронизация уже идёт: дождитесь её окончания.", true);
      else say(`Ошибка: ${body?.error || `HTTP ${status}`}`, true);
    } catch (problem) {
      say(`Сервис недоступен: ${problem.message}`, true);
    }
    refresh();
  }

  async function boot() {
    $("login").addEventListener("submit", (event) => {
      event.preventDefault();
      secret = $("secret").value.trim();
      $("secret").value = "";
      if (!secret) return;
      sessionStorage.setItem(STORAGE_KEY, secret);
      showPanel();
    });
    $("logout").addEventListener("click", () => showLogin());
    $("sync-incremental").addEventListener("click", () => startSync("incremental"));
    $("sync-full").addEventListener("click", () => startSync("full"));
    try {
      const health = await (await fetch("/healthz", { cache: "no-store" })).json();
      if (!health.sync_enabled) {
        $("disabled").hidden = false;
        document.body.dataset.state = "disabled";
        return;
      }
    } catch {
      say("Сервис недоступен.", true);
    }
    if (secret) showPanel(); else showLogin();
  }

  boot();
})();
