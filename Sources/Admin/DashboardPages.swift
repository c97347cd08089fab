/// The admin dashboard's HTML (server-rendered shell; inline CSS and JS, no external resources).
///
/// Both pages talk only to this origin's admin API: `POST /api/v1/admin/login/` (sets the HttpOnly cookie
/// `notify_admin`), `POST /api/v1/admin/logout/`, `GET /api/v1/admin/overview/`, `GET /api/v1/admin/dead-letters/`
/// and `POST /api/v1/admin/dead-letters/{id}/replay/`. Every call that changes state sends
/// `X-Requested-With: notify-dashboard`; any 401 sends the browser to `/admin/login`. Server data reaches the
/// page only through `textContent`, attributes and DOM APIs, never `innerHTML`.
///
/// They need no more than this Content-Security-Policy (`'unsafe-inline'` for the one inline script and style):
/// `default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self';
/// form-action 'self'; base-uri 'none'; frame-ancestors 'none'`.
enum DashboardPages {
    /// The login form. `error` is shown when non-nil; it is already plain text, escape it for HTML.
    static func login(error: String?) -> String {
        let hidden = error == nil ? " hidden" : ""
        let message = escapeHTML(error ?? "")
        return #"""
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta name="referrer" content="no-referrer">
            <title>Sign in · Notify admin</title>
            <link rel="icon" href="data:,">
            <style>
            \#(baseStyles)
            body { display: flex; min-height: 100vh; align-items: center; justify-content: center; padding: 1rem; }
            .login { width: 100%; max-width: 24rem; padding: 2rem; }
            .login h1 { font-size: 1.35rem; margin: 0 0 0.25rem; }
            .login p.lead { margin: 0 0 1.5rem; color: var(--muted); }
            .field { display: flex; flex-direction: column; gap: 0.35rem; margin-bottom: 1rem; }
            .field label { font-weight: 600; font-size: 0.9rem; }
            .field input { font: inherit; padding: 0.55rem 0.7rem; border: 1px solid var(--border-strong); border-radius: 6px; background: #fff; color: var(--text); }
            .login button[type=submit] { width: 100%; padding: 0.6rem; margin-top: 0.5rem; }
            .error { margin: 0 0 1rem; padding: 0.6rem 0.8rem; border-radius: 6px; background: var(--bad-bg); color: var(--bad); border: 1px solid #f5b5ae; }
            </style>
            </head>
            <body>
            <main class="card login">
            <h1>Notify admin</h1>
            <p class="lead">Sign in to the operations dashboard.</p>
            <p id="login-error" class="error" role="alert"\#(hidden)>\#(message)</p>
            <form id="login-form" method="post" novalidate>
            <div class="field">
            <label for="email">Email</label>
            <input id="email" name="email" type="email" autocomplete="username" required autofocus>
            </div>
            <div class="field">
            <label for="password">Password</label>
            <input id="password" name="password" type="password" autocomplete="current-password" required>
            </div>
            <button id="login-submit" type="submit">Sign in</button>
            </form>
            </main>
            <script>
            (function () {
              'use strict';
              const form = document.getElementById('login-form');
              const errorBox = document.getElementById('login-error');
              const submit = document.getElementById('login-submit');
              function showError(text) {
                errorBox.textContent = text;
                errorBox.hidden = false;
              }
              form.addEventListener('submit', async function (event) {
                event.preventDefault();
                const email = form.elements.email.value.trim();
                const password = form.elements.password.value;
                if (!email || !password) {
                  showError('Enter your email and password.');
                  return;
                }
                submit.disabled = true;
                submit.textContent = 'Signing in…';
                try {
                  const response = await fetch('/api/v1/admin/login/', {
                    method: 'POST',
                    credentials: 'same-origin',
                    cache: 'no-store',
                    headers: { 'Content-Type': 'application/json', 'Accept': 'application/json', 'X-Requested-With': 'notify-dashboard' },
                    body: JSON.stringify({ email: email, password: password })
                  });
                  if (response.status === 200) {
                    window.location.assign('/admin/');
                    return;
                  }
                  let body = null;
                  try { body = await response.json(); } catch (ignored) { body = null; }
                  if (response.status === 401) {
                    showError((body && body.message) || 'Invalid email or password.');
                  } else {
                    showError((body && (body.message || body.error)) || ('Sign-in failed (HTTP ' + response.status + ').'));
                  }
                } catch (failure) {
                  showError('Cannot reach the admin service. Check your connection and try again.');
                }
                submit.disabled = false;
                submit.textContent = 'Sign in';
                form.elements.password.focus();
              });
            })();
            </script>
            </body>
            </html>
            """#
    }

    /// The dashboard. The inline script polls the overview every 2 s and the dead letters every 5 s.
    static let dashboard: String = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="no-referrer">
        <title>Operations · Notify admin</title>
        <link rel="icon" href="data:,">
        <style>
        \#(baseStyles)
        .topbar { display: flex; flex-wrap: wrap; gap: 0.75rem 1.5rem; align-items: center; justify-content: space-between; padding: 0.85rem 1.5rem; background: #fff; border-bottom: 1px solid var(--border); }
        .topbar h1 { margin: 0; font-size: 1.2rem; }
        .topbar .meta { display: flex; flex-wrap: wrap; align-items: center; gap: 0.5rem 1rem; color: var(--muted); font-size: 0.9rem; }
        .topbar time { color: var(--text); font-variant-numeric: tabular-nums; }
        .conn { display: inline-flex; align-items: center; gap: 0.35rem; font-weight: 600; }
        .conn::before { content: ""; width: 0.6rem; height: 0.6rem; border-radius: 50%; background: var(--off); }
        .conn[data-state=live] { color: var(--ok); }
        .conn[data-state=live]::before { background: var(--ok); }
        .conn[data-state=stale], .conn[data-state=offline] { color: var(--bad); }
        .conn[data-state=stale]::before, .conn[data-state=offline]::before { background: var(--bad); }
        .banner { margin: 1rem 1.5rem 0; padding: 0.6rem 0.9rem; border-radius: 6px; background: var(--bad-bg); color: var(--bad); border: 1px solid #f5b5ae; }
        .grid { display: grid; grid-template-columns: repeat(12, minmax(0, 1fr)); gap: 1rem; padding: 1rem 1.5rem 2rem; }
        .grid > * { grid-column: span 12; min-width: 0; }
        .column { display: flex; flex-direction: column; gap: 1rem; }
        .column > .grow { flex: 1; }
        @media (min-width: 900px) {
          .grid > .span-8 { grid-column: span 8; }
          .grid > .span-6 { grid-column: span 6; }
          .grid > .span-4 { grid-column: span 4; }
        }
        .card h2 { margin: 0 0 0.75rem; font-size: 1rem; }
        .card h2 small { font-weight: 400; color: var(--muted); margin-left: 0.35rem; }
        .services { display: flex; flex-wrap: wrap; gap: 0.6rem; margin: 0; padding: 0; list-style: none; }
        .service { display: flex; flex-direction: column; gap: 0.2rem; min-width: 9.5rem; padding: 0.5rem 0.75rem; border: 1px solid var(--border); border-left-width: 4px; border-radius: 6px; background: #fff; }
        .service-head { display: flex; align-items: center; justify-content: space-between; gap: 0.75rem; }
        .service-name { font-weight: 600; }
        .service-checks { margin: 0; padding: 0; list-style: none; font-size: 0.8rem; color: var(--muted); }
        .service.status-up { border-left-color: var(--ok); }
        .service.status-degraded { border-left-color: var(--warn); }
        .service.status-down { border-left-color: var(--bad); }
        .service.status-unreachable, .service.status-unknown { border-left-color: var(--off); }
        .pill { display: inline-block; padding: 0.05rem 0.5rem; border-radius: 999px; font-size: 0.78rem; font-weight: 600; white-space: nowrap; background: var(--off-bg); color: var(--off); }
        .status-up .pill, .pill.status-up, [data-state=closed] .pill { background: var(--ok-bg); color: var(--ok); }
        .status-degraded .pill, .pill.status-degraded, [data-state=half_open] .pill { background: var(--warn-bg); color: var(--warn); }
        .status-down .pill, .pill.status-down, [data-state=open] .pill { background: var(--bad-bg); color: var(--bad); }
        .totals { display: grid; grid-template-columns: repeat(auto-fit, minmax(8rem, 1fr)); gap: 0.75rem; margin: 0; }
        .stat { padding: 0.6rem 0.8rem; border: 1px solid var(--border); border-radius: 6px; background: var(--bg-soft); }
        .stat dt { font-size: 0.8rem; color: var(--muted); text-transform: uppercase; letter-spacing: 0.04em; }
        .stat dd { margin: 0.15rem 0 0; font-size: 1.6rem; font-weight: 650; font-variant-numeric: tabular-nums; }
        .stat.good dd { color: var(--ok); }
        .stat.bad dd { color: var(--bad); }
        .chart { width: 100%; height: auto; display: block; }
        .chart .grid-line { stroke: var(--border); stroke-width: 1; }
        .chart .axis-line { stroke: var(--border-strong); stroke-width: 1; }
        .chart text { font-size: 11px; fill: var(--muted); font-family: inherit; }
        .chart .axis-title { font-size: 11px; fill: var(--muted); }
        .chart .bar-sent { fill: var(--accent); }
        .chart .bar-failed { fill: var(--bad); }
        .chart .empty { font-size: 13px; }
        .legend { display: flex; gap: 1rem; margin: 0.5rem 0 0; padding: 0; list-style: none; font-size: 0.85rem; color: var(--muted); }
        .legend li::before { content: ""; display: inline-block; width: 0.7rem; height: 0.7rem; margin-right: 0.35rem; border-radius: 2px; vertical-align: -0.05rem; }
        .legend .sent::before { background: var(--accent); }
        .legend .failed::before { background: var(--bad); }
        .kv { display: grid; grid-template-columns: 1fr auto; align-items: baseline; gap: 0.45rem 1rem; margin: 0; }
        .kv dt { color: var(--muted); }
        .kv dd { margin: 0; text-align: right; font-weight: 600; font-variant-numeric: tabular-nums; }
        .kv dd.big { font-size: 1.6rem; }
        .table-wrap { position: relative; overflow-x: auto; }
        table { width: 100%; border-collapse: collapse; font-size: 0.9rem; }
        th, td { padding: 0.4rem 0.6rem; text-align: left; border-bottom: 1px solid var(--border); vertical-align: top; }
        th { font-size: 0.78rem; text-transform: uppercase; letter-spacing: 0.04em; color: var(--muted); font-weight: 600; }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
        tbody tr:hover { background: var(--bg-soft); }
        td.empty { color: var(--muted); text-align: center; padding: 0.9rem; }
        td.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: 0.82rem; }
        td.nowrap { white-space: nowrap; }
        td.error-text { max-width: 22rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; color: var(--bad); }
        tr.warn td { background: var(--warn-bg); }
        .breakers { display: flex; flex-direction: column; gap: 0.4rem; margin: 0; padding: 0; list-style: none; }
        .breaker { display: flex; align-items: center; gap: 0.5rem; padding: 0.35rem 0.6rem; border: 1px solid var(--border); border-radius: 6px; background: #fff; }
        .breaker .pill { margin-left: auto; }
        .breaker .from { color: var(--muted); }
        .muted { color: var(--muted); }
        .pager { display: flex; align-items: center; gap: 0.75rem; margin-top: 0.75rem; font-size: 0.9rem; color: var(--muted); }
        .notice { min-height: 1.4em; margin: 0 0 0.5rem; font-size: 0.9rem; }
        .notice[data-kind=ok] { color: var(--ok); }
        .notice[data-kind=error] { color: var(--bad); }
        button.replay { padding: 0.25rem 0.7rem; font-size: 0.85rem; }
        </style>
        </head>
        <body>
        <header class="topbar">
        <h1>Notify operations</h1>
        <div class="meta">
        <span id="connection" class="conn" data-state="connecting" role="status">Connecting…</span>
        <span>Last updated <time id="updated-at">never</time></span>
        <button id="logout" type="button" class="secondary">Log out</button>
        </div>
        </header>
        <div id="error-banner" class="banner" role="alert" hidden></div>
        <main class="grid">
        <section class="card span-12" aria-labelledby="services-title">
        <h2 id="services-title">Service health</h2>
        <ul id="services" class="services"><li class="muted">Loading…</li></ul>
        </section>
        <section class="card span-12" aria-labelledby="totals-title">
        <h2 id="totals-title">Notifications <small>all time, by status</small></h2>
        <dl class="totals">
        <div class="stat"><dt>Accepted</dt><dd id="total-accepted">–</dd></div>
        <div class="stat"><dt>Pending</dt><dd id="total-pending">–</dd></div>
        <div class="stat"><dt>Processing</dt><dd id="total-processing">–</dd></div>
        <div class="stat"><dt>Retrying</dt><dd id="total-retrying">–</dd></div>
        <div class="stat good"><dt>Sent</dt><dd id="total-sent">–</dd></div>
        <div class="stat good"><dt>Delivered</dt><dd id="total-delivered">–</dd></div>
        <div class="stat bad"><dt>Failed</dt><dd id="total-failed">–</dd></div>
        </dl>
        </section>
        <section class="card span-8" aria-labelledby="throughput-title">
        <h2 id="throughput-title">Throughput <small>per minute, last 30 minutes</small></h2>
        <svg id="throughput-chart" class="chart" viewBox="0 0 640 230" role="img" aria-labelledby="throughput-chart-title throughput-chart-desc" xmlns="http://www.w3.org/2000/svg">
        <title id="throughput-chart-title">Notifications sent and failed per minute</title>
        <desc id="throughput-chart-desc">No data yet.</desc>
        <g id="throughput-plot"><text class="empty" x="320" y="115" text-anchor="middle">Loading…</text></g>
        </svg>
        <ul class="legend"><li class="sent">Sent</li><li class="failed">Failed</li></ul>
        </section>
        <div class="span-4 column">
        <section class="card" aria-labelledby="backlog-title">
        <h2 id="backlog-title">Backlog</h2>
        <dl class="kv">
        <dt>Outbox unpublished</dt><dd id="outbox-unpublished" class="big">–</dd>
        <dt>Oldest unpublished</dt><dd id="outbox-oldest">–</dd>
        <dt>Dead letters</dt><dd id="dead-letter-count" class="big">–</dd>
        </dl>
        </section>
        <section class="card grow" aria-labelledby="breakers-title">
        <h2 id="breakers-title">Circuit breakers</h2>
        <ul id="breakers" class="breakers"><li class="muted">Loading…</li></ul>
        </section>
        </div>
        <section class="card span-6" aria-labelledby="jobs-title">
        <h2 id="jobs-title">Job states</h2>
        <div class="table-wrap">
        <table id="job-states">
        <thead><tr><th scope="col">Queue</th><th scope="col">State</th><th scope="col" class="num">Jobs</th><th scope="col" class="num">Oldest</th></tr></thead>
        <tbody><tr><td class="empty" colspan="4">Loading…</td></tr></tbody>
        </table>
        </div>
        </section>
        <section class="card span-6" aria-labelledby="queues-title">
        <h2 id="queues-title">RabbitMQ queues</h2>
        <div class="table-wrap">
        <table id="queues">
        <thead><tr><th scope="col">Queue</th><th scope="col" class="num">Messages</th><th scope="col" class="num">Consumers</th></tr></thead>
        <tbody><tr><td class="empty" colspan="3">Loading…</td></tr></tbody>
        </table>
        </div>
        </section>
        <section class="card span-12" aria-labelledby="dead-letters-title">
        <h2 id="dead-letters-title">Dead letters <small>failed notifications; replay sends one again</small></h2>
        <p id="replay-status" class="notice" role="status" aria-live="polite"></p>
        <div class="table-wrap">
        <table id="dead-letters">
        <thead><tr><th scope="col">Notification</th><th scope="col">Channel</th><th scope="col">User</th><th scope="col" class="num">Attempts</th><th scope="col">Failed at</th><th scope="col">Last error</th><th scope="col"><span class="visually-hidden">Action</span></th></tr></thead>
        <tbody><tr><td class="empty" colspan="7">Loading…</td></tr></tbody>
        </table>
        </div>
        <div class="pager">
        <button id="dead-letters-prev" type="button" class="secondary" disabled>Previous</button>
        <span id="dead-letters-page">Page 1</span>
        <button id="dead-letters-next" type="button" class="secondary" disabled>Next</button>
        </div>
        </section>
        </main>
        <script>
        (function () {
          'use strict';
          const OVERVIEW_EVERY_MS = 2000;
          const DEAD_LETTERS_EVERY_MS = 5000;
          const DEAD_LETTERS_LIMIT = 20;
          const STALE_AFTER_MS = 10000;
          const SVG_NS = 'http://www.w3.org/2000/svg';
          const DASH = '–';
          const SERVICE_STATUSES = ['up', 'degraded', 'down', 'unreachable'];

          const state = {
            redirecting: false,
            lastSuccess: 0,
            overviewSeq: 0,
            overviewShown: 0,
            deadSeq: 0,
            deadShown: 0,
            deadPage: 1,
            rendered: {},
            pendingReplays: new Set(),
            timers: {}
          };

          function byId(id) { return document.getElementById(id); }

          class Unauthorized extends Error {}

          function toLogin() {
            if (state.redirecting) return;
            state.redirecting = true;
            Object.keys(state.timers).forEach(function (key) { clearTimeout(state.timers[key]); });
            window.location.replace('/admin/login');
          }

          // One call to the admin API. Resolves to {status, ok, body}; a 401 sends the browser to the login page.
          async function api(path, method, payload) {
            const init = { method: method || 'GET', credentials: 'same-origin', cache: 'no-store', headers: { 'Accept': 'application/json' } };
            if (init.method !== 'GET') init.headers['X-Requested-With'] = 'notify-dashboard';
            if (payload !== undefined) {
              init.headers['Content-Type'] = 'application/json';
              init.body = JSON.stringify(payload);
            }
            const response = await fetch(path, init);
            if (response.status === 401) {
              toLogin();
              throw new Unauthorized('not signed in');
            }
            let body = null;
            try { body = await response.json(); } catch (ignored) { body = null; }
            const ok = response.ok && body !== null && body.success !== false;
            return { status: response.status, ok: ok, body: body };
          }

          function describeFailure(result) {
            const body = result.body;
            if (body && body.message) return body.message + (body.error ? ' (' + body.error + ')' : '');
            return 'HTTP ' + result.status;
          }

          function el(tag, className, text) {
            const node = document.createElement(tag);
            if (className) node.className = className;
            if (text !== undefined && text !== null) node.textContent = String(text);
            return node;
          }

          function svg(tag, attributes, text) {
            const node = document.createElementNS(SVG_NS, tag);
            Object.keys(attributes || {}).forEach(function (key) { node.setAttribute(key, String(attributes[key])); });
            if (text !== undefined && text !== null) node.textContent = String(text);
            return node;
          }

          function isNumber(value) { return typeof value === 'number' && isFinite(value); }

          function formatCount(value) { return isNumber(value) ? value.toLocaleString('en-US') : DASH; }

          function formatAge(seconds) {
            if (!isNumber(seconds)) return DASH;
            const s = Math.max(0, Math.round(seconds));
            if (s < 60) return s + 's';
            if (s < 3600) return Math.floor(s / 60) + 'm ' + String(s % 60).padStart(2, '0') + 's';
            if (s < 86400) return Math.floor(s / 3600) + 'h ' + String(Math.floor((s % 3600) / 60)).padStart(2, '0') + 'm';
            return Math.floor(s / 86400) + 'd ' + Math.floor((s % 86400) / 3600) + 'h';
          }

          function parseTime(value) {
            if (typeof value !== 'string') return null;
            const date = new Date(value);
            return isNaN(date.getTime()) ? null : date;
          }

          function two(n) { return String(n).padStart(2, '0'); }

          function clock(date, withSeconds) {
            return two(date.getHours()) + ':' + two(date.getMinutes()) + (withSeconds ? ':' + two(date.getSeconds()) : '');
          }

          function formatDateTime(value) {
            const date = parseTime(value);
            if (!date) return value ? String(value) : DASH;
            return date.getFullYear() + '-' + two(date.getMonth() + 1) + '-' + two(date.getDate()) + ' ' + clock(date, true);
          }

          // Runs `draw` only when `data` differs from what the section shows, so focus and hover survive polls.
          function renderIfChanged(key, data, draw) {
            const fingerprint = JSON.stringify(data === undefined ? null : data);
            if (state.rendered[key] === fingerprint) return;
            state.rendered[key] = fingerprint;
            draw(data);
          }

          function emptyRow(tbody, columns, text) {
            const row = el('tr');
            const cell = el('td', 'empty', text);
            cell.colSpan = columns;
            row.appendChild(cell);
            tbody.appendChild(row);
          }

          function setConnection(kind, text) {
            const node = byId('connection');
            node.dataset.state = kind;
            node.textContent = text;
          }

          function showBanner(text) {
            const banner = byId('error-banner');
            if (text) {
              banner.textContent = text;
              banner.hidden = false;
            } else {
              banner.textContent = '';
              banner.hidden = true;
            }
          }

          function drawServices(services) {
            const list = byId('services');
            list.replaceChildren();
            if (!Array.isArray(services) || services.length === 0) {
              list.appendChild(el('li', 'muted', 'No services reported.'));
              return;
            }
            services.forEach(function (service) {
              const status = SERVICE_STATUSES.indexOf(service.status) >= 0 ? service.status : 'unknown';
              const item = el('li', 'service status-' + status);
              item.dataset.service = String(service.name);
              item.dataset.status = String(service.status);
              const head = el('div', 'service-head');
              head.appendChild(el('span', 'service-name', service.name));
              head.appendChild(el('span', 'pill', service.status || 'unknown'));
              item.appendChild(head);
              const checks = service.checks && typeof service.checks === 'object' ? service.checks : {};
              const names = Object.keys(checks).sort();
              const titleLines = [];
              const problems = el('ul', 'service-checks');
              names.forEach(function (name) {
                const check = checks[name] || {};
                const line = name + ': ' + (check.status || 'unknown') + (check.detail ? ' (' + check.detail + ')' : '');
                titleLines.push(line);
                if (check.status !== 'up') problems.appendChild(el('li', null, line));
              });
              if (problems.childElementCount > 0) item.appendChild(problems);
              else if (names.length > 0) item.appendChild(el('span', 'service-checks', names.length + (names.length === 1 ? ' check' : ' checks') + ' up'));
              if (titleLines.length > 0) item.title = titleLines.join('\n');
              list.appendChild(item);
            });
          }

          function drawTotals(totals) {
            const source = totals && typeof totals === 'object' ? totals : {};
            ['accepted', 'pending', 'processing', 'retrying', 'sent', 'delivered', 'failed'].forEach(function (key) {
              const node = byId('total-' + key);
              node.textContent = formatCount(source[key]);
              node.dataset.value = isNumber(source[key]) ? String(source[key]) : '';
            });
          }

          function niceStep(raw) {
            if (raw <= 1) return 1;
            const power = Math.pow(10, Math.floor(Math.log10(raw)));
            const fraction = raw / power;
            return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * power;
          }

          // Stacked bars (sent, then failed on top), one per minute, with a y axis of counts and an x axis of local times.
          function drawThroughput(points) {
            const plot = byId('throughput-plot');
            const desc = byId('throughput-chart-desc');
            plot.replaceChildren();
            const data = Array.isArray(points) ? points : [];
            const width = 640, height = 230, left = 46, right = 10, top = 12, bottom = 40;
            const plotWidth = width - left - right, plotHeight = height - top - bottom;
            const counts = data.map(function (p) { return { sent: isNumber(p.sent) ? p.sent : 0, failed: isNumber(p.failed) ? p.failed : 0 }; });
            const peak = counts.reduce(function (m, c) { return Math.max(m, c.sent + c.failed); }, 0);
            const step = niceStep(peak / 4);
            const ceiling = Math.max(step, Math.ceil(peak / step) * step);
            const y = function (value) { return top + plotHeight - (value / ceiling) * plotHeight; };
            for (let tick = 0; tick <= ceiling + 1e-9; tick += step) {
              plot.appendChild(svg('line', { 'class': tick === 0 ? 'axis-line' : 'grid-line', x1: left, x2: width - right, y1: y(tick), y2: y(tick) }));
              plot.appendChild(svg('text', { x: left - 6, y: y(tick) + 4, 'text-anchor': 'end' }, tick.toLocaleString('en-US')));
            }
            plot.appendChild(svg('text', { 'class': 'axis-title', x: 12, y: top + plotHeight / 2, 'text-anchor': 'middle', transform: 'rotate(-90 12 ' + (top + plotHeight / 2) + ')' }, 'per minute'));
            plot.appendChild(svg('text', { 'class': 'axis-title', x: left + plotWidth / 2, y: height - 4, 'text-anchor': 'middle' }, 'time (local)'));
            if (data.length === 0) {
              plot.appendChild(svg('text', { 'class': 'empty', x: left + plotWidth / 2, y: top + plotHeight / 2, 'text-anchor': 'middle' }, 'No throughput data.'));
              desc.textContent = 'No throughput data.';
              return;
            }
            const slot = plotWidth / data.length;
            const barWidth = Math.max(1, slot * 0.7);
            let totalSent = 0, totalFailed = 0;
            data.forEach(function (point, index) {
              const c = counts[index];
              totalSent += c.sent;
              totalFailed += c.failed;
              const date = parseTime(point.minute);
              const label = date ? clock(date, false) : String(point.minute);
              const x = left + index * slot + (slot - barWidth) / 2;
              const group = svg('g', { 'class': 'minute', 'data-minute': point.minute, 'data-sent': c.sent, 'data-failed': c.failed });
              group.appendChild(svg('title', {}, label + ': ' + c.sent + ' sent, ' + c.failed + ' failed'));
              group.appendChild(svg('rect', { 'class': 'bar-sent', x: x, width: barWidth, y: y(c.sent), height: Math.max(0, y(0) - y(c.sent)) }));
              group.appendChild(svg('rect', { 'class': 'bar-failed', x: x, width: barWidth, y: y(c.sent + c.failed), height: Math.max(0, y(c.sent) - y(c.sent + c.failed)) }));
              plot.appendChild(group);
              if ((data.length - 1 - index) % 5 === 0) {
                plot.appendChild(svg('line', { 'class': 'axis-line', x1: x + barWidth / 2, x2: x + barWidth / 2, y1: y(0), y2: y(0) + 4 }));
                plot.appendChild(svg('text', { x: x + barWidth / 2, y: y(0) + 16, 'text-anchor': 'middle' }, label));
              }
            });
            desc.textContent = 'Over the last ' + data.length + ' minutes: ' + totalSent + ' sent, ' + totalFailed + ' failed; the busiest minute had ' + peak + '.';
          }

          function drawJobStates(rows) {
            const tbody = byId('job-states').tBodies[0];
            tbody.replaceChildren();
            if (!Array.isArray(rows) || rows.length === 0) {
              emptyRow(tbody, 4, 'No jobs.');
              return;
            }
            rows.forEach(function (job) {
              const row = el('tr');
              row.dataset.queue = String(job.queue);
              row.dataset.state = String(job.state);
              row.appendChild(el('td', null, job.queue));
              row.appendChild(el('td', null, job.state));
              row.appendChild(el('td', 'num', formatCount(job.count)));
              row.appendChild(el('td', 'num', formatAge(job.oldest_age_seconds)));
              tbody.appendChild(row);
            });
          }

          function drawQueues(queues) {
            const tbody = byId('queues').tBodies[0];
            tbody.replaceChildren();
            if (!Array.isArray(queues) || queues.length === 0) {
              emptyRow(tbody, 3, 'No queues reported.');
              return;
            }
            queues.forEach(function (queue) {
              const row = el('tr', queue.consumers === 0 ? 'warn' : null);
              row.dataset.queue = String(queue.name);
              row.appendChild(el('td', null, queue.name));
              row.appendChild(el('td', 'num', formatCount(queue.messages)));
              const consumers = el('td', 'num', formatCount(queue.consumers));
              if (queue.consumers === 0) consumers.title = 'No consumer is attached to this queue.';
              row.appendChild(consumers);
              tbody.appendChild(row);
            });
          }

          function drawBreakers(breakers) {
            const list = byId('breakers');
            list.replaceChildren();
            if (!Array.isArray(breakers) || breakers.length === 0) {
              list.appendChild(el('li', 'muted', 'No circuit breakers reported.'));
              return;
            }
            breakers.forEach(function (breaker) {
              const item = el('li', 'breaker');
              item.setAttribute('data-state', String(breaker.state));
              item.dataset.service = String(breaker.service);
              item.dataset.name = String(breaker.name);
              item.appendChild(el('span', 'from', breaker.service + ' →'));
              item.appendChild(el('span', null, breaker.name));
              item.appendChild(el('span', 'pill', String(breaker.state || 'unknown').replace('_', '-')));
              list.appendChild(item);
            });
          }

          function drawBacklog(outbox, deadLetters) {
            const box = outbox && typeof outbox === 'object' ? outbox : {};
            byId('outbox-unpublished').textContent = formatCount(box.unpublished);
            byId('outbox-unpublished').dataset.value = isNumber(box.unpublished) ? String(box.unpublished) : '';
            byId('outbox-oldest').textContent = formatAge(box.oldest_age_seconds);
            byId('dead-letter-count').textContent = formatCount(deadLetters);
          }

          function markUpdated(generatedAt) {
            const date = parseTime(generatedAt) || new Date();
            const node = byId('updated-at');
            node.dateTime = date.toISOString();
            node.textContent = clock(date, true);
            node.title = date.toString();
          }

          async function refreshOverview() {
            const seq = ++state.overviewSeq;
            const result = await api('/api/v1/admin/overview/');
            if (!result.ok) throw new Error('Overview failed: ' + describeFailure(result));
            if (seq < state.overviewShown) return;
            state.overviewShown = seq;
            const data = result.body.data || {};
            renderIfChanged('services', data.services, drawServices);
            drawTotals(data.totals);
            renderIfChanged('throughput', data.throughput, drawThroughput);
            renderIfChanged('job_states', data.job_states, drawJobStates);
            renderIfChanged('queues', data.queues, drawQueues);
            renderIfChanged('breakers', data.breakers, drawBreakers);
            drawBacklog(data.outbox, data.dead_letters);
            markUpdated(data.generated_at);
            state.lastSuccess = Date.now();
            setConnection('live', 'Live');
            showBanner('');
          }

          function drawDeadLetters(page) {
            const tbody = byId('dead-letters').tBodies[0];
            tbody.replaceChildren();
            const rows = page.rows;
            if (rows.length === 0) {
              emptyRow(tbody, 7, 'No dead letters.');
            }
            rows.forEach(function (letter) {
              const id = String(letter.notification_id);
              const row = el('tr');
              row.dataset.notificationId = id;
              const idCell = el('td', 'mono', id);
              if (letter.request_id) idCell.title = 'Request ' + letter.request_id;
              row.appendChild(idCell);
              row.appendChild(el('td', null, letter.channel));
              row.appendChild(el('td', 'mono', letter.user_id));
              row.appendChild(el('td', 'num', formatCount(letter.attempts)));
              row.appendChild(el('td', 'nowrap', formatDateTime(letter.failed_at)));
              const error = el('td', letter.last_error ? 'error-text' : 'muted', letter.last_error || DASH);
              if (letter.last_error) error.title = String(letter.last_error);
              row.appendChild(error);
              const action = el('td');
              const button = el('button', 'replay', state.pendingReplays.has(id) ? 'Replaying…' : 'Replay');
              button.type = 'button';
              button.dataset.notificationId = id;
              button.disabled = state.pendingReplays.has(id);
              button.setAttribute('aria-label', 'Replay notification ' + id);
              action.appendChild(button);
              row.appendChild(action);
              tbody.appendChild(row);
            });
            const meta = page.meta;
            byId('dead-letters-page').textContent = 'Page ' + meta.page + ' of ' + meta.total_pages + ' · ' + formatCount(meta.total) + (meta.total === 1 ? ' dead letter' : ' dead letters');
            byId('dead-letters-prev').disabled = !meta.has_previous;
            byId('dead-letters-next').disabled = !meta.has_next;
          }

          async function refreshDeadLetters() {
            const seq = ++state.deadSeq;
            const page = state.deadPage;
            const result = await api('/api/v1/admin/dead-letters/?page=' + page + '&limit=' + DEAD_LETTERS_LIMIT);
            if (!result.ok) throw new Error('Dead letters failed: ' + describeFailure(result));
            if (seq < state.deadShown) return;
            state.deadShown = seq;
            const rows = Array.isArray(result.body.data) ? result.body.data : [];
            const raw = result.body.meta || {};
            const meta = {
              page: isNumber(raw.page) ? raw.page : page,
              total: isNumber(raw.total) ? raw.total : rows.length,
              total_pages: isNumber(raw.total_pages) ? raw.total_pages : 1,
              has_next: raw.has_next === true,
              has_previous: raw.has_previous === true
            };
            if (rows.length === 0 && page > 1 && meta.total > 0) {
              state.deadPage = Math.max(1, Math.min(page - 1, meta.total_pages));
              return refreshDeadLetters();
            }
            renderIfChanged('dead_letters', { rows: rows, meta: meta, pending: Array.from(state.pendingReplays) }, drawDeadLetters);
          }

          function reportError(failure) {
            if (failure instanceof Unauthorized || state.redirecting) return;
            showBanner(failure && failure.message ? failure.message : String(failure));
          }

          function poll(name, refresh, every) {
            const run = async function () {
              try {
                await refresh();
              } catch (failure) {
                if (failure instanceof TypeError) {
                  setConnection('offline', 'Offline, retrying');
                  reportError(new Error('Cannot reach the admin service; retrying.'));
                } else {
                  reportError(failure);
                }
              }
              if (!state.redirecting) state.timers[name] = setTimeout(run, every);
            };
            run();
          }

          function setReplayStatus(kind, text) {
            const node = byId('replay-status');
            node.dataset.kind = kind;
            node.textContent = text;
          }

          async function replay(id) {
            if (state.pendingReplays.has(id)) return;
            state.pendingReplays.add(id);
            setReplayStatus('info', 'Replaying ' + id + '…');
            try {
              const result = await api('/api/v1/admin/dead-letters/' + encodeURIComponent(id) + '/replay/', 'POST');
              if (result.ok) {
                setReplayStatus('ok', 'Replayed ' + id + '.');
              } else if (result.status === 409) {
                setReplayStatus('error', 'Not replayed: ' + id + ' is no longer failed. ' + describeFailure(result));
              } else {
                setReplayStatus('error', 'Replay of ' + id + ' failed: ' + describeFailure(result));
              }
            } catch (failure) {
              if (failure instanceof Unauthorized) return;
              setReplayStatus('error', 'Replay of ' + id + ' failed: ' + (failure && failure.message ? failure.message : String(failure)));
            } finally {
              state.pendingReplays.delete(id);
              state.rendered.dead_letters = null;
            }
            await Promise.all([refreshDeadLetters().catch(reportError), refreshOverview().catch(reportError)]);
          }

          byId('dead-letters').addEventListener('click', function (event) {
            const button = event.target.closest('button.replay');
            if (!button || button.disabled) return;
            button.disabled = true;
            button.textContent = 'Replaying…';
            replay(button.dataset.notificationId);
          });

          byId('dead-letters-prev').addEventListener('click', function () {
            if (state.deadPage > 1) state.deadPage -= 1;
            refreshDeadLetters().catch(reportError);
          });

          byId('dead-letters-next').addEventListener('click', function () {
            state.deadPage += 1;
            refreshDeadLetters().catch(reportError);
          });

          byId('logout').addEventListener('click', async function () {
            const button = byId('logout');
            button.disabled = true;
            try {
              await api('/api/v1/admin/logout/', 'POST');
            } catch (ignored) {
              // Leaving anyway: the login page shows whether the session is still valid.
            }
            if (!state.redirecting) {
              state.redirecting = true;
              window.location.replace('/admin/login');
            }
          });

          setInterval(function () {
            if (state.redirecting || state.lastSuccess === 0) return;
            if (Date.now() - state.lastSuccess > STALE_AFTER_MS && byId('connection').dataset.state === 'live') {
              setConnection('stale', 'Stale');
            }
          }, 1000);

          poll('overview', refreshOverview, OVERVIEW_EVERY_MS);
          poll('deadLetters', refreshDeadLetters, DEAD_LETTERS_EVERY_MS);
        })();
        </script>
        </body>
        </html>
        """#

    /// The CSS both pages share: system fonts, a light theme.
    private static let baseStyles = #"""
        :root {
          color-scheme: light;
          --bg: #f4f6f8; --bg-soft: #f8f9fb; --card: #ffffff; --text: #1d2733; --muted: #5b6675;
          --border: #e1e5ea; --border-strong: #c3cad3; --accent: #2457c5; --accent-dark: #1b449c;
          --ok: #17753a; --ok-bg: #dcf5e3; --warn: #8a5a00; --warn-bg: #fff3d1;
          --bad: #b42318; --bad-bg: #fde6e3; --off: #4b5563; --off-bg: #e8eaee;
        }
        *, *::before, *::after { box-sizing: border-box; }
        html { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", "Liberation Sans", sans-serif; font-size: 15px; line-height: 1.45; color: var(--text); background: var(--bg); }
        body { margin: 0; }
        .card { background: var(--card); border: 1px solid var(--border); border-radius: 10px; padding: 1rem 1.15rem; box-shadow: 0 1px 2px rgba(16, 24, 40, 0.04); }
        button { font: inherit; cursor: pointer; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: #fff; padding: 0.4rem 0.9rem; font-weight: 600; }
        button:hover { background: var(--accent-dark); }
        button.secondary { background: #fff; color: var(--text); border-color: var(--border-strong); font-weight: 500; }
        button.secondary:hover { background: var(--bg-soft); }
        button:disabled { opacity: 0.55; cursor: default; }
        :focus-visible { outline: 3px solid #7aa2f7; outline-offset: 2px; }
        [hidden] { display: none !important; }
        .visually-hidden { position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden; clip: rect(0 0 0 0); border: 0; white-space: nowrap; }
        """#

    /// Escapes text for HTML element content and quoted attribute values.
    static func escapeHTML(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }
}
