// Tiny WAV writer for Chromium's fake microphone (--use-file-for-fake-audio-capture, which
// loops the file): 48 kHz mono 16-bit PCM. 'voice' is speech-like (a voiced buzz whose pitch
// wanders, its loudness pulsing at a syllable rate, so the browser's noise suppression does
// not take it for steady noise); 'silence' is all zeros.
import { mkdirSync, writeFileSync, existsSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function wavBytes(samples, rate = 48000) {
  const b = Buffer.alloc(44 + samples.length * 2);
  b.write('RIFF', 0); b.writeUInt32LE(36 + samples.length * 2, 4); b.write('WAVE', 8);
  b.write('fmt ', 12); b.writeUInt32LE(16, 16); b.writeUInt16LE(1, 20); b.writeUInt16LE(1, 22);
  b.writeUInt32LE(rate, 24); b.writeUInt32LE(rate * 2, 28); b.writeUInt16LE(2, 32); b.writeUInt16LE(16, 34);
  b.write('data', 36); b.writeUInt32LE(samples.length * 2, 40);
  samples.forEach((s, i) => b.writeInt16LE(Math.round(Math.max(-1, Math.min(1, s)) * 32767), 44 + i * 2));
  return b;
}

export function voiceSamples(seconds = 4, rate = 48000) {
  const out = new Float32Array(seconds * rate);
  let phase = 0;
  for (let i = 0; i < out.length; i++) {
    const t = i / rate;
    const f0 = 160 + 50 * Math.sin(2 * Math.PI * 0.5 * t) + 20 * Math.sin(2 * Math.PI * 1.7 * t); // whole periods over the loop
    phase += 2 * Math.PI * f0 / rate;
    let v = 0;
    for (let k = 1; k <= 6; k++) v += Math.sin(k * phase) / k;
    const envelope = 0.55 + 0.45 * Math.sin(2 * Math.PI * 4 * t); // 4 syllables a second, never silent
    out[i] = 0.35 * envelope * v;
  }
  return out;
}

// Writes (once) and returns the path of tmpdir()/corecast-browser-audio/<kind>.wav.
export function fakeAudio(kind) {
  const dir = join(tmpdir(), 'corecast-browser-audio'); mkdirSync(dir, { recursive: true });
  const file = join(dir, `${kind}-v1.wav`);
  if (!existsSync(file)) {
    const samples = kind === 'silence' ? new Float32Array(48000 * 2) : voiceSamples();
    writeFileSync(`${file}.${process.pid}.tmp`, wavBytes(samples));
    renameSync(`${file}.${process.pid}.tmp`, file);
  }
  return file;
}
