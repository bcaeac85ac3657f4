/**
 * Matching URIs against RFC 6570 URI templates (level 1–3 expressions as MCP servers use
 * them) so `resources/read` of a templated URI routes to the target that owns the template.
 */

/** Compile a template to a matcher; returns undefined for templates it cannot reason about. */
export function compileUriTemplate(template: string): ((uri: string) => boolean) | undefined {
  let pattern = '';
  let last = 0;
  const expr = /\{([+#./;?&]?)([^}]+)\}/g;
  for (let m = expr.exec(template); m !== null; m = expr.exec(template)) {
    pattern += escape(template.slice(last, m.index));
    const op = m[1];
    // Reserved expansion ({+x}, {#x}) may contain slashes; simple expansion may not.
    if (op === '+' || op === '#') pattern += `${op === '#' ? '#' : ''}.*`;
    else if (op === '?' || op === '&') pattern += '(?:[?&][^#]*)?';
    else if (op === '/' || op === '.' || op === ';') pattern += `(?:\\${op}[^/?#]*)*`;
    else pattern += '[^/?#]*';
    last = m.index + m[0].length;
  }
  pattern += escape(template.slice(last));
  try {
    const re = new RegExp(`^${pattern}$`);
    return (uri) => re.test(uri);
  } catch {
    return undefined;
  }
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
