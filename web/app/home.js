// Signed in: who am I, start a call, open a call link, log out.
import { api, session } from './api.js';
import { h, show, busy } from './ui.js';
import { messageOf } from './account.js';

export async function homeView(nav, user) {
  const err = h('p', { class: 'form-error', role: 'alert' });
  const start = h('button', { type: 'button', class: 'primary', id: 'start-call' }, 'Start a call');
  start.addEventListener('click', () => busy(start, async () => {
    err.textContent = '';
    try {
      const r = await api('POST', '/v1/calls');
      nav(`/c/${r.call_id}`);
    } catch (e) { err.textContent = messageOf(e); }
  }));
  const link = h('input', { id: 'call-link', name: 'link', autocomplete: 'off', placeholder: `${location.origin}/c/…` });
  const linkErr = h('p', { id: 'call-link-error', class: 'field-error', 'aria-live': 'polite' });
  link.setAttribute('aria-describedby', 'call-link-error');
  const open = h('form', { class: 'inline', 'aria-label': 'Open a call link' },
    h('label', { for: 'call-link' }, 'Join with a link'), link,
    h('button', { type: 'submit' }, 'Open'), linkErr);
  open.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const m = /\/c\/([0-9a-fA-F-]{36})\b/.exec(link.value) || /^([0-9a-fA-F-]{36})$/.exec(link.value.trim());
    if (!m) { linkErr.textContent = 'Paste a call link like …/c/0b9f…'; link.setAttribute('aria-invalid', 'true'); return; }
    nav(`/c/${m[1]}`);
  });
  show(h('section', { class: 'card narrow' },
    h('h1', {}, `Hello, ${user.name}`),
    h('p', { class: 'muted' }, `Signed in as ${user.login} (${user.email}).`),
    start, err, open));
}

export async function logout(nav) {
  try { await api('POST', '/v1/logout', { redirect: false }); } catch { /* the session is gone either way */ }
  session.clear();
  nav('/login');
}
