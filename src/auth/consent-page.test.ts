import { describe, expect, it } from 'vitest';
import { consentGrantId, consentHtml, escapeHtml } from './consent-page.ts';

describe('consent page', () => {
  it('escapes every value a client or user controls', () => {
    const evil = `<img src=x onerror="alert('1')">&\``;
    const html = consentHtml({ action: '/oauth/interaction/u"x/consent', csrf: 'tok"en', clientName: evil, clientId: evil, redirectHost: evil, resources: [evil], scopes: [evil], accountId: evil });
    expect(html).not.toContain('<img');
    expect(html).not.toContain(`"alert`);
    expect(html).toContain('action="/oauth/interaction/u&#34;x/consent"');
    expect(html).toContain('value="tok&#34;en"');
    expect(escapeHtml(`<>&"'\``)).toBe('&#60;&#62;&#38;&#34;&#39;&#96;');
  });

  it('names the client by id when it gave no name', () => {
    expect(consentHtml({ action: '/a', csrf: 't', clientName: undefined, clientId: 'dyn-1', redirectHost: 'h', resources: [], scopes: [], accountId: 'u' })).toContain('Allow dyn-1 to use');
  });

  it('derives one grant id per (account, client) pair', () => {
    expect(consentGrantId('a', 'c')).toBe(consentGrantId('a', 'c'));
    expect(consentGrantId('a', 'c')).not.toBe(consentGrantId('a', 'd'));
    // The separator keeps ("ab", "c") and ("a", "bc") apart.
    expect(consentGrantId('ab', 'c')).not.toBe(consentGrantId('a', 'bc'));
  });
});
