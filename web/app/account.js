// Register and log in. The auth service's validation errors are shown next to the field
// they name ({"error": {"field": "login", …}}); other errors above the form.
import { api, session } from './api.js';
import { h, show, busy } from './ui.js';

// A labelled input with its error slot (aria-describedby, aria-invalid when wrong).
function field(name, label, attrs = {}, hint = '') {
  const errId = `${name}-error`; const hintId = `${name}-hint`;
  const input = h('input', { id: name, name, required: true, 'aria-describedby': `${hint ? hintId : ''} ${errId}`.trim(), ...attrs });
  const err = h('p', { id: errId, class: 'field-error', 'aria-live': 'polite' });
  return {
    name, input, err,
    el: h('div', { class: 'field' }, h('label', { for: name }, label), input,
      hint ? h('p', { id: hintId, class: 'hint' }, hint) : null, err),
    set(msg) { err.textContent = msg || ''; if (msg) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid'); },
  };
}

function form(title, fields, submitLabel, onSubmit, footer) {
  const general = h('p', { class: 'form-error', role: 'alert', id: 'form-error' });
  const submit = h('button', { type: 'submit', class: 'primary' }, submitLabel);
  const f = h('form', { novalidate: true, 'aria-labelledby': 'form-title' },
    ...fields.map((x) => x.el), general, submit);
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    general.textContent = '';
    fields.forEach((x) => x.set(''));
    const values = Object.fromEntries(fields.map((x) => [x.name, x.input.value]));
    await busy(submit, async () => {
      try { await onSubmit(values); } catch (e) {
        const target = e.field && fields.find((x) => x.name === e.field);
        if (target) { target.set(e.message); target.input.focus(); } else general.textContent = messageOf(e);
      }
    });
  });
  show(h('section', { class: 'card narrow' }, h('h1', { id: 'form-title' }, title), f, footer));
  fields[0].input.focus();
}

export function messageOf(e) {
  if (e.code === 'throttled') return 'Too many failed attempts. Wait a few minutes, then try again.';
  if (e.status === 401) return 'Wrong login or password.';
  if (e.status === 503) return 'The service is busy or a backing server is down. Try again in a moment.';
  return e.message || String(e);
}

const safeNext = (next) => (next && /^\/(c\/[0-9a-fA-F-]{36}|)$/.test(next) ? next : '/');
const withNext = (path, next) => (next && next !== '/' ? `${path}?next=${encodeURIComponent(next)}` : path);

async function logIn(login, password) {
  const r = await api('POST', '/v1/login', { json: { login, password }, auth: false });
  session.set(r.session);
}

export function loginView(nav, params) {
  const next = safeNext(params.get('next'));
  const fields = [
    field('login', 'Login', { autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false' }),
    field('password', 'Password', { type: 'password', autocomplete: 'current-password' }),
  ];
  const notice = params.get('expired') ? h('p', { class: 'banner warn', role: 'status' },
    'Your session has expired. Log in again to continue.') : null;
  form('Log in', fields, 'Log in', async (v) => {
    await logIn(v.login.trim(), v.password);
    nav(next);
  }, h('p', {}, 'No account yet? ', h('a', { href: withNext('/register', next), 'data-nav': '' }, 'Create one')));
  if (notice) document.querySelector('#main section').prepend(notice);
}

export function registerView(nav, params) {
  const next = safeNext(params.get('next'));
  const fields = [
    field('login', 'Login', { autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false', maxlength: 20 },
      'Up to 20 letters, digits, “_”, “.” or “-”.'),
    field('email', 'Email', { type: 'email', autocomplete: 'email', maxlength: 30 }),
    field('name', 'Name shown in calls', { autocomplete: 'name', maxlength: 30 }),
    field('password', 'Password', { type: 'password', autocomplete: 'new-password' }, 'At least 8 characters.'),
  ];
  form('Create an account', fields, 'Create account', async (v) => {
    await api('POST', '/v1/register', { json: { login: v.login.trim(), email: v.email.trim(), name: v.name, password: v.password }, auth: false });
    await logIn(v.login.trim(), v.password);
    nav(next);
  }, h('p', {}, 'Have an account? ', h('a', { href: withNext('/login', next), 'data-nav': '' }, 'Log in')));
}
