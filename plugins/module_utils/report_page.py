# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTML page of the certificate report: one self-contained file.

The data goes in as JSON inside ``<script type="application/json">`` with ``<``, ``>``, ``&``
and the JavaScript line separators escaped as ``\\uXXXX`` (so no subject, SAN or path can end
the tag), and the page's own script renders it with ``textContent`` and DOM calls only, never
``innerHTML``.  A Content-Security-Policy allows exactly the page's own inline script and style
(by hash) and nothing else: no request leaves the page.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import json

try:
    from html import escape as _escape
except ImportError:  # pragma: no cover - Python 2 is not supported
    _escape = None

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.2em 0 .4em}
.muted{color:#666}.row{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
.cards{display:flex;gap:.6em;flex-wrap:wrap}
.card{border:1px solid #ccc;border-radius:6px;padding:.5em .9em;background:#fff;cursor:pointer;min-width:6em}
.card .count{display:block;font-size:1.6em;font-weight:600}
.card.expired .count,.status-expired{color:#a40000}.card.le7 .count,.status-critical{color:#c45100}
.card.le30 .count,.status-warning{color:#8a6d00}.status-ok{color:#2e7d32}
table{border-collapse:collapse;background:#fff}th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}#certs th{cursor:pointer;user-select:none;white-space:nowrap}
#certs th[aria-sort=ascending]::after{content:" \\25B2"}#certs th[aria-sort=descending]::after{content:" \\25BC"}
#certs td.num{text-align:right}#certs td.small{font-size:.85em;color:#444}
tr.status-expired td{background:#fde8e8}tr.status-critical td{background:#fff0e0}tr.status-warning td{background:#fffbe0}
.controls{display:flex;gap:.8em;flex-wrap:wrap;margin:.6em 0}.controls input{min-width:18em}
#hosts tbody tr{cursor:pointer}#hosts tbody tr:hover td{background:#eef}
svg text{font-size:11px;fill:#333}
"""

SCRIPT = r"""
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var rows = data.certificates;
  var meta = document.querySelector('meta[name="certforge-generated-at"]');
  var BUCKETS = ['expired', 'le7', 'le30', 'le90', 'later', 'unknown'];
  var STATUSES = ['expired', 'critical', 'warning', 'ok', 'unknown'];
  var COLORS = {expired: '#a40000', critical: '#e06000', warning: '#d4a800', ok: '#3c8d40', unknown: '#888888'};
  var SVGNS = 'http://www.w3.org/2000/svg';
  var state = {text: '', bucket: '', status: '', host: '', key: 'days_left', dir: 1};

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVGNS, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) { node.textContent = String(text); }
    return node;
  }
  function cn(name) {
    var m = /(?:^|,)\s*CN=((?:\\.|[^,])*)/.exec(name || '');
    return m ? m[1].replace(/\\(.)/g, '$1') : (name || '');
  }
  function locText(loc) {
    if (loc.kind === 'file') { return loc.host + ':' + loc.path; }
    if (loc.kind === 'endpoint') {
      return 'tls ' + loc.host + ':' + loc.port + (loc.sni ? ' (sni ' + loc.sni + ')' : '') +
        (loc.position ? ' chain[' + loc.position + ']' : '');
    }
    if (loc.kind === 'order_store') { return 'order store ' + loc.issuer + '/' + loc.name; }
    if (loc.kind === 'local_ca') {
      return loc.role === 'ca' ? 'local CA certificate' : 'local CA serial ' + loc.serial + ' (' + loc.state + ')';
    }
    return JSON.stringify(loc);
  }
  rows.forEach(function (r) {
    r._loc = r.locations.map(locText);
    r._search = [r.common_name, r.subject, r.issuer, r.serial, r.fingerprint_sha256, r.status,
      r.sans.join(' '), r.hosts.join(' '), r._loc.join(' '), r.problems.join(' ')].join('\n').toLowerCase();
  });

  document.getElementById('as-of').textContent = meta ? meta.getAttribute('content') : '';
  document.getElementById('total').textContent = String(rows.length);

  // counts by days-left bucket: cards that filter the table
  var cards = document.getElementById('buckets');
  BUCKETS.forEach(function (b) {
    var n = data.summary.by_bucket[b] || 0;
    if (b === 'unknown' && !n) { return; }
    var card = el('div', {'class': 'card ' + b, 'data-bucket': b, 'title': 'show only these'});
    card.appendChild(el('span', {'class': 'count', 'data-count': String(n)}, n));
    card.appendChild(el('span', {'class': 'label'}, data.bucket_labels[b]));
    card.addEventListener('click', function () {
      state.bucket = state.bucket === b ? '' : b;
      document.getElementById('bucket-filter').value = state.bucket;
      render();
    });
    cards.appendChild(card);
  });

  // counts by issuer
  var issuers = document.querySelector('#issuers tbody');
  data.summary.by_issuer.forEach(function (entry) {
    var tr = el('tr', {'data-issuer': entry.issuer});
    tr.appendChild(el('td', {'title': entry.issuer}, cn(entry.issuer)));
    tr.appendChild(el('td', {'class': 'num', 'data-count': String(entry.count)}, entry.count));
    issuers.appendChild(tr);
  });

  // expiry timeline: certificates by month of expiry, coloured by the worst status in the month
  (function chart() {
    var months = data.summary.timeline;
    var box = document.getElementById('timeline');
    if (!months.length) { box.appendChild(svg('text', {x: 10, y: 20}, 'no certificates')); return; }
    var worst = {};
    rows.forEach(function (r) {
      if (!r.not_after) { return; }
      var m = r.not_after.slice(0, 7);
      if (worst[m] === undefined || STATUSES.indexOf(r.status) < STATUSES.indexOf(worst[m])) { worst[m] = r.status; }
    });
    var max = Math.max.apply(null, months.map(function (m) { return m.count; }));
    var bar = 34, gap = 10, left = 30, top = 20, height = 150;
    var width = left + months.length * (bar + gap) + gap;
    box.setAttribute('width', String(Math.max(width, 300)));
    box.setAttribute('height', String(top + height + 50));
    box.setAttribute('viewBox', '0 0 ' + Math.max(width, 300) + ' ' + (top + height + 50));
    box.appendChild(svg('line', {x1: left, y1: top + height, x2: width, y2: top + height, stroke: '#999'}));
    box.appendChild(svg('text', {x: 2, y: top + 8}, max));
    months.forEach(function (m, i) {
      var h = Math.max(2, Math.round(height * m.count / max));
      var x = left + gap + i * (bar + gap);
      var g = svg('g', {'class': 'bar', 'data-month': m.month, 'data-count': m.count});
      var rect = svg('rect', {x: x, y: top + height - h, width: bar, height: h, fill: COLORS[worst[m.month] || 'ok']});
      rect.appendChild(svg('title', {}, m.month + ': ' + m.count + ' certificate' + (m.count === 1 ? '' : 's')));
      g.appendChild(rect);
      g.appendChild(svg('text', {x: x + bar / 2, y: top + height - h - 4, 'text-anchor': 'middle', 'class': 'bar-count'}, m.count));
      g.appendChild(svg('text', {x: x + bar / 2, y: top + height + 14, 'text-anchor': 'middle'}, m.month.slice(5)));
      g.appendChild(svg('text', {x: x + bar / 2, y: top + height + 28, 'text-anchor': 'middle', 'class': 'year'}, m.month.slice(0, 4)));
      box.appendChild(g);
    });
  })();

  // per-host view: a host selector and a table of counts per host
  var hostSelect = document.getElementById('host-filter');
  var hostsBody = document.querySelector('#hosts tbody');
  Object.keys(data.summary.by_host).forEach(function (host) {
    var c = data.summary.by_host[host];
    hostSelect.appendChild(el('option', {value: host}, host + ' (' + c.total + ')'));
    var tr = el('tr', {'data-host': host});
    tr.appendChild(el('td', {}, host));
    ['total', 'expired', 'critical', 'warning', 'ok'].forEach(function (k) {
      tr.appendChild(el('td', {'class': 'num ' + k, 'data-count': String(c[k])}, c[k]));
    });
    tr.addEventListener('click', function () { hostSelect.value = host; state.host = host; render(); });
    hostsBody.appendChild(tr);
  });

  // the table
  var COLUMNS = [
    ['common_name', 'Name'], ['sans', 'SANs'], ['issuer', 'Issuer'], ['serial', 'Serial'],
    ['not_after', 'Expires (UTC)'], ['days_left', 'Days left'], ['status', 'Status'],
    ['hosts', 'Hosts'], ['locations', 'Where'], ['sources', 'Sources']
  ];
  var headRow = document.querySelector('#certs thead tr');
  COLUMNS.forEach(function (col) {
    var th = el('th', {'data-key': col[0], 'scope': 'col'}, col[1]);
    th.addEventListener('click', function () {
      if (state.key === col[0]) { state.dir = -state.dir; } else { state.key = col[0]; state.dir = 1; }
      render();
    });
    headRow.appendChild(th);
  });
  function sortValue(r, key) {
    var v = key === 'locations' ? r._loc : r[key];
    if (Array.isArray(v)) { v = v.join(', '); }
    if (key === 'issuer') { v = cn(v); }
    return v;
  }
  function compare(a, b) {
    var x = sortValue(a, state.key), y = sortValue(b, state.key);
    if (x === null || x === undefined || x === '') { return (y === null || y === undefined || y === '') ? 0 : 1; }
    if (y === null || y === undefined || y === '') { return -1; }
    if (typeof x === 'number' && typeof y === 'number') { return (x - y) * state.dir; }
    x = String(x).toLowerCase(); y = String(y).toLowerCase();
    return (x < y ? -1 : x > y ? 1 : 0) * state.dir;
  }
  function visible(r) {
    if (state.bucket && r.bucket !== state.bucket) { return false; }
    if (state.status && r.status !== state.status) { return false; }
    if (state.host && r.hosts.indexOf(state.host) < 0) { return false; }
    if (state.text && r._search.indexOf(state.text) < 0) { return false; }
    return true;
  }
  var body = document.querySelector('#certs tbody');
  function render() {
    var shown = rows.filter(visible);
    shown.sort(function (a, b) { return compare(a, b) || (a._idx - b._idx); });
    while (body.firstChild) { body.removeChild(body.firstChild); }
    shown.forEach(function (r) {
      var tr = el('tr', {'class': 'status-' + r.status, 'data-fingerprint': r.fingerprint_sha256 || '',
                         'data-days-left': r.days_left === null ? '' : String(r.days_left)});
      tr.appendChild(el('td', {'class': 'name', 'title': r.subject}, r.common_name));
      tr.appendChild(el('td', {'class': 'small'}, r.sans.join(', ')));
      tr.appendChild(el('td', {'title': r.issuer}, cn(r.issuer)));
      tr.appendChild(el('td', {'class': 'small'}, r.serial || ''));
      tr.appendChild(el('td', {}, r.not_after ? r.not_after.replace('T', ' ').replace('Z', '') : ''));
      tr.appendChild(el('td', {'class': 'num days'}, r.days_left === null ? '' : r.days_left));
      tr.appendChild(el('td', {'class': 'status status-' + r.status}, r.status));
      tr.appendChild(el('td', {'class': 'hosts'}, r.hosts.join(', ')));
      var where = el('td', {'class': 'small'});
      r._loc.forEach(function (t, i) { if (i) { where.appendChild(el('br')); } where.appendChild(document.createTextNode(t)); });
      if (r.problems.length) { where.appendChild(el('div', {'class': 'status-critical'}, r.problems.join('; '))); }
      tr.appendChild(where);
      tr.appendChild(el('td', {'class': 'small'}, r.sources.join(', ')));
      body.appendChild(tr);
    });
    Array.prototype.forEach.call(headRow.children, function (th) {
      if (th.getAttribute('data-key') === state.key) {
        th.setAttribute('aria-sort', state.dir > 0 ? 'ascending' : 'descending');
      } else { th.removeAttribute('aria-sort'); }
    });
    document.getElementById('shown').textContent = shown.length + ' of ' + rows.length + ' certificates';
    document.getElementById('shown').setAttribute('data-shown', String(shown.length));
  }
  rows.forEach(function (r, i) { r._idx = i; });
  document.getElementById('filter').addEventListener('input', function (e) {
    state.text = e.target.value.trim().toLowerCase(); render();
  });
  document.getElementById('bucket-filter').addEventListener('change', function (e) { state.bucket = e.target.value; render(); });
  document.getElementById('status-filter').addEventListener('change', function (e) { state.status = e.target.value; render(); });
  hostSelect.addEventListener('change', function (e) { state.host = e.target.value; render(); });
  render();
  document.body.setAttribute('data-ready', 'true');
})();
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src '%(script_hash)s'; \
style-src '%(style_hash)s'; img-src 'none'; base-uri 'none'; form-action 'none'">
<meta name="generator" content="certforge.pki.certificate_report">
<meta name="certforge-generated-at" content="%(generated_at)s">
<title>%(title)s</title>
<style>%(style)s</style>
</head>
<body>
<h1>%(title)s</h1>
<p class="muted">As of <span id="as-of"></span> UTC: <span id="total"></span> certificates;
warning at %(warn_days)d days, critical at %(critical_days)d days.</p>
<h2>Days left</h2>
<div class="cards" id="buckets"></div>
<div class="row">
<section><h2>Expiry timeline (certificates per month)</h2><svg id="timeline" xmlns="http://www.w3.org/2000/svg" \
role="img" aria-label="certificates by month of expiry"></svg></section>
<section><h2>By issuer</h2><table id="issuers"><thead><tr><th>Issuer</th><th>Certificates</th></tr></thead>\
<tbody></tbody></table></section>
<section><h2>By host</h2><table id="hosts"><thead><tr><th>Host</th><th>Total</th><th>Expired</th><th>Critical</th>\
<th>Warning</th><th>OK</th></tr></thead><tbody></tbody></table></section>
</div>
<h2>Certificates</h2>
<div class="controls">
<label>Filter <input id="filter" type="search" placeholder="name, SAN, issuer, host, path, serial"></label>
<label>Days left <select id="bucket-filter"><option value="">any</option><option value="expired">expired</option>\
<option value="le7">&lt;= 7</option><option value="le30">&lt;= 30</option><option value="le90">&lt;= 90</option>\
<option value="later">later</option></select></label>
<label>Status <select id="status-filter"><option value="">any</option><option value="expired">expired</option>\
<option value="critical">critical</option><option value="warning">warning</option><option value="ok">ok</option>\
</select></label>
<label>Host <select id="host-filter"><option value="">all hosts</option></select></label>
<span id="shown" class="muted"></span>
</div>
<table id="certs"><thead><tr></tr></thead><tbody></tbody></table>
<script type="application/json" id="report-data">%(data)s</script>
<script>%(script)s</script>
</body>
</html>
"""


def _csp_hash(text):
    return 'sha256-' + base64.b64encode(hashlib.sha256(text.encode('utf-8')).digest()).decode('ascii')


def script_json(value):
    """JSON that is safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` (so neither
    ``</script>`` nor ``<!--`` can appear) and no U+2028/U+2029."""
    text = json.dumps(value, sort_keys=True, separators=(',', ':'), ensure_ascii=False, default=str)
    for char, repl in (('&', '\\u0026'), ('<', '\\u003c'), ('>', '\\u003e'),
                       (u'\u2028', '\\u2028'), (u'\u2029', '\\u2029')):
        text = text.replace(char, repl)
    return text


def render_page(report, generated_at):
    """The page (text) for ``report`` (the dict ``execute`` builds)."""
    return TEMPLATE % dict(
        title=_escape(report['title'], quote=True), generated_at=_escape(generated_at, quote=True),
        warn_days=report['warn_days'], critical_days=report['critical_days'],
        style=STYLE, script=SCRIPT, style_hash=_csp_hash(STYLE), script_hash=_csp_hash(SCRIPT),
        data=script_json(report))
