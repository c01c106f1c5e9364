// The fleet UI's script: reads the cluster state view every 2 s and draws it as a graph, a
// table and a timeline with one selection shared between graph and table, and takes
// operators' actions through preflight, confirmation and dispatch. Plain JavaScript, no
// framework and no build step; data reaches the page only as text (textContent and
// attributes), never as markup.
'use strict';

(() => {
  const REFRESH_MS = 2000;
  const ACTION_BUDGET_MS = 5000;
  const AUDIT_LIMIT = 20;
  const TOKEN_KEY = 'francis.fleet.token';
  const API_VERSION = '1.0';
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const GRAPH = { width: 460, height: 260, radius: 28 };

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $('status'),
    answered: $('ctx-answered'),
    profile: $('ctx-profile'),
    caller: $('ctx-caller'),
    updated: $('ctx-updated'),
    tokenForm: $('token-form'),
    token: $('token'),
    tokenForget: $('token-forget'),
    graph: $('graph'),
    edges: document.querySelector('#graph .edges'),
    nodes: document.querySelector('#graph .nodes'),
    tbody: document.querySelector('#nodes tbody'),
    selection: $('selection'),
    drain: $('action-drain'),
    resume: $('action-resume'),
    logForm: $('loglevel-form'),
    logFilter: $('log-filter'),
    logLevel: $('action-loglevel'),
    haltForm: $('halt-form'),
    haltType: $('halt-type'),
    haltButton: $('action-halt-type'),
    lastAction: $('last-action'),
    timeline: $('timeline'),
    dialog: $('dialog'),
    dialogTitle: $('dialog-title'),
    dialogSummary: $('dialog-summary'),
    decisions: $('dialog-decisions'),
    results: $('dialog-results'),
    cancel: $('dialog-cancel'),
    confirm: $('dialog-confirm'),
  };
  const reducedMotion = window.matchMedia('(prefers-reduced-motion: reduce)');

  let state = null;
  let auditRecords = [];
  let selectedId = null;
  let refreshTimer = null;
  let timelineKey = null;
  let typesKey = null;
  let current = null; // the action the dialog shows: {request, opener, phase}
  const rows = new Map();
  const graphNodes = new Map();
  const graphEdges = new Map();

  // ---- small helpers ------------------------------------------------------------------

  /** An HTML element with attributes and children (strings become text nodes). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  }

  /** An SVG element with attributes and children. */
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined && value !== false) {
        node.setAttribute(name, String(value));
      }
    }
  }

  /** Set text only when it changed, so a refresh that changes nothing touches nothing. */
  function setText(node, text) {
    const value = String(text);
    if (node.textContent !== value) node.textContent = value;
  }

  function setAttr(node, name, value) {
    const text = String(value);
    if (node.getAttribute(name) !== text) node.setAttribute(name, text);
  }

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many}`;
  }

  /** The end of an ID, which tells hosts apart (host IDs are UUIDv7: they start alike). */
  function shortId(id) {
    return id.length > 12 ? `…${id.slice(-8)}` : id;
  }

  function clock(ms) {
    if (typeof ms !== 'number') return '—';
    return new Date(ms).toLocaleTimeString([], { hour12: false });
  }

  // An ISO time for a <time> element; empty for a time the server sent that is not one (a bad
  // value must not stop the page).
  function isoTime(ms) {
    const date = new Date(ms);
    return Number.isFinite(date.getTime()) ? date.toISOString() : '';
  }

  function age(ms) {
    if (typeof ms !== 'number') return '—';
    if (ms < 1000) return `${ms} ms ago`;
    if (ms < 60000) return `${(ms / 1000).toFixed(1)} s ago`;
    if (ms < 3600000) return `${Math.round(ms / 60000)} min ago`;
    return `${(ms / 3600000).toFixed(1)} h ago`;
  }

  /** A fresh request ID (random; crypto.randomUUID needs a secure context, this does not). */
  function requestId() {
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return `ui-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
  }

  // ---- the API ----------------------------------------------------------------------------

  function token() {
    try {
      return window.sessionStorage.getItem(TOKEN_KEY) || '';
    } catch {
      return '';
    }
  }

  /** Call the API: `{status, ok, data}`, data being the JSON answer (also of errors). */
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    const bearer = token();
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    const init = { method, headers, cache: 'no-store', credentials: 'same-origin' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    return { status: response.status, ok: response.ok, data };
  }

  /** What a failed answer says, for people. */
  function problem(answer) {
    const said = answer.data && typeof answer.data.error === 'string' ? answer.data.error : '';
    const code = answer.data && typeof answer.data.code === 'string' ? ` (${answer.data.code})` : '';
    if (answer.status === 401) {
      return `This server needs a token: enter it in the Token field. ${said}`;
    }
    return `HTTP ${answer.status}${code}${said ? `: ${said}` : ''}`;
  }

  function setStatus(text) {
    setText(ui.status, text);
  }

  // ---- refreshing ------------------------------------------------------------------------

  async function refresh() {
    window.clearTimeout(refreshTimer);
    try {
      const [answer, audit] = await Promise.all([
        api('GET', '/api/cluster/state'),
        // The audit trail fills the timeline with the operators' actions; a node that keeps
        // none (a worker of the remote topology) just has none to show.
        api('GET', `/api/cluster/audit?limit=${AUDIT_LIMIT}`).catch(() => null),
      ]);
      if (answer.ok && answer.data && Array.isArray(answer.data.nodes)) {
        state = answer.data;
        auditRecords = audit && audit.ok && audit.data && Array.isArray(audit.data.records) ? audit.data.records : [];
        render();
        setStatus('');
      } else {
        setStatus(`Cannot read the cluster state. ${problem(answer)}`);
      }
    } catch (error) {
      setStatus(`Cannot reach the server (${error.message}); trying again every ${REFRESH_MS / 1000} s.`);
    } finally {
      refreshTimer = window.setTimeout(refresh, REFRESH_MS);
    }
  }

  function render() {
    if (selectedId !== null && !state.nodes.some((n) => n.id === selectedId)) {
      selectedId = null;
    }
    renderContext();
    renderGraph();
    renderTable();
    renderActions();
    renderTimeline();
  }

  function nodeRef(ref) {
    if (!ref) return '—';
    return `${ref.kind} ${shortId(ref.id)}`;
  }

  function renderContext() {
    const ctx = state.context || {};
    const by = ctx.answered_by;
    if (by) {
      const addr = el('span', { class: 'addr' }, ` ${by.address}`);
      const label = `${nodeRef(by)}`;
      if (ui.answered.dataset.key !== `${by.kind}|${by.id}|${by.address}`) {
        ui.answered.dataset.key = `${by.kind}|${by.id}|${by.address}`;
        ui.answered.replaceChildren(label, addr);
        ui.answered.title = by.id;
      }
    }
    setText(ui.profile, ctx.profile || '—');
    const caller = ctx.caller;
    setText(ui.caller, caller ? `${caller.principal} (${caller.role})` : 'none');
    setText(ui.updated, clock(state.generated_at_ms));
  }

  // ---- selection -----------------------------------------------------------------------------

  function select(id, from) {
    selectedId = id;
    renderGraph();
    renderTable();
    renderActions();
    const row = rows.get(id);
    if (row && from === 'graph') {
      row.scrollIntoView({ block: 'nearest', behavior: reducedMotion.matches ? 'auto' : 'smooth' });
    }
  }

  function selectedNode() {
    return state ? state.nodes.find((n) => n.id === selectedId) || null : null;
  }

  function onSelectKey(event, id, from) {
    if (event.key === 'Enter' || event.key === ' ' || event.key === 'Spacebar') {
      event.preventDefault();
      select(id, from);
    }
  }

  // ---- the graph -----------------------------------------------------------------------------

  /** Where each node goes: on an ellipse, in the state's order (runtimes first, then hosts). */
  function layout(nodes) {
    const cx = GRAPH.width / 2;
    const cy = GRAPH.height / 2 - 6;
    const positions = new Map();
    if (nodes.length === 1) {
      positions.set(nodes[0].id, { x: cx, y: cy });
      return positions;
    }
    const rx = GRAPH.width / 2 - 80;
    const ry = GRAPH.height / 2 - 66;
    const start = nodes.length === 2 ? Math.PI : -Math.PI / 2;
    nodes.forEach((node, i) => {
      const angle = start + (2 * Math.PI * i) / nodes.length;
      positions.set(node.id, {
        x: Math.round(cx + rx * Math.cos(angle)),
        y: Math.round(cy + ry * Math.sin(angle)),
      });
    });
    return positions;
  }

  function nodeLabel(node) {
    const parts = [`${node.kind} ${node.id}`, node.lifecycle];
    if (node.draining) parts.push('draining');
    if (node.is_self) parts.push('answers this page');
    parts.push(plural(node.actors_total, 'actor', 'actors'));
    return parts.join(', ');
  }

  function makeGraphNode(node) {
    const shape = node.kind === 'runtime'
      ? svg('rect', { class: 'body', x: -GRAPH.radius, y: -GRAPH.radius, width: GRAPH.radius * 2, height: GRAPH.radius * 2, rx: 8 })
      : svg('circle', { class: 'body', r: GRAPH.radius });
    const group = svg('g', { tabindex: 0, role: 'button', 'data-node-id': node.id },
      svg('title', {}),
      svg('circle', { class: 'drain-ring', r: GRAPH.radius + 5 }),
      svg('circle', { class: 'ring', r: GRAPH.radius + 10 }),
      svg('circle', { class: 'focus-ring', r: GRAPH.radius + 15 }),
      shape,
      svg('text', { class: 'count', y: 6 }),
      svg('text', { class: 'label', y: GRAPH.radius + 24 }),
      svg('text', { class: 'sub', y: GRAPH.radius + 38 }),
      svg('text', { class: 'badge', y: -GRAPH.radius - 20 }));
    group.addEventListener('click', () => select(node.id, 'graph'));
    group.addEventListener('keydown', (event) => onSelectKey(event, node.id, 'graph'));
    return group;
  }

  function renderGraph() {
    const nodes = state.nodes;
    const positions = layout(nodes);
    const seen = new Set();
    for (const node of nodes) {
      seen.add(node.id);
      let group = graphNodes.get(node.id);
      if (!group) {
        group = makeGraphNode(node);
        graphNodes.set(node.id, group);
        ui.nodes.append(group);
      }
      const at = positions.get(node.id);
      setAttr(group, 'transform', `translate(${at.x} ${at.y})`);
      const classes = ['node', node.kind, node.lifecycle];
      if (node.draining) classes.push('draining');
      if (node.is_self) classes.push('self');
      if (node.id === selectedId) classes.push('selected');
      setAttr(group, 'class', classes.join(' '));
      setAttr(group, 'aria-pressed', node.id === selectedId ? 'true' : 'false');
      setAttr(group, 'aria-label', nodeLabel(node));
      const [title, , , , , count, label, sub, badge] = group.children;
      setText(title, `${node.kind} ${node.id} at ${node.address}`);
      setText(count, node.actors_total);
      setText(label, shortId(node.id));
      setText(sub, `${node.kind}${node.is_self ? ' · this node' : ''} · ${node.lifecycle}`);
      setText(badge, node.draining ? 'draining' : '');
    }
    for (const [id, group] of graphNodes) {
      if (!seen.has(id)) {
        group.remove();
        graphNodes.delete(id);
      }
    }
    renderEdges(positions);
  }

  function renderEdges(positions) {
    const lifecycle = new Map(state.nodes.map((n) => [n.id, n.lifecycle]));
    const seen = new Set();
    for (const edge of state.edges || []) {
      const from = positions.get(edge.from);
      const to = positions.get(edge.to);
      if (!from || !to || edge.from === edge.to) continue;
      const key = `${edge.from}\u0000${edge.to}`;
      seen.add(key);
      let item = graphEdges.get(key);
      if (!item) {
        item = svg('g', {}, svg('line', {}), svg('text', { class: 'edge-label' }), svg('title', {}));
        graphEdges.set(key, item);
        ui.edges.append(item);
      }
      const [line, label, title] = item.children;
      // From rim to rim, not centre to centre.
      const dx = to.x - from.x;
      const dy = to.y - from.y;
      const length = Math.hypot(dx, dy) || 1;
      const r = GRAPH.radius + 4;
      setAttr(line, 'x1', Math.round(from.x + (dx * r) / length));
      setAttr(line, 'y1', Math.round(from.y + (dy * r) / length));
      setAttr(line, 'x2', Math.round(to.x - (dx * r) / length));
      setAttr(line, 'y2', Math.round(to.y - (dy * r) / length));
      const stale = lifecycle.get(edge.to) === 'stale' ? ' stale' : '';
      setAttr(line, 'class', `edge state-${edge.state}${stale}`);
      setAttr(label, 'x', Math.round((from.x + to.x) / 2));
      setAttr(label, 'y', Math.round((from.y + to.y) / 2) - 8);
      const latency = typeof edge.latency_p95_ms === 'number' ? `p95 ${edge.latency_p95_ms.toFixed(1)} ms` : '';
      setText(label, edge.state === 'down' ? 'down' : latency);
      const facts = [`link ${edge.state}`, `${edge.calls} calls`, `${edge.errors} errors`];
      if (edge.last_error) facts.push(`last error: ${edge.last_error}`);
      setText(title, facts.join(', '));
    }
    for (const [key, item] of graphEdges) {
      if (!seen.has(key)) {
        item.remove();
        graphEdges.delete(key);
      }
    }
  }

  // ---- the table -----------------------------------------------------------------------------

  function makeRow(id) {
    const row = el('tr', { tabindex: 0, 'data-node-id': id, 'aria-selected': 'false' });
    const idCell = el('td', { class: 'id' }, el('span', {}), el('span', { class: 'sub-line' }, el('span', {}), el('span', { class: 'self-mark' })));
    const kind = el('td', {});
    const lifecycle = el('td', {}, el('span', { class: 'pill' }));
    const draining = el('td', {});
    const actors = el('td', { class: 'num' }, el('strong', {}), el('span', { class: 'types' }));
    const alarms = el('td', { class: 'num' });
    const heartbeat = el('td', { class: 'num' });
    row.append(idCell, kind, lifecycle, draining, actors, alarms, heartbeat);
    row.addEventListener('click', () => select(id, 'table'));
    row.addEventListener('keydown', (event) => {
      if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
        event.preventDefault();
        const next = event.key === 'ArrowDown' ? row.nextElementSibling : row.previousElementSibling;
        if (next) next.focus();
        return;
      }
      onSelectKey(event, id, 'table');
    });
    return row;
  }

  function fillRow(row, node) {
    const [idCell, kind, lifecycle, draining, actors, alarms, heartbeat] = row.children;
    const [idText, subLine] = idCell.children;
    const [address, selfMark] = subLine.children;
    setText(idText, node.id);
    setText(selfMark, node.is_self ? '(this node)' : '');
    setText(address, node.address);
    setText(kind, node.kind);
    const pill = lifecycle.firstElementChild;
    setText(pill, node.lifecycle);
    setAttr(pill, 'class', `pill ${node.lifecycle}`);
    if (node.draining) {
      if (!draining.firstElementChild) draining.replaceChildren(el('span', { class: 'pill draining' }, 'draining'));
    } else {
      setText(draining, 'no');
    }
    const [total, types] = actors.children;
    setText(total, node.actors_total);
    const perType = Object.entries(node.actors || {})
      .filter(([, n]) => n > 0)
      .map(([type, n]) => `${type} ${n}`)
      .join(' · ');
    setText(types, perType);
    setText(alarms, node.alarms_due);
    setText(heartbeat, node.left_at_ms ? `left ${clock(node.left_at_ms)}` : age(node.heartbeat_age_ms));
    setAttr(row, 'class', node.lifecycle);
    setAttr(row, 'aria-selected', node.id === selectedId ? 'true' : 'false');
    setAttr(row, 'aria-label', nodeLabel(node));
  }

  function renderTable() {
    const seen = new Set();
    state.nodes.forEach((node, index) => {
      seen.add(node.id);
      let row = rows.get(node.id);
      if (!row) {
        row = makeRow(node.id);
        rows.set(node.id, row);
      }
      fillRow(row, node);
      if (ui.tbody.children[index] !== row) {
        ui.tbody.insertBefore(row, ui.tbody.children[index] || null);
      }
    });
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.remove();
        rows.delete(id);
      }
    }
  }

  // ---- the actions panel -----------------------------------------------------------------------

  function renderActions() {
    const node = selectedNode();
    const host = node && node.kind === 'host' ? node : null;
    if (!node) {
      setText(ui.selection, 'No node selected: select a host in the graph or the table.');
    } else if (!host) {
      setText(ui.selection, `Selected: runtime ${node.id}. Drain, resume and log levels act on hosts: select a host.`);
    } else {
      const draining = host.draining ? ', draining' : '';
      setText(ui.selection, `Selected: host ${host.id} (${host.lifecycle}${draining}, ${plural(host.actors_total, 'actor', 'actors')}).`);
    }
    ui.drain.disabled = !host;
    ui.resume.disabled = !host;
    ui.logLevel.disabled = !host;

    const types = new Set();
    for (const n of state.nodes) for (const type of Object.keys(n.actors || {})) types.add(type);
    const sorted = Array.from(types).sort();
    const key = sorted.join('\u0000');
    if (key !== typesKey) {
      typesKey = key;
      const keep = ui.haltType.value;
      ui.haltType.replaceChildren(...sorted.map((type) => el('option', { value: type }, type)));
      if (sorted.includes(keep)) ui.haltType.value = keep;
    }
    ui.haltType.disabled = sorted.length === 0;
    ui.haltButton.disabled = sorted.length === 0;
  }

  // ---- the timeline ---------------------------------------------------------------------------

  const KINDS = {
    host_joined: 'Host joined',
    host_left: 'Host left',
    host_declared_dead: 'Host declared dead',
    placement_taken_over: 'Placement taken over',
    alarm_dropped: 'Alarm dropped',
    admin_action: 'Action',
  };

  function auditLine(auditId) {
    return el('span', { class: 'audit' }, 'audit ', el('code', { class: 'audit-id' }, auditId));
  }

  /** The state's events and the audit trail's actions, newest first, each action once. */
  function timelineEvents() {
    const events = (state.timeline || []).slice();
    const known = new Set(events.map((e) => e.audit_id).filter(Boolean));
    for (const record of auditRecords) {
      if (!record || known.has(record.audit_id)) continue;
      const outcome = record.result === 'ok' ? 'done' : record.result;
      const error = record.error ? `: ${record.error}` : '';
      events.push({
        at_ms: record.started_ms,
        kind: 'admin_action',
        subject: `${record.action} ${record.target}`,
        detail: `${outcome}${error}, by ${record.principal}`,
        audit_id: record.audit_id,
      });
    }
    return events.sort((a, b) => b.at_ms - a.at_ms);
  }

  function renderTimeline() {
    const events = timelineEvents();
    const key = JSON.stringify(events);
    if (key === timelineKey) return;
    timelineKey = key;
    if (events.length === 0) {
      ui.timeline.replaceChildren(el('li', { class: 'empty' }, 'Nothing has happened yet.'));
      return;
    }
    ui.timeline.replaceChildren(...events.map((event) => el('li', { 'data-kind': event.kind },
      el('time', { datetime: isoTime(event.at_ms) }, clock(event.at_ms)),
      el('span', { class: 'kind' }, KINDS[event.kind] || event.kind),
      el('span', { class: 'what' },
        el('span', { class: 'subject' }, event.subject),
        event.detail ? el('span', { class: 'detail' }, ` — ${event.detail}`) : null,
        event.audit_id ? auditLine(event.audit_id) : null))));
  }

  // ---- actions: preflight, confirm, dispatch ----------------------------------------------------

  const VERBS = {
    drain_host: 'will move',
    halt_type: 'will stop',
    halt_actor: 'will stop',
  };

  function describeDecision(decision, actionType) {
    const allowed = decision.allowed === true;
    const item = el('li', { class: allowed ? 'allowed' : 'denied', 'data-target': decision.target },
      el('span', { class: 'verdict' }, allowed ? 'Allowed' : 'Denied'), ` on ${decision.target}`);
    if (decision.blast_radius && typeof decision.blast_radius.actors === 'number') {
      const n = decision.blast_radius.actors;
      const verb = VERBS[actionType] || 'will be touched';
      item.append(el('span', { class: 'blast', 'data-blast-radius': n }, `${plural(n, 'actor', 'actors')} ${verb}`));
    }
    if (!allowed) {
      if (decision.denial_code) item.append(el('span', { class: 'reason' }, el('code', { class: 'code' }, decision.denial_code), decision.denial_reason ? `: ${decision.denial_reason}` : ''));
      else if (decision.denial_reason) item.append(el('span', { class: 'reason' }, decision.denial_reason));
      if (decision.remediation_hint) item.append(el('span', { class: 'hint' }, `What to do: ${decision.remediation_hint}`));
    }
    return item;
  }

  function describeResult(result) {
    const ok = result.ok === true;
    const item = el('li', { class: ok ? 'ok' : 'failed', 'data-target': result.target },
      el('span', { class: 'verdict' }, ok ? 'Done' : `Not done (${result.result || 'failed'})`), ` on ${result.target}`);
    if (result.audit_id) item.append(auditLine(result.audit_id));
    if (result.denial_code || result.denial_reason) {
      item.append(el('span', { class: 'reason' },
        result.denial_code ? el('code', { class: 'code' }, result.denial_code) : '',
        result.denial_reason ? `${result.denial_code ? ': ' : ''}${result.denial_reason}` : ''));
    }
    if (result.detail && typeof result.detail === 'object') {
      const facts = Object.entries(result.detail).map(([k, v]) => `${k.replace(/_/g, ' ')}: ${typeof v === 'object' ? JSON.stringify(v) : v}`);
      if (facts.length) item.append(el('span', { class: 'hint' }, facts.join(', ')));
    }
    return item;
  }

  function summary(preflight) {
    const who = preflight.acting_on ? `${nodeRef(preflight.acting_on)} at ${preflight.acting_on.address}` : 'this server';
    const verdict = preflight.allowed
      ? 'Preflight allows it. Nothing has run yet: confirm to run it.'
      : `Preflight denies it${preflight.denial_code ? ` (${preflight.denial_code})` : ''}: nothing will run.`;
    return `Acting on ${who} as ${preflight.principal || 'unknown'}. ${verdict}`;
  }

  function focusables() {
    return Array.from(ui.dialog.querySelectorAll('button, [href], input, select, textarea, [tabindex]:not([tabindex="-1"])'))
      .filter((node) => !node.disabled && !node.hidden && node.getClientRects().length > 0);
  }

  function openDialog(title, opener) {
    setText(ui.dialogTitle, title);
    setText(ui.dialogSummary, 'Running preflight…');
    ui.dialogSummary.classList.add('busy');
    ui.decisions.replaceChildren();
    ui.results.replaceChildren();
    setText(ui.cancel, 'Cancel');
    ui.confirm.hidden = false;
    ui.confirm.disabled = true;
    ui.dialog.dataset.phase = 'preflight';
    if (!ui.dialog.open) ui.dialog.showModal();
    ui.cancel.focus();
    current = { opener, phase: 'preflight' };
  }

  function closeDialog() {
    if (ui.dialog.open) ui.dialog.close();
  }

  async function startAction(title, actionType, targets, payload, opener) {
    const request = {
      api_version: API_VERSION,
      request_id: requestId(),
      action_type: actionType,
      targets,
      budget_ms: ACTION_BUDGET_MS,
    };
    if (payload !== undefined) request.payload = payload;
    openDialog(title, opener);
    const mine = current;
    mine.request = request;
    let answer;
    try {
      answer = await api('POST', '/api/cluster/actions/preflight', request);
    } catch (error) {
      answer = { status: 0, ok: false, data: { error: error.message } };
    }
    if (current !== mine || !ui.dialog.open) return;
    ui.dialogSummary.classList.remove('busy');
    const preflight = answer.data;
    if (!preflight || !Array.isArray(preflight.decisions)) {
      setText(ui.dialogSummary, `Preflight failed: ${problem(answer)}`);
      ui.dialog.dataset.phase = 'error';
      return;
    }
    setText(ui.dialogSummary, summary(preflight));
    ui.decisions.replaceChildren(...preflight.decisions.map((d) => describeDecision(d, actionType)));
    ui.dialog.dataset.phase = preflight.allowed ? 'confirm' : 'denied';
    ui.confirm.disabled = !preflight.allowed;
    mine.phase = ui.dialog.dataset.phase;
    (preflight.allowed ? ui.confirm : ui.cancel).focus();
  }

  async function confirmAction() {
    const mine = current;
    if (!mine || mine.phase !== 'confirm') return;
    mine.phase = 'dispatch';
    ui.dialog.dataset.phase = 'dispatch';
    ui.confirm.disabled = true;
    setText(ui.dialogSummary, 'Running…');
    ui.dialogSummary.classList.add('busy');
    ui.cancel.focus();
    let answer;
    try {
      answer = await api('POST', '/api/cluster/actions/dispatch', mine.request);
    } catch (error) {
      answer = { status: 0, ok: false, data: { error: error.message } };
    }
    const dispatched = answer.data;
    const results = dispatched && Array.isArray(dispatched.results) ? dispatched.results : null;
    showLastAction(mine.request, dispatched, results, answer);
    refresh();
    if (current !== mine || !ui.dialog.open) return;
    ui.dialogSummary.classList.remove('busy');
    mine.phase = 'done';
    ui.dialog.dataset.phase = 'done';
    ui.confirm.hidden = true;
    setText(ui.cancel, 'Close');
    if (!results) {
      setText(ui.dialogSummary, `Dispatch failed: ${problem(answer)}`);
    } else if (results.length === 0 && dispatched.preflight) {
      // Denied on dispatch (the cluster changed since preflight): say why.
      setText(ui.dialogSummary, summary(dispatched.preflight));
      ui.decisions.replaceChildren(...dispatched.preflight.decisions.map((d) => describeDecision(d, mine.request.action_type)));
    } else {
      setText(ui.dialogSummary, dispatched.ok ? 'Done. Each target has its audit record:' : 'It did not succeed everywhere. Each target has its audit record:');
      ui.results.replaceChildren(el('h3', {}, 'Result'), el('ul', {}, ...results.map(describeResult)));
    }
    ui.cancel.focus();
  }

  function showLastAction(request, dispatched, results, answer) {
    const what = `${request.action_type} on ${request.targets.join(', ')}`;
    if (!results) {
      ui.lastAction.classList.add('failed');
      ui.lastAction.replaceChildren(`${what}: ${problem(answer)}`);
      return;
    }
    const ok = dispatched.ok === true && results.length > 0;
    ui.lastAction.classList.toggle('failed', !ok);
    const parts = [el('strong', {}, ok ? 'Done: ' : 'Not done: '), what];
    if (results.length === 0) parts.push(` (denied: ${dispatched.preflight && dispatched.preflight.denial_code || 'unknown'})`);
    for (const result of results) {
      if (result.audit_id) parts.push(auditLine(result.audit_id));
    }
    ui.lastAction.replaceChildren(...parts);
  }

  // ---- wiring -------------------------------------------------------------------------------------

  ui.drain.addEventListener('click', () => {
    const node = selectedNode();
    if (node) startAction(`Drain host ${shortId(node.id)}?`, 'drain_host', [node.id], undefined, ui.drain);
  });
  ui.resume.addEventListener('click', () => {
    const node = selectedNode();
    if (node) startAction(`Resume host ${shortId(node.id)}?`, 'resume_host', [node.id], undefined, ui.resume);
  });
  ui.logForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const node = selectedNode();
    const filter = ui.logFilter.value.trim();
    if (node && filter) {
      startAction(`Set the log filter of host ${shortId(node.id)} to "${filter}"?`, 'set_log_level', [node.id], { filter }, ui.logLevel);
    } else if (!filter) {
      ui.logFilter.focus();
    }
  });
  ui.haltForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const type = ui.haltType.value;
    if (type) startAction(`Halt every ${type} actor?`, 'halt_type', [type], undefined, ui.haltButton);
  });
  ui.confirm.addEventListener('click', confirmAction);
  ui.cancel.addEventListener('click', closeDialog);
  ui.dialog.addEventListener('close', () => {
    const opener = current && current.opener;
    current = null;
    if (opener && !opener.disabled) opener.focus();
  });
  ui.dialog.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') {
      event.preventDefault();
      closeDialog();
      return;
    }
    if (event.key !== 'Tab') return;
    // Keep Tab inside the dialog.
    const items = focusables();
    if (items.length === 0) {
      event.preventDefault();
      return;
    }
    const first = items[0];
    const last = items[items.length - 1];
    if (event.shiftKey && (document.activeElement === first || !ui.dialog.contains(document.activeElement))) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (document.activeElement === last || !ui.dialog.contains(document.activeElement))) {
      event.preventDefault();
      first.focus();
    }
  });

  function showTokenState() {
    ui.token.placeholder = token() ? 'set for this tab' : 'only if the server has one';
  }
  ui.tokenForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = ui.token.value.trim();
    try {
      if (value) window.sessionStorage.setItem(TOKEN_KEY, value);
    } catch {
      setStatus('This browser keeps no session storage: the token cannot be kept.');
    }
    ui.token.value = '';
    showTokenState();
    refresh();
  });
  ui.tokenForget.addEventListener('click', () => {
    try {
      window.sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // Nothing kept, nothing to forget.
    }
    ui.token.value = '';
    showTokenState();
    refresh();
  });

  showTokenState();
  refresh();
})();
