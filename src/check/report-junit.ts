/**
 * JUnit XML for CI: one <testsuite> of stress cases (typically one per seed), failures carrying
 * the checker's formatted violations. Everything user-provided is escaped, and characters XML 1.0
 * cannot represent at all (most C0 controls, lone surrogates) are replaced, so the file always
 * parses.
 */

export interface JUnitCase {
  name: string;
  timeSec: number;
  failure?: { message: string; details: string };
}

// XML 1.0 Char production: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
const INVALID_XML = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

function clean(s: string): string {
  return s.replace(INVALID_XML, '\uFFFD');
}

function escText(s: string): string {
  return clean(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Attribute values also escape quotes and whitespace controls (which parsers would normalise). */
function escAttr(s: string): string {
  return escText(s).replace(/"/g, '&quot;').replace(/'/g, '&apos;').replace(/\n/g, '&#10;').replace(/\r/g, '&#13;').replace(/\t/g, '&#9;');
}

function secs(t: number): string {
  return (Number.isFinite(t) && t > 0 ? t : 0).toFixed(3);
}

export function toJUnitXml(suiteName: string, cases: readonly JUnitCase[]): string {
  const failures = cases.filter((c) => c.failure !== undefined).length;
  const total = cases.reduce((s, c) => s + (Number.isFinite(c.timeSec) && c.timeSec > 0 ? c.timeSec : 0), 0);
  const suite = escAttr(suiteName);
  const counts = `tests="${cases.length}" failures="${failures}" errors="0" skipped="0" time="${secs(total)}"`;
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="${suite}" ${counts}>`,
    `  <testsuite name="${suite}" ${counts}>`,
  ];
  for (const c of cases) {
    const open = `    <testcase name="${escAttr(c.name)}" classname="${suite}" time="${secs(c.timeSec)}"`;
    if (c.failure === undefined) {
      out.push(`${open}/>`);
    } else {
      out.push(`${open}>`);
      out.push(`      <failure message="${escAttr(c.failure.message)}" type="failure">${escText(c.failure.details)}</failure>`);
      out.push('    </testcase>');
    }
  }
  out.push('  </testsuite>', '</testsuites>', '');
  return out.join('\n');
}
