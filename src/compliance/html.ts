/**
 * The compliance report as one self-contained HTML page (inline CSS, no script, no external
 * resource), readable in a browser and printable. Every value from storage (names, tags,
 * display names, issuers) goes through `escapeHtml`, so a name such as `<script>` shows as text;
 * the route also sends a Content-Security-Policy that allows no script at all.
 */
import { SEVERITIES, type ControlRef } from './controls';
import type { ComplianceReport, Finding } from './report';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (ch) => ESCAPES[ch]!);
}

const e = escapeHtml;

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1b1f24;margin:2rem auto;max-width:72rem;padding:0 1rem}
h1{font-size:1.6rem;margin:0 0 .25rem}h2{font-size:1.2rem;margin:2rem 0 .5rem;border-bottom:1px solid #d0d7de;padding-bottom:.25rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{text-align:left;vertical-align:top;padding:.35rem .5rem;border-bottom:1px solid #e5e8eb}
th{background:#f6f8fa;font-weight:600}code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}
.meta td:first-child{width:14rem;color:#57606a}.sev{display:inline-block;padding:0 .45rem;border-radius:.6rem;font-size:12px;font-weight:600;color:#fff}
.high{background:#cf222e}.medium{background:#bc4c00}.low{background:#6e7781}.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}
.not_applicable{color:#57606a;font-style:italic}.counts span{margin-right:1.25rem}.muted{color:#57606a}ul.controls{margin:0;padding-left:1rem}
@media print{body{margin:0;max-width:none}}
`;

const severityBadge = (s: string) => `<span class="sev ${e(s)}">${e(s)}</span>`;

function controlList(controls: readonly ControlRef[]): string {
  return `<ul class="controls">${controls.map((c) => `<li>${e(c.framework)} ${e(c.id)}: ${e(c.title)}</li>`).join('')}</ul>`;
}

function findingRow(f: Finding): string {
  return (
    `<tr id="${e(f.id)}"><td>${severityBadge(f.severity)}</td>` +
    `<td><strong>${e(f.title)}</strong><br>${e(f.detail)}<br><span class="muted">Remediation:</span> ${e(f.remediation)}` +
    `<br><span class="muted">Resource:</span> <code>${e(f.resource.id)}</code></td>` +
    `<td>${controlList(f.controls)}</td></tr>`
  );
}

export function renderReportHtml(report: ComplianceReport): string {
  const scope = report.scope.kind === 'vault' ? `vault ${report.scope.vault}` : `deployment (${report.scope.vaults} vaults)`;
  const anchor = report.auditCheckpoint;
  const anchorRows = anchor.chains
    .map(
      (c) =>
        `<tr><td><code>${e(c.chain)}</code></td><td>${e(c.kind)}</td><td>${e(c.seq)}</td><td><code>${e(c.hash ?? '')}</code></td>` +
        `<td>${c.checkpoint ? `${e(c.checkpoint.time)} (${e(c.checkpoint.alg)}, ${e(c.checkpoint.kid)})` : ''}</td></tr>`,
    )
    .join('');
  const counts = SEVERITIES.map(
    (s) => `<span data-severity="${e(s)}">${severityBadge(s)} <strong>${e(report.summary[s])}</strong></span>`,
  ).join('');
  const checkRows = report.checks
    .map(
      (c) =>
        `<tr><td>${e(c.title)}<br><span class="muted">${e(c.criterion)}</span>${c.note ? `<br><em>${e(c.note)}</em>` : ''}</td>` +
        `<td>${severityBadge(c.severity)}</td><td class="${e(c.status)}">${e(c.status.replace('_', ' '))}</td>` +
        `<td>${e(c.examined)}</td><td>${e(c.findings)}</td><td>${controlList(c.controls)}</td></tr>`,
    )
    .join('');
  const findings = report.findings.length
    ? `<table><thead><tr><th>Severity</th><th>Finding</th><th>Controls</th></tr></thead><tbody>${report.findings.map(findingRow).join('')}</tbody></table>`
    : '<p class="pass">No findings.</p>';
  const t = report.thresholds;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Compliance report: ${e(scope)}</title><style>${STYLE}</style></head>
<body>
<h1>Compliance report</h1>
<p class="muted">Edge Key Vault, ${e(scope)}</p>
<table class="meta"><tbody>
<tr><td>Generated</td><td><time datetime="${e(report.generatedAt)}">${e(report.generatedAt)}</time></td></tr>
<tr><td>Scope</td><td>${e(scope)}</td></tr>
<tr><td>Audit anchor</td><td>${e(anchor.kind)}: ${e(anchor.note)}</td></tr>
<tr><td>Findings</td><td class="counts" data-total="${e(report.summary.total)}"><span>total <strong>${e(report.summary.total)}</strong></span>${counts}</td></tr>
<tr><td>Thresholds</td><td>credentials and unused assignments older than ${e(t.staleDays)} days; expiry within ${e(t.expiringWithinDays)} days;
soft-delete retention below ${e(t.minRetentionDays)} days; RSA below ${e(t.minRsaBits)} bits; rotation more than ${e(t.rotationGraceSeconds / 3600)} h past due</td></tr>
</tbody></table>
<h2>Audit checkpoint</h2>
<table><thead><tr><th>Chain</th><th>Anchor</th><th>Seq</th><th>Hash</th><th>Signed</th></tr></thead><tbody>${anchorRows || '<tr><td colspan="5">No audit records yet.</td></tr>'}</tbody></table>
<p class="muted">Supports: ${anchor.controls.map((c) => `${e(c.framework)} ${e(c.id)} (${e(c.title)})`).join('; ')}</p>
<h2>Findings</h2>
${findings}
<h2>Checks</h2>
<table><thead><tr><th>Check</th><th>Severity</th><th>Status</th><th>Examined</th><th>Findings</th><th>Controls</th></tr></thead><tbody>${checkRows}</tbody></table>
</body></html>
`;
}
