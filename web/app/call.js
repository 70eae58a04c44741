// The call page: lobby (camera preview, share link, Join), then the call: publish over WHIP,
// one WHEP session per other participant (or one composite in SD), the participants list,
// mute, leave, end, the automatic SD move, video of the most active speakers only (lastn.js);
// reconnects are recovery.js's. GET /v1/calls/{id} every 750 ms keeps
// the page in step with the call store (who is in, who is muted, whether the call still is).
import { api } from './api.js';
import { h, show, banner, announce, button } from './ui.js';
import { Leg, getMedia } from './webrtc.js';
import { inbound, outbound } from './stats.js';
import { QualityGovernor } from './quality.js';
import { Tile, SizeWatch } from './grid.js';
import { cameraEncodings } from './layers.js';
import { ScreenShare, screenProblem } from './screen.js';
import { SPEAKER_CHOICES, lastNFor, withLastN, watchPause } from './lastn.js';
import { recovery, retryUnavailable, joinMessage } from './recovery.js';

const POLL_MS = 750; // a muted state or a leave shows on the others within ~1 s
const STATS_MS = 1000;

export async function callView(nav, user, callId) {
  const page = new CallPage(nav, user, callId);
  // Closing the tab leaves the call at once (the sessions' DELETEs are keepalive requests),
  // rather than at the router's silence timeout.
  const gone = () => page.teardown();
  addEventListener('pagehide', gone);
  await page.lobby();
  return () => { removeEventListener('pagehide', gone); page.teardown(); };
}

class CallPage {
  constructor(nav, user, callId) {
    Object.assign(this, { nav, user, callId });
    this.stream = null; this.whip = null; this.view = null;
    this.remotes = new Map(); // participant id → { tile, leg, prev }
    this.composite = null; // { tile, leg, prev } in SD
    this.mode = 'hd'; this.autoSd = false; this.governor = new QualityGovernor();
    this.audioMuted = false; this.videoMuted = false;
    this.timers = []; this.state = 'lobby'; this.reconnecting = new Set(); this.settleUntil = 0;
    this.screen = null; // ScreenShare while this person shares their screen
    this.screenFps = ''; // '' : others' screen shares at their full frame rate, else at most this many
    this.speakers = 0; // 0: every camera's video, else only the video of this many most active speakers
    this.link = `${location.origin}/c/${callId}`;
    this.sizes = new SizeWatch(() => this.fitTiles()); // remote tiles resized: ask for what they show
  }

  // ------------------------------------------------------------------ lobby
  async lobby() {
    this.state = 'lobby';
    this.selfTile = new Tile({ key: 'self', name: `${this.user.name} (you)`, self: true });
    this.status = h('div', { class: 'status', id: 'call-status' });
    // Enabled once the camera and microphone are asked for (joining publishes them).
    this.joinBtn = button('Starting camera…', () => this.join(), { class: 'primary', id: 'join', disabled: true });
    show(h('section', { class: 'lobby' },
      h('h1', {}, 'Ready to join?'),
      this.shareBox(), this.status,
      h('div', { class: 'preview' }, this.selfTile.el),
      h('div', { class: 'controls' }, this.micButton(), this.camButton(), this.joinBtn)));
    await this.acquire();
    this.joinBtn.textContent = 'Join call';
    this.joinBtn.disabled = false;
  }

  shareBox() {
    const input = h('input', { id: 'share-link', readonly: true, value: this.link, 'aria-label': 'Link to this call' });
    const copy = button('Copy link', async () => {
      try { await navigator.clipboard.writeText(this.link); announce('Link copied'); copy.textContent = 'Copied'; } catch {
        input.select(); announce('Select the link and copy it');
      }
    }, { id: 'copy-link' });
    return h('div', { class: 'share' }, h('label', { for: 'share-link' }, 'Share this link to invite people'), input, copy);
  }

  async acquire() {
    const { stream, problems } = await getMedia();
    if (this.state === 'gone') { if (stream) stream.getTracks().forEach((t) => t.stop()); return; }
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    this.stream = stream;
    if (stream) this.selfTile.attachStream(stream);
    // Already publishing (a retry after a permission was granted): send the new tracks.
    for (const tr of this.whip?.pc ? this.whip.pc.getTransceivers() : []) {
      const t = stream && stream.getTracks().find((x) => x.kind === tr.receiver.track.kind);
      if (t && tr.sender.track !== t) tr.sender.replaceTrack(t).catch(() => {});
    }
    this.applyMute();
    this.mediaBanner?.remove();
    if (problems.length) {
      this.mediaBanner = banner('warn', problems.join(' '), button('Try again', () => this.acquire(), { id: 'media-retry' }));
      this.status.append(this.mediaBanner);
    }
  }

  // ------------------------------------------------------------------ controls
  micButton() {
    this.mic = button('Mute microphone', () => this.setMute('audio', !this.audioMuted), { id: 'mic', 'aria-pressed': 'false' });
    return this.mic;
  }

  camButton() {
    this.cam = button('Turn camera off', () => this.setMute('video', !this.videoMuted), { id: 'cam', 'aria-pressed': 'false' });
    return this.cam;
  }

  applyMute() {
    for (const t of this.stream ? this.stream.getTracks() : []) t.enabled = t.kind === 'audio' ? !this.audioMuted : !this.videoMuted;
    this.mic.textContent = this.audioMuted ? 'Unmute microphone' : 'Mute microphone';
    this.mic.setAttribute('aria-pressed', String(this.audioMuted));
    this.cam.textContent = this.videoMuted ? 'Turn camera on' : 'Turn camera off';
    this.cam.setAttribute('aria-pressed', String(this.videoMuted));
    this.selfTile.setMuted(this.audioMuted, this.videoMuted);
  }

  // Mutes locally at once, then tells the call store so the others see it.
  async setMute(kind, muted) {
    if (kind === 'audio') this.audioMuted = muted; else this.videoMuted = muted;
    this.applyMute();
    announce(kind === 'audio' ? (muted ? 'Microphone muted' : 'Microphone on') : (muted ? 'Camera off' : 'Camera on'));
    await this.sendMute();
  }

  async sendMute() {
    if (!this.whip || !this.whip.participantId) return;
    try {
      await api('PATCH', `/v1/calls/${this.callId}/participants/${this.whip.participantId}`,
        { json: { audio_muted: this.audioMuted, video_muted: this.videoMuted } });
    } catch (e) {
      this.note('warn', `Others may not see that you are muted: ${e.message}`, 'mute-error');
    }
  }

  // A banner in the status area, replacing one with the same id.
  note(kind, text, id, ...actions) {
    document.getElementById(id)?.remove();
    const b = banner(kind, text, ...actions);
    b.id = id;
    this.status.append(b);
    return b;
  }

  clearNote(id) { document.getElementById(id)?.remove(); }

  // ------------------------------------------------------------------ joining
  async join() {
    this.joinBtn.disabled = true;
    this.clearNote('join-error'); this.clearNote('call-ended'); this.clearNote('call-full');
    this.note('info', 'Joining…', 'joining');
    try {
      this.whip = await this.openWhip();
    } catch (e) {
      this.clearNote('joining');
      const m = joinMessage(e);
      this.note(m.id === 'join-error' ? 'error' : 'warn', m.text, m.id);
      this.joinBtn.disabled = m.id === 'call-ended';
      return;
    }
    this.clearNote('joining');
    this.state = 'in-call';
    if (this.audioMuted || this.videoMuted) this.sendMute();
    this.renderCall();
    announce('You joined the call');
    this.every(POLL_MS, () => this.poll());
    this.every(STATS_MS, () => this.sample());
    await this.poll();
  }

  // The camera goes out as simulcast layers planned from its capture size (layers.js); the
  // router sends each viewer the best one that fits its tile and its network.
  async openWhip() {
    const video = this.stream?.getVideoTracks()[0];
    const leg = new Leg({ callId: this.callId, kind: 'whip', stream: this.stream,
      encodings: video ? cameraEncodings(video.getSettings()) : undefined,
      onState: (s) => this.legState(leg, s, 'your camera and microphone') });
    return leg.open();
  }

  every(ms, fn) {
    let running = false;
    this.timers.push(setInterval(async () => {
      if (running) return; // a slow round is not stacked
      running = true;
      try { await fn(); } finally { running = false; }
    }, ms));
  }

  stopTimers() { this.timers.forEach(clearInterval); this.timers = []; }

  renderCall() {
    this.grid = h('div', { class: 'grid', id: 'grid', 'aria-label': 'Participants\' video' }, this.selfTile.el);
    this.people = h('ul', { id: 'people', class: 'people' });
    this.sdBtn = button('SD view', () => this.chooseMode(this.mode === 'hd' ? 'sd' : 'hd'), { id: 'view-sd', 'aria-pressed': 'false',
      title: 'SD: one composite video of the whole call, for slow networks' });
    this.shareBtn = button('Share screen', () => this.toggleScreen(), { id: 'share-screen', 'aria-pressed': 'false' });
    this.fpsSelect = h('select', { id: 'screen-fps', onchange: () => this.setScreenFps(this.fpsSelect.value) },
      h('option', { value: '' }, 'full frame rate'), h('option', { value: '8' }, 'at most 8 fps (saves bandwidth)'));
    const fps = h('span', { class: 'select' }, h('label', { for: 'screen-fps' }, 'Screen shares'), this.fpsSelect);
    this.speakersSelect = h('select', { id: 'last-n', onchange: () => this.setSpeakers(Number(this.speakersSelect.value)) },
      ...SPEAKER_CHOICES.map((n) => h('option', { value: String(n) }, n ? `the ${n} most active speaker${n > 1 ? 's' : ''}` : 'everyone')));
    const speakers = h('span', { class: 'select' }, h('label', { for: 'last-n' }, 'Video of'), this.speakersSelect);
    const leave = button('Leave', () => this.leave(), { id: 'leave', class: 'danger' });
    // Shown to the owner once the first poll says who owns the call.
    this.endBtn = button('End call for everyone', () => this.end(), { id: 'end', class: 'danger', hidden: true });
    show(h('section', { class: 'call' },
      h('h1', { class: 'sr-only' }, 'In the call'),
      this.status,
      h('div', { class: 'stage' }, this.grid,
        h('aside', { class: 'side', 'aria-labelledby': 'people-title' }, h('h2', { id: 'people-title' }, 'People'), this.people, this.shareBox())),
      h('div', { class: 'controls', role: 'toolbar', 'aria-label': 'Call controls' },
        this.mic, this.cam, this.shareBtn, this.sdBtn, fps, speakers, leave, this.endBtn)));
  }

  // ------------------------------------------------------------------ the call store
  async poll() {
    let view;
    try {
      view = await api('GET', `/v1/calls/${this.callId}`, { timeoutMs: 5000 });
    } catch (e) {
      if (this.state !== 'in-call') return;
      if (e.status === 404) return this.finish('ended');
      if (e.status === 403) return this.finish('removed');
      if (e.status === 401) return undefined; // the app is on its way to the login page
      this.note('warn', e.status === 0 ? 'Lost contact with the server. Retrying…' : `Server error: ${e.message}. Retrying…`, 'poll-error');
      return undefined;
    }
    if (this.state !== 'in-call') return undefined;
    this.clearNote('poll-error');
    this.view = view;
    this.endBtn.hidden = view.owner !== this.user.id;
    // The call moved to another router (its router died, or a drain deadline passed): open new
    // sessions now rather than when the connections notice, which takes seconds (calls drops
    // whom the new router does not hold once its grace is over).
    if (this.router && view.router && view.router !== this.router) this.moved();
    this.router = view.router;
    // My publisher gone from the store (e.g. the router timed it out): publish again.
    if (this.whip && !this.reconnecting.has(this.whip) && !view.participants.some((p) => String(p.participant_id) === this.whip.participantId)) {
      this.rejoin(this.whip, 'You were disconnected');
    }
    const shared = this.screen?.leg;
    if (shared?.participantId && !this.reconnecting.has(shared) && !view.participants.some((p) => String(p.participant_id) === shared.participantId)) {
      this.reshare(shared);
    }
    this.renderPeople(view);
    this.syncLegs(view);
    // The router's dominant speaker (the loudest, held with hysteresis): its tile stands out.
    for (const [pid, r] of this.remotes) {
      r.tile.el.classList.toggle('dominant', view.dominant_speaker != null && String(view.dominant_speaker) === pid);
    }
    return undefined;
  }

  // The others who publish (cameras and screen shares), one entry per participant (a person
  // with two tabs shows twice).
  publishers(view) {
    const mine = [this.whip?.participantId, this.screen?.participantId];
    return view.participants.filter((p) => (p.role === 'publisher' || p.role === 'screen') && !mine.includes(String(p.participant_id)));
  }

  renderPeople(view) {
    const items = [h('li', { dataset: { user: String(this.user.id) } }, `${this.user.name} (you)`,
      view.owner === this.user.id ? h('span', { class: 'tag' }, 'host') : '',
      this.audioMuted ? h('span', { class: 'tag' }, 'muted') : '')];
    for (const p of this.publishers(view)) {
      const speaking = this.remotes.get(String(p.participant_id))?.tile.el.classList.contains('speaking');
      const dominant = view.dominant_speaker != null && view.dominant_speaker === p.participant_id;
      items.push(h('li', { dataset: { participant: String(p.participant_id) } }, p.name || `User ${p.user_id}`,
        p.role === 'screen' ? h('span', { class: 'tag' }, 'sharing screen') : '',
        p.user_id === view.owner && p.role !== 'screen' ? h('span', { class: 'tag' }, 'host') : '',
        p.audio_muted ? h('span', { class: 'tag' }, 'muted') : '',
        p.video_muted ? h('span', { class: 'tag' }, 'camera off') : '',
        speaking ? h('span', { class: 'tag speaking' }, 'speaking') : '',
        dominant ? h('span', { class: 'tag dominant' }, 'dominant speaker') : ''));
    }
    this.people.replaceChildren(...items);
  }

  syncLegs(view) {
    const pubs = this.publishers(view);
    const want = new Map(pubs.map((p) => [String(p.participant_id), p]));
    for (const [pid, r] of this.remotes) {
      if (!want.has(pid)) {
        r.leg?.close(); this.sizes.unwatch(r.tile); r.tile.remove(); this.remotes.delete(pid); // no leg in SD
        announce(`${r.tile.name} left`);
      }
    }
    const added = []; // opened once all are in the grid: each asks for its tile's final size
    for (const [pid, p] of want) {
      const screen = p.role === 'screen';
      const name = screen ? `${p.name || `User ${p.user_id}`}'s screen` : p.name || `User ${p.user_id}`;
      let r = this.remotes.get(pid);
      if (!r) {
        const tile = new Tile({ key: pid, name });
        tile.el.classList.toggle('screen', screen);
        r = { tile, leg: null, prev: null, pid, screen };
        this.remotes.set(pid, r);
        this.sizes.watch(tile);
        if (this.mode === 'hd') { this.grid.append(tile.el); added.push(r); }
        announce(screen ? `${name} is shared` : `${name} joined`);
      }
      r.tile.setName(name);
      r.tile.setMuted(p.audio_muted, p.video_muted);
    }
    for (const r of added) this.openWhep(r, this.whepQuery(r));
    if (this.mode === 'sd' && !this.composite) this.openComposite();
  }

  openWhep(r, query) {
    const leg = new Leg({ callId: this.callId, kind: 'whep', query,
      onTrack: (t) => r.tile.addTrack(t), onState: (s) => this.legState(leg, s, r.tile.name) });
    r.leg = leg; r.prev = null; r.pause = null;
    r.tile.resetStats();
    r.tile.setPaused(false);
    r.tile.el.dataset.maxHeight = new URLSearchParams(query).get('max_height') || ''; // what it asked for
    retryUnavailable(() => (leg.closed ? Promise.resolve(leg) : leg.open())).catch((e) => {
      if (leg.closed) return;
      if (e.status === 404 && query === 'view=composite') return this.note('error', `The SD view is not available: ${e.message}`, 'sd-error');
      if (e.status === 404) return undefined; // they left in the meantime: the next poll removes the tile
      this.note('warn', `Cannot receive ${r.tile.name}: ${joinMessage(e).text}`, `whep-error-${r.tile.key}`);
      r.leg = null;
      return undefined;
    });
  }

  // ------------------------------------------------------------------ HD / SD
  chooseMode(mode) {
    this.autoSd = false;
    this.governor.reset(mode, performance.now());
    this.clearNote('auto-sd');
    this.setMode(mode);
  }

  setMode(mode) {
    if (mode === this.mode) return;
    this.mode = mode;
    this.sdBtn.setAttribute('aria-pressed', String(mode === 'sd'));
    this.sdBtn.textContent = mode === 'sd' ? 'HD view' : 'SD view';
    this.grid.classList.toggle('sd', mode === 'sd');
    if (mode === 'sd') {
      for (const r of this.remotes.values()) { r.leg?.close(); r.leg = null; r.tile.el.remove(); r.tile.stream = new MediaStream(); }
      this.openComposite();
      announce('SD view: one composite video of the call');
    } else {
      this.closeComposite();
      for (const r of this.remotes.values()) this.grid.append(r.tile.el);
      for (const r of this.remotes.values()) this.openWhep(r, this.whepQuery(r));
      announce('HD view: every participant\'s video');
    }
  }

  // What a remote tile receives: the participant, a screen share at the chosen frame rate, a
  // camera at most as high as its tile shows it (the router sends the best simulcast layer that
  // fits: a small tile gets a small layer), and only while among the most active speakers when
  // the person chose so (lastn.js).
  whepQuery(r) {
    if (r.screen) return this.screenFps ? `participant=${r.pid}&max_fps=${this.screenFps}` : `participant=${r.pid}`;
    const height = r.tile.maxHeight();
    const base = height ? `participant=${r.pid}&max_height=${height}` : `participant=${r.pid}`;
    return withLastN(base, this.speakers, Boolean(this.whip));
  }

  // Video of everyone (0) or of the n most active speakers: the cameras' running sessions are
  // told (fitTiles).
  setSpeakers(n) {
    this.speakers = n;
    this.fitTiles();
    announce(n ? `Video of the ${n} most active speaker${n > 1 ? 's' : ''} only` : 'Video of everyone');
  }

  // The tiles' sizes settled after a change (a tile came or went, the window was resized), or
  // the speakers' choice changed: a camera whose session now asks for another max_height or
  // last_n tells its running session (a JSON PATCH; the steps in layers.js are a factor of 1.5-2
  // apart, so a new size is rare); a session that refuses it is replaced by a new one with it.
  fitTiles() {
    if (this.state !== 'in-call' || this.mode !== 'hd') return;
    for (const r of this.remotes.values()) {
      if (r.screen || !r.leg || this.reconnecting.has(r.leg)) continue;
      const query = this.whepQuery(r); const leg = r.leg;
      if (query === leg.query || query === leg.asking) continue;
      console.info(`corecast: ${leg.query} → ${query}: the tile's size or the speakers' choice changed`);
      leg.asking = query;
      const prefs = { max_height: r.tile.maxHeight() || 0, last_n: lastNFor(this.speakers, Boolean(this.whip)) };
      leg.setPreferences(prefs, query).then(() => {
        r.tile.el.dataset.maxHeight = new URLSearchParams(query).get('max_height') || ''; // what it asks for now
      }, () => {
        if (leg.closed || r.leg !== leg) return;
        leg.close();
        r.tile.stream = new MediaStream();
        this.settle(); // its video starts over at a key frame: no SD move for it
        this.openWhep(r, query);
      });
    }
  }

  // ------------------------------------------------------------------ screen share
  async toggleScreen() {
    if (this.screen) return this.stopScreen();
    this.clearNote('screen-error');
    this.shareBtn.disabled = true;
    const share = new ScreenShare({ callId: this.callId, name: this.user.name,
      onState: (leg, s) => this.legState(leg, s, 'your screen share'), onEnded: () => this.stopScreen() });
    try {
      await share.start();
      if (this.state !== 'in-call') { share.stop(); return undefined; }
      this.screen = share;
      this.grid.insertBefore(share.tile.el, this.selfTile.el.nextSibling);
      this.shareBtn.textContent = 'Stop sharing';
      this.shareBtn.setAttribute('aria-pressed', 'true');
      announce('You are sharing your screen');
    } catch (e) {
      const text = e instanceof DOMException ? screenProblem(e) : `Your screen could not be shared: ${joinMessage(e).text}`;
      this.note('warn', text, 'screen-error');
    } finally { this.shareBtn.disabled = false; }
    return undefined;
  }

  stopScreen() {
    if (!this.screen) return;
    this.screen.stop(); this.screen = null;
    this.shareBtn.textContent = 'Share screen';
    this.shareBtn.setAttribute('aria-pressed', 'false');
    announce('You stopped sharing your screen');
  }

  // The screen share's session is gone or unreachable: publish the same screen again.
  async reshare(old) {
    if (!this.screen || this.screen.leg !== old) return;
    this.reconnecting.add(old);
    try { await this.screen.publish(); } catch (e) {
      this.note('warn', `Your screen share stopped: ${joinMessage(e).text}`, 'screen-error');
      this.stopScreen();
    } finally { this.reconnecting.delete(old); }
  }

  // Others' screen shares at full rate or at most `fps` frames a second: their sessions are
  // opened again with the new `max_fps` (the router keeps the temporal layers that fit).
  setScreenFps(fps) {
    this.screenFps = fps;
    if (this.mode !== 'hd') return;
    for (const r of this.remotes.values()) {
      if (!r.screen) continue;
      r.leg?.close();
      r.tile.stream = new MediaStream();
      this.openWhep(r, this.whepQuery(r));
    }
    announce(fps ? `Screen shares at most ${fps} frames a second` : 'Screen shares at their full frame rate');
  }

  openComposite() {
    const tile = new Tile({ key: 'composite', name: 'Everyone (SD composite)' });
    this.composite = { tile, leg: null, prev: null };
    this.grid.append(tile.el);
    this.openWhep(this.composite, 'view=composite');
  }

  closeComposite() {
    if (!this.composite) return;
    this.composite.leg?.close(); this.composite.tile.remove(); this.composite = null;
    this.clearNote('sd-error');
  }

  // ------------------------------------------------------------------ stats, speakers, auto SD
  async sample() {
    if (this.state !== 'in-call') return;
    const now = performance.now();
    const legs = this.mode === 'sd' ? (this.composite ? [this.composite] : []) : [...this.remotes.values()];
    let lost = 0; let got = 0; const fps = []; let loudest = null;
    for (const r of legs) {
      if (!r.leg || !r.leg.pc) continue;
      const s = await inbound(r.leg.pc, r.prev);
      if (r.prev) {
        r.tile.setStats(s);
        lost += s.lost - r.prev.lost; got += s.packets - r.prev.packets;
        // A camera the router paused for the speakers' choice decodes nothing: shown as such.
        const connected = r.leg.pc.connectionState === 'connected';
        const camera = connected && r.tile.el.dataset.videoMuted !== 'true' && !r.screen;
        if (r !== this.composite) {
          r.pause = watchPause(r.pause, s.framesDecoded, now, camera && this.speakers > 0);
          r.tile.setPaused(r.pause.paused, this.speakers);
        }
        // A camera that is off or paused sends next to no frames, a screen share's rate follows
        // its content (and its cap): none is a stalled video.
        if (camera && s.framesDecoded > 0 && !r.pause?.paused) fps.push(s.fps);
        if (s.audioLevel > 0.02 && (!loudest || s.audioLevel > loudest.level)) loudest = { r, level: s.audioLevel };
      }
      r.prev = s;
    }
    for (const r of legs) r.tile.setSpeaking(loudest !== null && loudest.r === r && r.tile.el.dataset.audioMuted !== 'true');
    if (this.whip?.pc) {
      const s = await outbound(this.whip.pc, this.whipPrev);
      this.selfTile.setSent(s);
      this.selfTile.setSpeaking(!this.audioMuted && s.audioLevel > 0.05);
      this.whipPrev = s;
    }
    if (this.screen?.leg?.pc) this.screen.tile.setSent(await outbound(this.screen.leg.pc, null));
    if (this.composite && this.mode === 'sd' && !this.autoSd) return; // chosen by the person: no automatic change
    // Nothing at all arrived over any leg: the connection is lost (legState restarts ICE and says
    // so), which says nothing about whether the grid fits: no SD move for an outage, nor while a
    // leg reconnects and its video waits for a key frame just after.
    if ((got <= 0 && lost <= 0) || this.reconnecting.size || now < this.settleUntil) return;
    const lossPct = got + lost > 0 ? Math.round(1000 * Math.max(0, lost) / (got + lost)) / 10 : 0;
    const d = this.governor.feed({ lossPct, fps: this.mode === 'hd' ? fps : [], nowMs: now });
    if (!d.changed) return;
    if (d.mode === 'sd') {
      this.autoSd = true;
      this.setMode('sd');
      this.note('info', `Switched to the SD view: ${d.reason}, so the grid does not fit your network.`, 'auto-sd',
        button('Back to HD', () => this.chooseMode('hd'), { id: 'back-to-hd' }));
    } else {
      this.autoSd = false;
      this.setMode('hd');
      this.note('info', 'Back to the HD view: the network recovered.', 'auto-sd');
    }
  }

  // ------------------------------------------------------------------ leaving, ending
  closeLegs() {
    for (const r of this.remotes.values()) { r.leg?.close(); this.sizes.unwatch(r.tile); r.tile.remove(); }
    this.remotes.clear();
    this.closeComposite();
    this.stopScreen();
    this.whip?.close(); this.whip = null; this.whipPrev = null;
    this.mode = 'hd'; this.autoSd = false; this.governor = new QualityGovernor();
  }

  async leave() {
    this.finish('left');
  }

  async end() {
    try {
      await api('DELETE', `/v1/calls/${this.callId}`);
    } catch (e) {
      if (e.status !== 404) { this.note('error', `Could not end the call: ${e.message}`, 'end-error'); return; }
    }
    this.finish('ended-by-me');
  }

  // Out of the call: 'left' | 'ended' | 'ended-by-me' | 'removed'.
  finish(how) {
    if (this.state !== 'in-call') return;
    this.state = 'out';
    this.stopTimers();
    this.closeLegs();
    this.reconnecting.clear();
    const text = { left: 'You left the call', ended: 'The call has ended', 'ended-by-me': 'You ended the call',
      removed: 'You are no longer in this call' }[how];
    const again = how === 'left' || how === 'removed';
    const rejoin = button('Rejoin', async () => { await this.lobby(); }, { id: 'rejoin', class: 'primary' });
    show(h('section', { class: 'card narrow', id: how === 'ended' ? 'ended' : 'out' },
      h('h1', {}, text),
      how === 'ended' ? h('p', {}, 'The host ended it for everyone.') : null,
      h('div', { class: 'controls' }, again ? rejoin : null,
        h('a', { href: '/', 'data-nav': '', class: 'button' }, 'Back to the start page'))));
    announce(text);
    if (!again) this.stopMedia();
  }

  stopMedia() {
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    this.stream = null;
  }

  teardown() {
    this.stopTimers();
    this.sizes.stop();
    this.closeLegs();
    this.stopMedia();
    this.state = 'gone';
  }
}

Object.assign(CallPage.prototype, recovery);
