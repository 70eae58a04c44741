// A call page's lost connections: a leg that disconnects restarts ICE, then opens a new
// session; a call that moved to another router gets new sessions at once; a publisher gone from
// the call store publishes again. Methods of the call page (call.js installs them on it).
import { button } from './ui.js';

// Runs open() again while the call's router is unreachable (503, 502, or no answer): after a
// router failure calls moves the call to a live router within a couple of seconds.
export async function retryUnavailable(open, tries = 6) {
  for (let i = 1; ; i++) {
    try { return await open(); } catch (e) {
      if (i >= tries || ![0, 502, 503].includes(e.status)) throw e;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

// What a refused join or leg means to the person.
export function joinMessage(e) {
  if (e.status === 404) return { id: 'call-ended', text: 'This call has ended, or the link is wrong.' };
  if (e.code === 'call_full' || (e.status === 409 && /full/i.test(e.message))) {
    return { id: 'call-full', text: `This call is full: ${e.message.replace(/^the call /i, 'it ')}. Try again when someone leaves.` };
  }
  if (e.status === 0) return { id: 'join-error', text: e.message };
  if (e.status >= 500) return { id: 'join-error', text: `The server could not connect you (${e.status}): ${e.message}` };
  return { id: 'join-error', text: e.message };
}

export const recovery = {
  legState(leg, state, what) {
    if (leg.closed || this.state !== 'in-call') return;
    console.info(`corecast: ${leg.kind}${leg.query ? ` ${leg.query}` : ''} ${state}`); // the recovery's trace, for people who look (and the tests)
    if (state === 'connected') {
      if (this.reconnecting.has(leg)) this.settle();
      this.reconnecting.delete(leg);
      if (!this.reconnecting.size) this.clearNote('reconnecting');
    } else if (state === 'disconnected') {
      // May recover by itself; if not within 1 s, restart ICE, and if the router is gone (it
      // died, or its calls moved at a drain deadline) open new sessions: calls places them on
      // the call's router now.
      setTimeout(() => { if (!leg.closed && leg.pc.connectionState === 'disconnected') this.reconnect(leg, what); }, 1000);
    } else if (state === 'failed') {
      this.reconnect(leg, what);
    }
  },

  // Every leg is on the call's old router: publish again and open the others' legs anew (a
  // leg already being reconnected goes on by itself).
  moved() {
    console.info('corecast: the call moved to another router: new sessions');
    if (this.whip && !this.reconnecting.has(this.whip)) this.rejoin(this.whip, 'The call moved to another server');
    if (this.screen?.leg && !this.reconnecting.has(this.screen.leg)) this.reshare(this.screen.leg);
    for (const r of [...this.remotes.values(), this.composite]) {
      if (!r?.leg || this.reconnecting.has(r.leg)) continue;
      r.leg.close();
      this.settle(10000);
      this.openWhep(r, r === this.composite ? 'view=composite' : this.whepQuery(r));
    }
  },

  // No automatic SD decision for a few seconds (a leg is back and waits for a key frame).
  settle(ms = 5000) { this.settleUntil = Math.max(this.settleUntil, performance.now() + ms); },

  async reconnect(leg, what) {
    if (this.reconnecting.has(leg) || leg.closed) return;
    this.reconnecting.add(leg);
    this.note('warn', `Connection lost (${what}). Reconnecting…`, 'reconnecting');
    try {
      await leg.restartIce();
      const t0 = performance.now();
      while (performance.now() - t0 < 8000 && leg.pc.connectionState !== 'connected' && !leg.closed) await new Promise((r) => setTimeout(r, 250));
      if (leg.pc.connectionState === 'connected') return;
      console.info(`corecast: ${leg.kind}${leg.query ? ` ${leg.query}` : ''} still ${leg.pc.connectionState} 8 s after the ICE restart: a new session`);
    } catch (e) { // the session is gone on the server: open a new one
      console.info(`corecast: ${leg.kind}${leg.query ? ` ${leg.query}` : ''} ICE restart failed (${e.message}): a new session`);
    }
    if (leg === this.whip) await this.rejoin(leg, 'Connection lost');
    else if (leg === this.screen?.leg) { this.reconnecting.delete(leg); await this.reshare(leg); }
    else {
      this.reconnecting.delete(leg);
      const r = [...this.remotes.values(), this.composite].find((x) => x && x.leg === leg);
      leg.close();
      this.settle(10000);
      if (r) this.openWhep(r, r === this.composite ? 'view=composite' : this.whepQuery(r));
    }
  },

  // Publishes again with a new WHIP session (the old participant is gone or unreachable).
  async rejoin(old, why) {
    this.reconnecting.add(old);
    this.note('warn', `${why}. Reconnecting…`, 'reconnecting');
    old.close();
    try {
      this.whip = await retryUnavailable(() => this.openWhip());
      this.whipPrev = null;
      this.settle();
      await this.sendMute();
      this.clearNote('reconnecting');
    } catch (e) {
      if (e.status === 404) return this.finish('ended');
      this.note('error', `Could not reconnect: ${joinMessage(e).text}`, 'reconnecting',
        button('Try again', () => this.rejoin(this.whip, 'Reconnecting'), { id: 'reconnect' }));
    } finally { this.reconnecting.delete(old); }
    return undefined;
  }
};
