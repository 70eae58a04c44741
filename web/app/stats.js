// What getStats() says about one leg, as rates since the previous sample.

// Receive side of a WHEP leg: { kbps, lossPct, width, height, fps, framesDecoded, audioLevel }.
export async function inbound(pc, prev) {
  const out = { ts: performance.now(), bytes: 0, packets: 0, lost: 0, width: 0, height: 0, fps: 0,
    framesDecoded: 0, audioLevel: 0, kbps: 0, lossPct: 0 };
  if (!pc || pc.connectionState === 'closed') return out;
  const report = await pc.getStats();
  report.forEach((x) => {
    if (x.type !== 'inbound-rtp') return;
    out.bytes += x.bytesReceived || 0;
    out.packets += x.packetsReceived || 0;
    out.lost += Math.max(0, x.packetsLost || 0);
    if (x.kind === 'video') {
      out.width = x.frameWidth || 0; out.height = x.frameHeight || 0;
      out.fps = x.framesPerSecond || 0; out.framesDecoded = x.framesDecoded || 0;
    } else if (x.kind === 'audio') {
      out.audioLevel = x.audioLevel || 0;
    }
  });
  if (prev) {
    const dt = (out.ts - prev.ts) / 1000;
    if (dt > 0) out.kbps = Math.max(0, Math.round((out.bytes - prev.bytes) * 8 / dt / 1000));
    const got = out.packets - prev.packets; const lost = out.lost - prev.lost;
    out.lossPct = got + lost > 0 ? Math.max(0, Math.round(1000 * lost / (got + lost)) / 10) : 0;
  }
  return out;
}

// Send side of a WHIP leg: { kbps, width, height, fps, framesSent, audioLevel, availableKbps,
// layers, layerSsrcs, limit, codec }. Of a simulcast camera, the size, rate and frames are the top layer's (the largest
// sent) and layers lists each encoding sending frames, lowest first ('q:160x90 h:320x180 …'),
// layerSsrcs their SSRCs.
export async function outbound(pc, prev) {
  const out = { ts: performance.now(), bytes: 0, width: 0, height: 0, fps: 0, framesSent: 0, audioLevel: 0, kbps: 0, availableKbps: null, layers: '', layerSsrcs: '', limit: '', codec: '' };
  if (!pc || pc.connectionState === 'closed') return out;
  const report = await pc.getStats();
  const layers = [];
  report.forEach((x) => {
    if (x.type === 'outbound-rtp') {
      out.bytes += x.bytesSent || 0;
      if (x.kind === 'video' && (x.frameHeight || 0) >= out.height) {
        out.width = x.frameWidth || 0; out.height = x.frameHeight || 0; out.fps = x.framesPerSecond || 0; out.framesSent = x.framesSent || 0;
      }
      if (x.kind === 'video') { out.limit = x.qualityLimitationReason || out.limit; out.codec = report.get(x.codecId)?.mimeType || out.codec; }
      if (x.kind === 'video' && x.rid && x.framesSent > 0) layers.push({ rid: x.rid, w: x.frameWidth || 0, h: x.frameHeight || 0, ssrc: x.ssrc });
    } else if (x.type === 'media-source' && x.kind === 'audio') {
      out.audioLevel = x.audioLevel || 0;
    } else if (x.type === 'candidate-pair' && x.nominated && x.state === 'succeeded' && x.availableOutgoingBitrate) {
      out.availableKbps = Math.round(x.availableOutgoingBitrate / 1000);
    }
  });
  layers.sort((a, b) => a.h - b.h);
  out.layers = layers.map((l) => `${l.rid}:${l.w}x${l.h}`).join(' ');
  out.layerSsrcs = layers.map((l) => l.ssrc).join(' ');
  if (prev) {
    const dt = (out.ts - prev.ts) / 1000;
    if (dt > 0) out.kbps = Math.max(0, Math.round((out.bytes - prev.bytes) * 8 / dt / 1000));
  }
  return out;
}

// 'good' | 'fair' | 'poor' for the indicator's colour and words.
export function grade({ lossPct, fps, kbps }) {
  if (lossPct >= 8 || (kbps < 30)) return 'poor';
  if (lossPct >= 2 || (fps > 0 && fps < 15)) return 'fair';
  return 'good';
}

export function describe(s) {
  const res = s.width ? `${s.width}×${s.height}` : 'no video';
  return `${s.kbps} kbps, ${s.lossPct}% loss, ${res}${s.fps ? ` @ ${Math.round(s.fps)} fps` : ''}`;
}
