// webapp-e2e's steps on a call's end and on who may join: leaving, ending (the others see it
// end; the store forgets it), joining an ended call, an expired session sent to log in and back,
// camera and microphone refused, an ICE restart of the app's own WHIP session, a full call.
import { callStore, joinCall, login, pages, playing, text, tiles } from './app-pages.mjs';
import { check, step, until } from './report.mjs';

/** Runs the steps; `s` holds the scenario's call (`s.call`, `s.link`), `B` the second user. */
export async function accessSteps({ opt, s, B, tag }) {
  await step('leave', async () => {
    const { page: pa } = pages.A; const { page: pb } = pages.B;
    await pb.click('#leave');
    await pb.locator('#rejoin').waitFor();
    await until(5000, async () => (await tiles(pa)).length === 0, "A's grid empty");
    const me = await pa.evaluate(async () => (await fetch('/v1/me', { headers: { Authorization: `Bearer ${localStorage.getItem('corecast.session')}` } })).json());
    const st = await until(5000, async () => {
      const r = await callStore(pa, s.call);
      return r.status === 200 && r.body.participants.length > 0 && r.body.participants.every((p) => p.user_id === me.id) ? r : null;
    }, 'the call store listing only A');
    return { detail: `store: ${st.body.participants.map((p) => `${p.participant_id} (${p.role}, user ${p.user_id})`).join(', ')}` };
  }, ['media']);

  await step('end', async () => {
    const { page: pa } = pages.A; const { page: pb } = pages.B;
    await pb.click('#rejoin');
    await joinCall(pb);
    await playing(pa, B.name, null);
    await pa.click('#end');
    await pb.locator('#ended').waitFor({ timeout: 5000 });
    const h1 = await text(pb, '#ended h1');
    check(/the call has ended/i.test(h1), `B: ${h1}`);
    const r = await callStore(pa, s.call);
    check(r.status === 404, `the call store still has the call: ${r.status}`);
    return { detail: `B: "${h1}"; GET the call: 404` };
  }, ['leave']);

  await step('ended-join', async () => {
    const { page: pb } = pages.B;
    await pb.goto(s.link);
    await pb.click('#join');
    const msg = await text(pb, '#call-ended');
    check(/ended/i.test(msg), `joining an ended call: ${msg}`);
    return { detail: msg };
  }, ['end']);

  await step('expired', async () => {
    const { page: pb } = pages.B;
    await pb.evaluate(() => localStorage.setItem('corecast.session', 'A'.repeat(43)));
    const link = `${opt.base}/c/${s.call || '67e55044-10b1-426f-9247-bb680e5fe0c8'}`;
    await pb.goto(link);
    await pb.waitForURL('**/login?*');
    const u = new URL(pb.url());
    check(u.searchParams.get('next') === new URL(link).pathname, `next=${u.searchParams.get('next')}`);
    const notice = await text(pb, '.banner');
    await login(pb, B);
    await pb.waitForURL(link);
    return { detail: `"${notice}"; back at ${new URL(link).pathname} after logging in` };
  }, ['account']);

  await step('denied', async () => {
    // A second Chromium without --use-fake-ui-for-media-stream: headless, nobody answers the
    // permission prompt, so camera and microphone are refused as when a person blocks them.
    const { chromium: pw } = await import('playwright-core');
    const { chromiumArgs, CHROMIUM } = await import('./chromium.mjs');
    const browser = await pw.launch({ executablePath: CHROMIUM, headless: true, ignoreDefaultArgs: ['--headless'],
      args: chromiumArgs({}).filter((a) => a !== '--use-fake-ui-for-media-stream'), timeout: 30000 });
    try {
      const ctx = await browser.newContext({ baseURL: opt.base });
      const page = await ctx.newPage();
      await page.goto(`/login?next=${encodeURIComponent(`/c/${s.call || '67e55044-10b1-426f-9247-bb680e5fe0c8'}`)}`);
      await login(page, B);
      const msg = await text(page, '#call-status .banner');
      check(/microphone is blocked/i.test(msg) && /camera is blocked/i.test(msg), `permission denied: ${msg}`);
      check(await page.locator('#media-retry').isVisible(), 'no "Try again" button');
      return { detail: msg };
    } finally { await browser.close().catch(() => {}); }
  }, ['account']);

  await step('ice-restart', async () => {
    // The app's own WHIP session (web/app/webrtc.js, imported by the page) restarts ICE by
    // PATCH against the real router: new credentials both ways, media flows on.
    const { page: pa } = pages.A;
    await pa.goto('/');
    const r = await pa.evaluate(async () => {
      const { Leg, getMedia } = await import('/app/webrtc.js');
      const auth = { Authorization: `Bearer ${localStorage.getItem('corecast.session')}` };
      const call = (await (await fetch('/v1/calls', { method: 'POST', headers: auth })).json()).call_id;
      const { stream } = await getMedia();
      const leg = await new Leg({ callId: call, kind: 'whip', stream }).open();
      const connected = async () => { for (let i = 0; i < 100 && leg.pc.connectionState !== 'connected'; i++) await new Promise((ok) => setTimeout(ok, 100)); return leg.pc.connectionState; };
      const sent = async () => { let b = 0; (await leg.pc.getStats()).forEach((x) => { if (x.type === 'outbound-rtp') b += x.bytesSent; }); return b; };
      const ufrag = () => /a=ice-ufrag:(\S+)/.exec(leg.pc.remoteDescription.sdp)[1];
      // The selected candidate pair and its checks answered (a restart makes new pairs).
      const pair = async () => { const st = await leg.pc.getStats(); let p = null;
        st.forEach((x) => { if (x.type === 'transport' && x.selectedCandidatePairId) p = st.get(x.selectedCandidatePairId); });
        return p ? { id: p.id, responses: p.responsesReceived } : null; };
      const out = { first: await connected(), before: ufrag(), pairBefore: await pair() };
      await leg.restartIce();
      out.after = ufrag(); out.second = await connected();
      for (let i = 0; i < 50; i++) {
        out.pairAfter = await pair();
        if (out.pairAfter && out.pairAfter.id !== out.pairBefore?.id && out.pairAfter.responses > 0) break;
        await new Promise((ok) => setTimeout(ok, 100));
      }
      const b0 = await sent(); await new Promise((ok) => setTimeout(ok, 1500)); out.bytes = (await sent()) - b0;
      leg.close(); stream.getTracks().forEach((t) => t.stop());
      await fetch(`/v1/calls/${call}`, { method: 'DELETE', headers: auth });
      return out;
    });
    check(r.first === 'connected' && r.second === 'connected', `connection: ${r.first}, after the restart ${r.second}`);
    check(r.after !== r.before, `the router's ufrag did not change (${r.before})`);
    check(r.pairAfter && r.pairAfter.id !== r.pairBefore?.id && r.pairAfter.responses > 0,
      `no new candidate pair answered by the router after the restart: ${JSON.stringify([r.pairBefore, r.pairAfter])}`);
    check(r.bytes > 0, 'nothing sent after the restart');
    return { detail: `router ufrag ${r.before} → ${r.after}, new pair answered ${r.pairAfter.responses} checks, ${r.bytes} bytes sent in 1.5 s after` };
  }, ['account']);

  await step('full', async () => {
    // A new call filled to the service's cap with native joins of fresh users; B's join is refused.
    const { page: pa } = pages.A; const { page: pb } = pages.B;
    await pa.goto('/'); await pa.click('#start-call'); await pa.waitForURL('**/c/*');
    const call = (await pa.inputValue('#share-link')).split('/c/')[1];
    let n = 0;
    for (; n < 40; n++) {
      const u = { login: `f${n}-${tag}`, password: 'filler-password' };
      const reg = await fetch(`${opt.base}/v1/register`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ ...u, email: `f${n}-${tag}@e2e.test`, name: `Filler ${n}` }) });
      check(reg.status === 201, `register filler: ${reg.status}`);
      const { session } = await (await fetch(`${opt.base}/v1/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(u) })).json();
      const j = await fetch(`${opt.base}/v1/calls/${call}/join`, { method: 'POST', headers: { Authorization: `Bearer ${session}` } });
      if (j.status === 409) break;
      check(j.status === 200, `filler join: ${j.status}`);
    }
    await pb.goto(`/c/${call}`);
    await pb.click('#join');
    const msg = await text(pb, '#call-full');
    check(/full/i.test(msg), `full call: ${msg}`);
    await pa.evaluate(async (id) => fetch(`/v1/calls/${id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${localStorage.getItem('corecast.session')}` } }), call);
    return { detail: `after ${n} joins: "${msg}"` };
  }, ['account']);
}
