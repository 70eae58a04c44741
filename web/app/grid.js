// One video tile: the video, the person's name, muted badges, the network indicator and the
// active-speaker highlight. The numbers the indicator shows are also on the tile's data-*
// attributes (frames decoded, frame size), for people who inspect and for the tests.
import { h } from './ui.js';
import { grade, describe } from './stats.js';
import { tileMaxHeight } from './layers.js';

export class Tile {
  // key: what the tile shows (participant id, 'self', 'composite'); self: own preview (muted).
  constructor({ key, name, self = false }) {
    this.key = key;
    this.stream = new MediaStream();
    this.video = h('video', { autoplay: true, playsInline: true, muted: self, 'aria-hidden': 'true' });
    this.nameEl = h('span', { class: 'name' });
    this.badges = h('span', { class: 'badges' });
    this.net = h('span', { class: 'net', role: 'img' });
    this.play = h('button', { type: 'button', class: 'play', hidden: true, onclick: () => this.start() }, 'Play audio and video');
    this.el = h('figure', { class: `tile${self ? ' self' : ''}`, dataset: { participant: String(key) } },
      this.video, this.play, h('figcaption', {}, this.nameEl, this.badges, self ? null : this.net));
    this.setName(name);
    this.setMuted(false, false);
  }

  setName(name) {
    this.name = name;
    this.nameEl.textContent = name;
    this.el.dataset.name = name;
    this.el.setAttribute('aria-label', name);
  }

  // Badges for a muted microphone / camera (words, not only icons).
  setMuted(audio, video) {
    this.el.dataset.audioMuted = String(Boolean(audio));
    this.el.dataset.videoMuted = String(Boolean(video));
    this.badges.replaceChildren(
      audio ? h('span', { class: 'badge', title: 'Microphone muted' }, '🔇 muted') : '',
      video ? h('span', { class: 'badge', title: 'Camera off' }, '📷 off') : '');
    this.el.classList.toggle('camera-off', Boolean(video));
  }

  attachStream(stream) {
    this.video.srcObject = stream;
    this.start();
  }

  addTrack(track) {
    this.stream.addTrack(track);
    if (this.video.srcObject !== this.stream) this.video.srcObject = this.stream;
    this.start();
  }

  start() {
    this.video.play().then(() => { this.play.hidden = true; }, (e) => {
      // Autoplay with sound refused (no user gesture yet): offer a button.
      if (e && e.name === 'NotAllowedError') this.play.hidden = false;
    });
  }

  // s: an inbound() sample.
  setStats(s) {
    const g = grade(s);
    const text = describe(s);
    this.net.className = `net ${g}`;
    this.net.textContent = g;
    this.net.setAttribute('aria-label', `Connection ${g}: ${text}`);
    this.net.title = text;
    Object.assign(this.el.dataset, { framesDecoded: String(s.framesDecoded), frameWidth: String(s.width),
      frameHeight: String(s.height), kbps: String(s.kbps), lossPct: String(s.lossPct) });
  }

  // A new session for this tile: its numbers start over.
  resetStats() {
    this.setStats({ kbps: 0, lossPct: 0, width: 0, height: 0, fps: 0, framesDecoded: 0 });
    this.net.className = 'net'; this.net.textContent = '…'; this.net.setAttribute('aria-label', 'Connecting');
  }

  setSent(s) {
    Object.assign(this.el.dataset, { sentWidth: String(s.width), sentHeight: String(s.height), sentKbps: String(s.kbps),
      framesSent: String(s.framesSent), sentLayers: s.layers || '', sentSsrcs: s.layerSsrcs || '',
      availableKbps: String(s.availableKbps ?? ''), sentLimit: s.limit || '', sentCodec: s.codec || '' });
  }

  setSpeaking(on) { this.el.classList.toggle('speaking', on); this.el.dataset.speaking = String(on); }

  // The router paused this camera's video: the person is not among the `n` most active
  // speakers the viewer chose to see (lastn.js); their audio goes on.
  setPaused(on, n) {
    this.el.classList.toggle('paused', Boolean(on));
    this.el.dataset.paused = String(Boolean(on));
    this.pausedEl ??= this.el.insertBefore(h('p', { class: 'paused-note', hidden: true }), this.el.firstChild.nextSibling);
    this.pausedEl.hidden = !on;
    if (on) this.pausedEl.textContent = `Video paused: not among the ${n} most active speaker${n > 1 ? 's' : ''}`;
  }

  remove() { this.video.srcObject = null; this.el.remove(); }

  // The `max_height` this tile asks for: the device pixels it shows, rounded up to a step
  // (layers.js); null while it is not laid out.
  maxHeight() {
    return tileMaxHeight(this.el.getBoundingClientRect().height, globalThis.devicePixelRatio || 1);
  }
}

// Calls onChange() once the watched tiles' sizes have settled (settleMs after the last change):
// a tile came or went, the window was resized or rotated, the page zoomed.
export class SizeWatch {
  constructor(onChange, settleMs = 1000) {
    this.timer = null;
    this.ro = typeof ResizeObserver === 'function'
      ? new ResizeObserver(() => { clearTimeout(this.timer); this.timer = setTimeout(onChange, settleMs); }) : null;
  }

  watch(tile) { this.ro?.observe(tile.el); }

  unwatch(tile) { this.ro?.unobserve(tile.el); }

  stop() { clearTimeout(this.timer); this.ro?.disconnect(); }
}
