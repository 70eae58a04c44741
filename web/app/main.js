// The app's entry: client-side routes, the header (who am I, log out), the login redirect.
//
//   /login, /register      account (?next=/c/<id> to come back to a call link)
//   /                      start a call, open a link
//   /c/<call id>           the call
import { me, onUnauthorized, session } from './api.js';
import { h, show, banner } from './ui.js';
import { loginView, registerView } from './account.js';
import { homeView, logout } from './home.js';
import { callView } from './call.js';

let cleanup = null; // the current view's teardown (the call page leaves the call)

function nav(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path); else history.pushState(null, '', path);
  render();
}

// A rejected session on any page: to the login page, keeping where the person was.
function toLogin(expired) {
  const next = location.pathname;
  const q = new URLSearchParams();
  if (next !== '/' && next !== '/login' && next !== '/register') q.set('next', next);
  if (expired) q.set('expired', '1');
  nav(`/login${q.toString() ? `?${q}` : ''}`, { replace: true });
}
onUnauthorized(() => toLogin(true));

function header(user) {
  const right = h('div', { class: 'who' });
  if (user) {
    right.append(h('span', { id: 'whoami' }, user.name, h('span', { class: 'muted' }, ` (${user.login})`)),
      h('button', { type: 'button', id: 'logout', onclick: () => logout(nav) }, 'Log out'));
  }
  document.getElementById('top').replaceChildren(
    h('a', { href: '/', class: 'brand', 'data-nav': '' }, 'corecast'), right);
}

async function render() {
  if (cleanup) { const c = cleanup; cleanup = null; await c(); }
  const path = location.pathname; const params = new URLSearchParams(location.search);
  if (path === '/login' || path === '/register') {
    header(null);
    return path === '/login' ? loginView(nav, params) : registerView(nav, params);
  }
  const hadSession = Boolean(session.get());
  let user;
  try { user = await me(); } catch (e) {
    header(null);
    return show(h('section', { class: 'card narrow' }, h('h1', {}, 'corecast'),
      banner('error', e.message, h('button', { type: 'button', onclick: render }, 'Try again'))));
  }
  if (!user) return toLogin(hadSession);
  header(user);
  const call = /^\/c\/([0-9a-fA-F-]{36})$/.exec(path);
  if (call) { cleanup = await callView(nav, user, call[1]); return undefined; }
  if (path === '/') return homeView(nav, user);
  return show(h('section', { class: 'card narrow' }, h('h1', {}, 'Page not found'),
    h('p', {}, h('a', { href: '/', 'data-nav': '' }, 'Back to the start page'))));
}

// In-app links (data-nav) without a page load.
document.addEventListener('click', (ev) => {
  const a = ev.target.closest('a[data-nav]');
  if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
  ev.preventDefault();
  nav(a.getAttribute('href'));
});
addEventListener('popstate', render);
render();
