// The test peer driven by webrtc-e2e.mjs through page.evaluate(() => cc.…).
// No ICE servers (hermetic); every wait is bounded.
'use strict';
const cc = (() => {
  let pc = null;
  let stream = null;
  let tAnswer = null; let tConnected = null; let tGather = null;
  const log = [];
  const note = (s) => { log.push(`${(performance.now() / 1000).toFixed(3)} ${s}`); console.log(s); };

  function newPc() {
    pc = new RTCPeerConnection({ iceServers: [] });
    pc.addEventListener('connectionstatechange', () => {
      note(`connection ${pc.connectionState}`);
      if (pc.connectionState === 'connected' && tConnected === null) tConnected = performance.now();
    });
    pc.addEventListener('iceconnectionstatechange', () => note(`ice ${pc.iceConnectionState}`));
    pc.addEventListener('track', (e) => {
      note(`track ${e.track.kind} mid=${e.transceiver && e.transceiver.mid}`);
      const v = document.getElementById('v');
      if (!v.srcObject) v.srcObject = new MediaStream();
      v.srcObject.addTrack(e.track);
      v.play().catch((err) => note(`play: ${err}`));
    });
    return pc;
  }

  // Video codecs in this order first (mime types, lower case), then the rest as offered.
  // only: offer just those (and RTX, RED, ULPFEC), so that the answerer cannot pick another.
  function preferCodecs(tr, order, only = false) {
    if (!order || !order.length || !tr.setCodecPreferences || !RTCRtpReceiver.getCapabilities) return null;
    let caps = RTCRtpReceiver.getCapabilities('video').codecs;
    if (only) caps = caps.filter((c) => order.includes(c.mimeType.toLowerCase()) || /\/(rtx|red|ulpfec)$/i.test(c.mimeType));
    const rank = (c) => { const i = order.indexOf(c.mimeType.toLowerCase()); return i < 0 ? order.length : i; };
    const sorted = [...caps].sort((a, b) => rank(a) - rank(b));
    tr.setCodecPreferences(sorted);
    return sorted[0].mimeType;
  }

  async function gathered(ms) {
    if (pc.iceGatheringState === 'complete') return true;
    return new Promise((ok) => {
      const t = setTimeout(() => ok(false), ms);
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') { clearTimeout(t); ok(true); }
      });
    });
  }

  async function offer(gatherMs) {
    const t = performance.now();
    await pc.setLocalDescription(await pc.createOffer());
    const complete = await gathered(gatherMs);
    tGather = Math.round(performance.now() - t);
    note(`offer ready (gathering ${complete ? 'complete' : 'timed out'} after ${tGather} ms)`);
    return pc.localDescription.sdp;
  }

  function canvasTrack(width, height) {
    const c = document.createElement('canvas');
    c.width = width; c.height = height;
    const g = c.getContext('2d');
    let n = 0;
    setInterval(() => {
      n++;
      g.fillStyle = '#335'; g.fillRect(0, 0, width, height);
      g.fillStyle = '#eee'; g.fillRect((n * 8) % width, 0, 32, height);
      g.font = `${Math.round(height / 6)}px sans-serif`; g.fillText(String(n), width / 10, height / 2);
    }, 33);
    return c.captureStream(30).getVideoTracks()[0];
  }

  return {
    log: () => log.slice(),

    // A publisher: camera + microphone, sendonly; returns the offer SDP.
    // simulcast: sendEncodings ({rid, scaleResolutionDownBy, maxBitrate}, lowest first) for the video.
    // scalabilityMode: one encoding with spatial/temporal layers (SVC, e.g. 'L3T3'; AV1 or VP9).
    // canvas: the video is a canvas drawn here (a moving bar and a counter: cheap to encode, so
    // the encoder keeps every layer from the start instead of skipping some until its
    // bandwidth estimate has ramped up); the microphone still comes from getUserMedia.
    async publisher({ width = 640, height = 360, codecs = [], onlyCodecs = false, gatherMs = 3000, simulcast = null,
      scalabilityMode = null, canvas = false } = {}) {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: true, video: canvas ? false : { width: { exact: width }, height: { exact: height }, frameRate: 30 } });
      if (canvas) stream.addTrack(canvasTrack(width, height));
      newPc();
      pc.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendonly', streams: [stream] });
      const vt = pc.addTransceiver(stream.getVideoTracks()[0], { direction: 'sendonly', streams: [stream],
        ...(simulcast ? { sendEncodings: simulcast } : scalabilityMode ? { sendEncodings: [{ scalabilityMode }] } : {}) });
      const first = preferCodecs(vt, codecs, onlyCodecs);
      // The resolution check compares sent and received sizes: do not let CPU adaptation scale.
      const p = vt.sender.getParameters();
      p.degradationPreference = 'maintain-resolution';
      try { await vt.sender.setParameters(p); } catch (e) { note(`setParameters: ${e}`); }
      note(`publisher ${width}x${height}, preferred ${first || 'browser default'}`);
      return { sdp: await offer(gatherMs), preferred: first };
    },

    // A viewer: recvonly audio + video; returns the offer SDP.
    // codecs, onlyCodecs: as for publisher() (the router answers a viewer with its own preference, AV1 first,
    // whatever the publisher sends: a viewer of a VP8 publisher offers VP8 only).
    // dd: also offer the Dependency Descriptor (not in Chromium's default offer; a page that
    // decrypts end-to-end encrypted frames needs it to assemble them).
    async viewer({ gatherMs = 3000, codecs = [], onlyCodecs = false, dd = false } = {}) {
      newPc();
      pc.addTransceiver('audio', { direction: 'recvonly' });
      const vt = pc.addTransceiver('video', { direction: 'recvonly' });
      preferCodecs(vt, codecs, onlyCodecs);
      if (dd) {
        const exts = vt.getHeaderExtensionsToNegotiate();
        for (const e of exts) if (/dependency-descriptor/.test(e.uri)) e.direction = 'sendrecv';
        vt.setHeaderExtensionsToNegotiate(exts);
      }
      return { sdp: await offer(gatherMs) };
    },

    // The answering end of the self test's loopback call: takes an offer, returns the answer.
    async answerer(offerSdp, { gatherMs = 3000 } = {}) {
      newPc();
      await pc.setRemoteDescription({ type: 'offer', sdp: offerSdp });
      await pc.setLocalDescription(await pc.createAnswer());
      await gathered(gatherMs);
      return pc.localDescription.sdp;
    },

    async answer(sdp) { tAnswer = performance.now(); await pc.setRemoteDescription({ type: 'answer', sdp }); note('answer set'); },

    // Milliseconds: ICE gathering for the offer; answer set -> peer connection connected.
    timings() {
      return { gatherMs: tGather, connectMs: tAnswer !== null && tConnected !== null ? Math.round(tConnected - tAnswer) : null };
    },

    // WHIP/WHEP from the page: POST the offer, set the answer. Returns what the server said.
    async signal(url, token, sdp, timeoutMs = 10000) {
      const ac = new AbortController();
      const t = setTimeout(() => ac.abort(), timeoutMs);
      let r;
      try {
        r = await fetch(url, { method: 'POST', body: sdp, signal: ac.signal,
          headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${token}` } });
      } catch (e) {
        return { error: `fetch ${url}: ${e} (a CORS refusal looks like this too: calls must allow this origin ` +
          'and expose Location and X-Participant-Id)' };
      } finally { clearTimeout(t); }
      const body = await r.text();
      const out = { status: r.status, location: r.headers.get('Location'),
        participantId: r.headers.get('X-Participant-Id'), contentType: r.headers.get('Content-Type'), body };
      if (r.status === 201) await this.answer(body);
      return out;
    },

    async waitConnected(ms) {
      const t0 = performance.now();
      while (performance.now() - t0 < ms) {
        if (pc.connectionState === 'connected') return { ok: true, ms: Math.round(performance.now() - t0), ...this.timings() };
        if (pc.connectionState === 'failed') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      return { ok: false, state: pc.connectionState, ice: pc.iceConnectionState };
    },

    // The numbers the checks use, from getStats().
    async stats() {
      const s = { ts: performance.now(), state: pc ? pc.connectionState : 'none' };
      if (!pc) return s;
      const r = await pc.getStats();
      const codecs = {};
      r.forEach((x) => { if (x.type === 'codec') codecs[x.id] = x.mimeType; });
      r.forEach((x) => {
        if (x.type === 'outbound-rtp' && x.kind === 'video') {
          // Simulcast: one per layer (`rid`); outVideo is the busiest.
          (s.outVideos = s.outVideos || []).push({ rid: x.rid, ssrc: x.ssrc, bytesSent: x.bytesSent,
            framesEncoded: x.framesEncoded, frameWidth: x.frameWidth, frameHeight: x.frameHeight,
            active: x.active, targetBitrate: x.targetBitrate, qualityLimitationReason: x.qualityLimitationReason,
            encoder: x.encoderImplementation, codec: codecs[x.codecId], timestamp: x.timestamp });
          if (s.outVideo && (s.outVideo.bytesSent ?? 0) >= (x.bytesSent ?? 0)) return;
          s.outVideo = { bytesSent: x.bytesSent, packetsSent: x.packetsSent, framesEncoded: x.framesEncoded,
            framesSent: x.framesSent, frameWidth: x.frameWidth, frameHeight: x.frameHeight,
            framesPerSecond: x.framesPerSecond, targetBitrate: x.targetBitrate, nackCount: x.nackCount,
            pliCount: x.pliCount, qualityLimitationReason: x.qualityLimitationReason, scalabilityMode: x.scalabilityMode,
            encoder: x.encoderImplementation, codec: codecs[x.codecId], timestamp: x.timestamp };
        } else if (x.type === 'outbound-rtp' && x.kind === 'audio') {
          s.outAudio = { bytesSent: x.bytesSent, packetsSent: x.packetsSent, ssrc: x.ssrc, codec: codecs[x.codecId] };
        } else if (x.type === 'inbound-rtp' && x.kind === 'video') {
          s.inVideo = { framesDecoded: x.framesDecoded, framesReceived: x.framesReceived, framesDropped: x.framesDropped,
            keyFramesDecoded: x.keyFramesDecoded, frameWidth: x.frameWidth, frameHeight: x.frameHeight,
            framesPerSecond: x.framesPerSecond, bytesReceived: x.bytesReceived, packetsReceived: x.packetsReceived,
            packetsLost: x.packetsLost, nackCount: x.nackCount, pliCount: x.pliCount, freezeCount: x.freezeCount,
            totalFreezesDuration: x.totalFreezesDuration, jitterBufferDelay: x.jitterBufferDelay,
            jitterBufferEmittedCount: x.jitterBufferEmittedCount, decoder: x.decoderImplementation, codec: codecs[x.codecId], timestamp: x.timestamp };
        } else if (x.type === 'inbound-rtp' && x.kind === 'audio') {
          const a = { packetsReceived: x.packetsReceived, bytesReceived: x.bytesReceived, packetsLost: x.packetsLost,
            ssrc: x.ssrc, totalSamplesReceived: x.totalSamplesReceived, concealedSamples: x.concealedSamples,
            silentConcealedSamples: x.silentConcealedSamples, totalAudioEnergy: x.totalAudioEnergy,
            audioLevel: x.audioLevel, codec: codecs[x.codecId] };
          // Every inbound audio stream (one per SSRC); `inAudio` is the busiest.
          (s.inAudios = s.inAudios || []).push(a);
          if (!s.inAudio || (a.packetsReceived ?? 0) > (s.inAudio.packetsReceived ?? 0)) s.inAudio = a;
        } else if (x.type === 'media-source' && x.kind === 'audio') {
          s.sourceAudio = { audioLevel: x.audioLevel, totalAudioEnergy: x.totalAudioEnergy };
        } else if (x.type === 'candidate-pair' && x.nominated && x.state === 'succeeded') {
          s.pair = { rtt: x.currentRoundTripTime, availableOutgoingBitrate: x.availableOutgoingBitrate,
            availableIncomingBitrate: x.availableIncomingBitrate, bytesReceived: x.bytesReceived };
        }
      });
      const v = document.getElementById('v');
      if (v && v.srcObject) s.element = { videoWidth: v.videoWidth, videoHeight: v.videoHeight, paused: v.paused };
      return s;
    },

    // The audio receivers' RTP sources: the SSRC playing and the CSRCs in its packets (a mixer's sources).
    audioSources() {
      if (!pc) return [];
      return pc.getReceivers().filter((r) => r.track && r.track.kind === 'audio').map((r) => ({
        ssrcs: r.getSynchronizationSources().map((x) => x.source),
        csrcs: r.getContributingSources().map((x) => x.source),
      }));
    },

    close() { if (pc) pc.close(); if (stream) stream.getTracks().forEach((t) => t.stop()); },
  };
})();
window.cc = cc;
