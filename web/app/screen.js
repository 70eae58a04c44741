// Screen share: the person's screen (getDisplayMedia) published as its own WHIP session
// (`?source=screen`: a participant of its own, role `screen`, in the call store), encoded with
// three temporal layers (scalabilityMode L1T3) so that the router can send fewer frames to a
// receiver that asks for them (WHEP `&max_fps=`), and a preview tile of what is shared.
import { Leg } from './webrtc.js';
import { Tile } from './grid.js';

// Temporal layers at 30 fps: 7.5, 15 and 30 frames per second (T0, T0+T1, all).
export const SCREEN_ENCODINGS = [{ scalabilityMode: 'L1T3', maxFramerate: 30 }];

// What a failed getDisplayMedia means to the person.
export function screenProblem(e) {
  switch (e && e.name) {
    case 'NotAllowedError': return 'Screen sharing was cancelled or is blocked for this site.';
    case 'NotFoundError': return 'There is no screen to share.';
    case 'NotReadableError': case 'AbortError': return 'The screen could not be captured (another application may hold it).';
    default: return `The screen could not be shared (${e && e.name ? e.name : e}).`;
  }
}

export class ScreenShare {
  // onState(leg, state): the leg's connection state; onEnded(): the person stopped sharing
  // from the browser's own control.
  constructor({ callId, name, onState, onEnded }) {
    Object.assign(this, { callId, onState, onEnded });
    this.stream = null; this.leg = null;
    this.tile = new Tile({ key: 'self-screen', name: `${name}'s screen (you)`, self: true });
    this.tile.el.classList.add('screen');
  }

  get participantId() { return this.leg?.participantId ?? null; }

  // Asks for a screen and publishes it; throws ApiError (from WHIP) or a DOMException.
  async start() {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 30, max: 30 } }, audio: false });
    const track = stream.getVideoTracks()[0];
    if ('contentHint' in track) track.contentHint = 'detail';
    track.addEventListener('ended', () => this.onEnded());
    this.stream = stream;
    this.tile.attachStream(stream);
    try {
      await this.publish();
    } catch (e) {
      this.stop();
      throw e;
    }
  }

  // A new WHIP session for the same screen (after a lost connection).
  async publish() {
    this.leg?.close();
    const leg = new Leg({ callId: this.callId, kind: 'whip', query: 'source=screen', stream: this.stream,
      kinds: ['video'], encodings: SCREEN_ENCODINGS, onState: (s) => this.onState(leg, s) });
    this.leg = leg;
    await leg.open();
  }

  stop() {
    this.leg?.close(); this.leg = null;
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    this.stream = null;
    this.tile.remove();
  }
}
