// WHIP (publish) and WHEP (receive) sessions against the calls service, as in
// tests/browser/pages/peer.js: one RTCPeerConnection each, no ICE servers (the router is
// ICE-lite and answers with all its candidates), the offer sent once ICE gathering is
// complete (3 s at most), the answer set from the 201. PATCH with If-Match: "*" restarts ICE
// (RFC 9725 §4.4.2); DELETE ends the session (the participant leaves).
import { ApiError, errorOf, networkError, session } from './api.js';

// Video codecs in this order first: the codec pool composites AV1 sources.
const VIDEO_ORDER = ['video/av1', 'video/vp8', 'video/h264'];

// A viewer offers the Dependency Descriptor (not in Chromium's default offer): a publisher's
// scalable video (several spatial layers in one stream) then reaches it layer by layer, which
// Chromium decodes only with the descriptor (without it the router sends the base layer only).
function offerDependencyDescriptor(tr) {
  if (!tr.getHeaderExtensionsToNegotiate || !tr.setHeaderExtensionsToNegotiate) return;
  const exts = tr.getHeaderExtensionsToNegotiate();
  for (const e of exts) if (/dependency-descriptor/.test(e.uri)) e.direction = 'sendrecv';
  try { tr.setHeaderExtensionsToNegotiate(exts); } catch { /* this browser keeps its own list */ }
}

function preferCodecs(transceiver) {
  if (!transceiver.setCodecPreferences || !RTCRtpReceiver.getCapabilities) return;
  const caps = RTCRtpReceiver.getCapabilities('video').codecs;
  const rank = (c) => { const i = VIDEO_ORDER.indexOf(c.mimeType.toLowerCase()); return i < 0 ? VIDEO_ORDER.length : i; };
  try { transceiver.setCodecPreferences([...caps].sort((a, b) => rank(a) - rank(b))); } catch { /* browser default */ }
}

function gathered(pc, ms) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve(true);
  return new Promise((ok) => {
    const t = setTimeout(() => ok(false), ms);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') { clearTimeout(t); ok(true); }
    });
  });
}

const attr = (sdp, name) => {
  const l = sdp.split(/\r?\n/).find((x) => x.startsWith(`a=${name}:`));
  return l ? l.slice(name.length + 3).trim() : null;
};

// One WHIP or WHEP session. kind: 'whip' (stream: the camera and microphone, or with
// query 'source=screen' a screen share) or 'whep' (query: 'participant=<id>[&max_fps=<n>]' or
// 'view=composite'). kinds: the m-lines a WHIP session sends; encodings: the video's
// sendEncodings (a camera's simulcast layers, layers.js; a screen share's temporal layers).
// onTrack(track, streams), onState(state).
export class Leg {
  constructor({ callId, kind, stream = null, query = '', kinds = ['audio', 'video'], encodings = undefined,
    onTrack = () => {}, onState = () => {} }) {
    Object.assign(this, { callId, kind, stream, query, kinds, encodings, onTrack, onState });
    this.pc = null; this.location = null; this.participantId = null; this.closed = false;
  }

  get url() {
    return `/v1/calls/${encodeURIComponent(this.callId)}/${this.kind}${this.query ? `?${this.query}` : ''}`;
  }

  // Opens the session; throws ApiError (status 404: the call is gone, 409 call_full, …).
  async open() {
    const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle' });
    this.pc = pc;
    pc.addEventListener('connectionstatechange', () => this.onState(pc.connectionState));
    pc.addEventListener('track', (e) => this.onTrack(e.track, e.streams));
    if (this.kind === 'whip') {
      for (const kind of this.kinds) {
        const track = this.stream && this.stream.getTracks().find((t) => t.kind === kind);
        const init = { direction: 'sendonly', streams: this.stream ? [this.stream] : [] };
        if (kind === 'video' && this.encodings) init.sendEncodings = this.encodings;
        const tr = pc.addTransceiver(track || kind, init);
        if (kind === 'video') preferCodecs(tr);
      }
    } else {
      pc.addTransceiver('audio', { direction: 'recvonly' });
      offerDependencyDescriptor(pc.addTransceiver('video', { direction: 'recvonly' }));
    }
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, 3000);
    let r;
    try {
      r = await fetch(this.url, { method: 'POST', body: pc.localDescription.sdp, signal: AbortSignal.timeout(15000),
        headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${session.get()}` } });
    } catch (e) { pc.close(); throw networkError(e); }
    if (r.status !== 201) { pc.close(); throw await errorOf(r); }
    const answer = await r.text();
    const loc = r.headers.get('Location');
    this.location = loc ? new URL(loc, location.href).pathname : null;
    this.participantId = r.headers.get('X-Participant-Id');
    if (this.closed) { this.close(); throw new ApiError(0, 'closed', 'closed'); }
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    return this;
  }

  // ICE restart: new local credentials, sent as a fragment; the router answers with its own.
  // Throws on refusal (the caller then opens a new session).
  async restartIce() {
    const pc = this.pc;
    if (!pc || !this.location) throw new ApiError(0, 'closed', 'no session');
    const offer = await pc.createOffer({ iceRestart: true });
    await pc.setLocalDescription(offer);
    await gathered(pc, 3000);
    const sdp = pc.localDescription.sdp;
    const frag = `a=ice-ufrag:${attr(sdp, 'ice-ufrag')}\r\na=ice-pwd:${attr(sdp, 'ice-pwd')}\r\n` +
      sdp.split(/\r?\n/).filter((l) => l.startsWith('a=candidate:')).map((l) => `${l}\r\n`).join('');
    let r;
    try {
      r = await fetch(this.location, { method: 'PATCH', body: frag, signal: AbortSignal.timeout(10000),
        headers: { 'Content-Type': 'application/trickle-ice-sdpfrag', 'If-Match': '"*"', Authorization: `Bearer ${session.get()}` } });
    } catch (e) { throw networkError(e); }
    if (r.status !== 200) throw await errorOf(r);
    const answerFrag = await r.text();
    const ufrag = attr(answerFrag, 'ice-ufrag'); const pwd = attr(answerFrag, 'ice-pwd');
    if (!ufrag || !pwd) throw new ApiError(r.status, 'bad_answer', 'the ICE restart answer has no credentials');
    const remote = pc.remoteDescription.sdp
      .replace(/a=ice-ufrag:.*/g, `a=ice-ufrag:${ufrag}`).replace(/a=ice-pwd:.*/g, `a=ice-pwd:${pwd}`);
    await pc.setRemoteDescription({ type: 'answer', sdp: remote });
  }

  // A WHEP session's new preferences while it plays ({ max_height, max_fps, last_n }: 0 lifts
  // one): the router applies them to the running session (no new negotiation, no key frame
  // wait for a smaller layer). Throws on refusal (the caller then opens a new session).
  async setPreferences(prefs, query) {
    if (!this.location || this.closed) throw new ApiError(0, 'closed', 'no session');
    let r;
    try {
      r = await fetch(this.location, { method: 'PATCH', body: JSON.stringify(prefs), signal: AbortSignal.timeout(10000),
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${session.get()}` } });
    } catch (e) { throw networkError(e); }
    if (r.status !== 204) throw await errorOf(r);
    this.query = query;
  }

  // Ends the session (best effort: the router's silence timeout removes it otherwise).
  close() {
    if (this.closed) return;
    this.closed = true;
    if (this.location) {
      fetch(this.location, { method: 'DELETE', keepalive: true,
        headers: { Authorization: `Bearer ${session.get()}` } }).catch(() => {});
    }
    if (this.pc) this.pc.close();
  }
}

// Camera and microphone, with what failed: { stream, problems: ['camera: …'] }. Whatever
// works is used: a blocked camera still lets the person be heard.
export async function getMedia() {
  const video = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
  try {
    return { stream: await navigator.mediaDevices.getUserMedia({ audio: true, video }), problems: [] };
  } catch (both) {
    const problems = [];
    const tracks = [];
    for (const [name, c] of [['microphone', { audio: true }], ['camera', { video }]]) {
      try { tracks.push(...(await navigator.mediaDevices.getUserMedia(c)).getTracks()); } catch (e) { problems.push(mediaProblem(name, e)); }
    }
    if (!navigator.mediaDevices) problems.splice(0, problems.length, 'This page cannot use a camera or microphone (it needs https or localhost).');
    return { stream: tracks.length ? new MediaStream(tracks) : null, problems, error: both };
  }
}

function mediaProblem(device, e) {
  switch (e && e.name) {
    case 'NotAllowedError': case 'SecurityError':
      return `Your ${device} is blocked. Allow it for this site in the browser's settings (the icon in the address bar), then choose "Try again".`;
    case 'NotFoundError': case 'OverconstrainedError':
      return `No ${device} was found.`;
    case 'NotReadableError': case 'AbortError':
      return `Your ${device} is in use by another application, or it failed to start.`;
    default:
      return `Your ${device} could not be started (${e && e.name ? e.name : e}).`;
  }
}
