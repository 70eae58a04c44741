//! SVT-AV1 encoder (Debian `libsvtav1enc` 1.4.1 through `svt-av1-sys`).
//!
//! The only module of this crate with `unsafe` code. The encoder runs in
//! low-delay mode (`pred-struct 1`, no lookahead), CBR (`rc 2`): every
//! picture sent comes back as exactly one temporal unit, one picture later
//! (see [`Encoder::poll_frame`]).
#![allow(unsafe_code)]

use std::cell::Cell;
use std::ffi::CString;
use std::ptr;
use std::sync::Mutex;

use svt_av1_sys as sys;

use crate::frame::I420Frame;
use crate::CodecError;

/// `EbSvtIOFormat` from `EbSvtAv1.h` (not in the generated bindings).
#[repr(C)]
#[derive(Debug)]
struct EbSvtIoFormat {
    luma: *mut u8,
    cb: *mut u8,
    cr: *mut u8,
    luma_ext: *mut u8,
    cb_ext: *mut u8,
    cr_ext: *mut u8,
    y_stride: u32,
    cr_stride: u32,
    cb_stride: u32,
    width: u32,
    height: u32,
    origin_x: u32,
    origin_y: u32,
    color_fmt: u32,
    bit_depth: u32,
}

/// `EB_BUFFERFLAG_EOS` from `EbSvtAv1Enc.h`.
const EB_BUFFERFLAG_EOS: u32 = 0x0000_0001;
/// `EB_YUV420` of `EbColorFormat`.
const EB_YUV420: u32 = 1;
/// `EB_EIGHT_BIT` of `EbBitDepth`.
const EB_EIGHT_BIT: u32 = 8;

/// Encoder settings.
#[derive(Debug, Clone)]
pub struct EncoderConfig {
    /// Picture width (even, ≥ 64).
    pub width: usize,
    /// Picture height (even, ≥ 64).
    pub height: usize,
    /// Frames per second (for rate control).
    pub fps: u32,
    /// Target bitrate in kbit/s (CBR).
    pub bitrate_kbps: u32,
    /// SVT-AV1 preset (0 slowest ..= 13 fastest).
    pub preset: u8,
    /// Key frame interval in frames (keyframes are also forced on request).
    pub keyint: u32,
    /// Threads the encoder may use (SVT `lp`; 0 = all cores).
    pub threads: u32,
    /// Further `svt_av1_enc_parse_parameter` settings, applied last.
    pub extra: Vec<(String, String)>,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            width: 640,
            height: 360,
            fps: 30,
            bitrate_kbps: 600,
            preset: 12,
            keyint: 300,
            threads: 1,
            extra: Vec::new(),
        }
    }
}

/// One encoded temporal unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// Low-overhead OBU stream (with a temporal delimiter).
    pub data: Vec<u8>,
    /// Presentation timestamp as given to [`Encoder::encode`].
    pub pts: i64,
    /// The unit is a key frame.
    pub keyframe: bool,
}

/// An SVT-AV1 encoder instance: low delay, CBR, 8-bit 4:2:0.
#[derive(Debug)]
pub struct Encoder {
    handle: *mut sys::EbComponentType,
    width: usize,
    height: usize,
    /// Sequence header OBU (sized), inserted into key frames that lack one.
    seq_header: Vec<u8>,
    eos_sent: bool,
    config: EncoderConfig,
    in_flight: usize,
    sent: u64,
    restarts: u64,
    initialized: bool,
    pending: std::collections::VecDeque<EncodedFrame>,
}

// SAFETY: the SVT handle is not tied to the thread that created it; all
// calls go through `&mut self`, so it is never used from two threads at once.
unsafe impl Send for Encoder {}

/// SVT-AV1 1.4's handle set-up and tear-down touch process-wide state: an
/// encoder created while another is created or torn down on another thread
/// can crash inside `svt_av1_enc_init_handle` (seen as a SIGSEGV in its
/// `memset` when the codec tests ran encoders on parallel threads). Every
/// encoder's creation and destruction run under this lock; encoding does
/// not take it.
static LIFECYCLE: Mutex<()> = Mutex::new(());

thread_local! {
    /// This thread holds [`LIFECYCLE`] (an encoder dropped while another is
    /// being created on the same thread, on an error path, must not wait for it).
    static HOLDS_LIFECYCLE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` under [`LIFECYCLE`] (re-entrant on one thread).
fn lifecycle<R>(f: impl FnOnce() -> R) -> R {
    if HOLDS_LIFECYCLE.with(Cell::get) {
        return f();
    }
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            HOLDS_LIFECYCLE.with(|h| h.set(false));
        }
    }
    let _guard = LIFECYCLE.lock().unwrap_or_else(|e| e.into_inner());
    HOLDS_LIFECYCLE.with(|h| h.set(true));
    let _release = Release;
    f()
}

fn check(what: &'static str, r: sys::EbErrorType::Type) -> Result<(), CodecError> {
    if r == sys::EbErrorType::EB_ErrorNone {
        Ok(())
    } else {
        Err(CodecError::Encoder { what, code: r as i64 })
    }
}

impl Encoder {
    /// Creates and initializes an encoder (one at a time in the process: see [`LIFECYCLE`]).
    pub fn new(cfg: &EncoderConfig) -> Result<Encoder, CodecError> {
        lifecycle(|| Encoder::create(cfg))
    }

    fn create(cfg: &EncoderConfig) -> Result<Encoder, CodecError> {
        if cfg.width < 64 || cfg.height < 64 || !cfg.width.is_multiple_of(2) || !cfg.height.is_multiple_of(2) {
            return Err(CodecError::Unsupported("encoder size must be even and at least 64x64"));
        }
        let mut handle: *mut sys::EbComponentType = ptr::null_mut();
        // SAFETY: the configuration is plain data (integers, bools, raw
        // pointers) for which all-zero is a valid value; init_handle fills it.
        let mut config: sys::EbSvtAv1EncConfiguration = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are valid for writes; on success the library
        // owns `handle` until `svt_av1_enc_deinit_handle`.
        check("init_handle", unsafe { sys::svt_av1_enc_init_handle(&mut handle, ptr::null_mut(), &mut config) })?;
        let mut enc = Encoder {
            handle,
            width: cfg.width,
            height: cfg.height,
            seq_header: Vec::new(),
            eos_sent: true,
            config: cfg.clone(),
            in_flight: 0,
            sent: 0,
            restarts: 0,
            initialized: false,
            pending: std::collections::VecDeque::new(),
        };
        let params = [
            ("preset", cfg.preset.to_string()),
            ("width", cfg.width.to_string()),
            ("height", cfg.height.to_string()),
            ("fps-num", cfg.fps.to_string()),
            ("fps-denom", "1".to_string()),
            ("input-depth", "8".to_string()),
            ("rc", "2".to_string()),
            ("tbr", cfg.bitrate_kbps.to_string()),
            ("pred-struct", "1".to_string()),
            ("lookahead", "0".to_string()),
            ("keyint", cfg.keyint.to_string()),
            ("lp", cfg.threads.to_string()),
            ("scd", "0".to_string()),
        ];
        let extra = cfg.extra.iter().map(|(k, v)| (k.as_str(), v.clone()));
        for (name, value) in params.iter().map(|(k, v)| (*k, v.clone())).chain(extra) {
            let n = CString::new(name).map_err(|_| CodecError::Unsupported("NUL in parameter"))?;
            let v = CString::new(value).map_err(|_| CodecError::Unsupported("NUL in parameter"))?;
            // SAFETY: `config` is a valid configuration and both strings are
            // NUL-terminated and outlive the call.
            let r = unsafe { sys::svt_av1_enc_parse_parameter(&mut config, n.as_ptr(), v.as_ptr()) };
            if r != sys::EbErrorType::EB_ErrorNone {
                tracing::warn!(name, "SVT-AV1 rejected parameter");
                return Err(CodecError::Encoder { what: "parse_parameter", code: r as i64 });
            }
        }
        // SAFETY: `enc.handle` is a live handle from init_handle and `config`
        // a valid configuration; the library copies it.
        check("set_parameter", unsafe { sys::svt_av1_enc_set_parameter(enc.handle, &mut config) })?;
        // SAFETY: live handle with parameters set.
        check("init", unsafe { sys::svt_av1_enc_init(enc.handle) })?;
        enc.initialized = true;
        enc.eos_sent = false;

        let mut hdr: *mut sys::EbBufferHeaderType = ptr::null_mut();
        // SAFETY: live, initialized handle; `hdr` receives a buffer we release below.
        check("stream_header", unsafe { sys::svt_av1_enc_stream_header(enc.handle, &mut hdr) })?;
        if !hdr.is_null() {
            // SAFETY: on success `hdr` points to a buffer header whose
            // `p_buffer` holds `n_filled_len` bytes until it is released.
            let bytes = unsafe { buffer_bytes(hdr) };
            enc.seq_header = extract_seq_header(bytes);
            // SAFETY: `hdr` came from svt_av1_enc_stream_header and is released once.
            unsafe { sys::svt_av1_enc_stream_header_release(hdr) };
        }
        Ok(enc)
    }

    /// Picture width.
    pub fn width(&self) -> usize {
        self.width
    }
    /// Picture height.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Sends one picture (same size as the encoder); take its unit with
    /// [`Encoder::poll_frame`]. `force_keyframe` makes it a key frame.
    ///
    /// SVT-AV1 1.4.1 only forces key frames in random-access CRF/CQP mode,
    /// so in low-delay CBR a forced key frame finishes the running encoder
    /// (its held unit stays available from [`Encoder::poll_frame`]) and
    /// starts a new one with the same settings, so the sequence header is
    /// unchanged. That costs an encoder start; callers should coalesce
    /// requests.
    pub fn send_frame(&mut self, frame: &I420Frame, pts: i64, force_keyframe: bool) -> Result<(), CodecError> {
        if frame.width() != self.width || frame.height() != self.height {
            return Err(CodecError::Unsupported("frame size differs from encoder size"));
        }
        if force_keyframe && self.sent > 0 {
            let held = self.finish()?;
            let pending = std::mem::take(&mut self.pending);
            *self = Encoder::new(&self.config)?;
            self.pending = pending;
            self.pending.extend(held);
            self.restarts += 1;
        }
        if self.eos_sent {
            return Err(CodecError::Unsupported("encoder is finished"));
        }
        let cw = (self.width / 2) as u32;
        let mut io = EbSvtIoFormat {
            luma: frame.y.as_ptr().cast_mut(),
            cb: frame.u.as_ptr().cast_mut(),
            cr: frame.v.as_ptr().cast_mut(),
            luma_ext: ptr::null_mut(),
            cb_ext: ptr::null_mut(),
            cr_ext: ptr::null_mut(),
            y_stride: self.width as u32,
            cr_stride: cw,
            cb_stride: cw,
            width: self.width as u32,
            height: self.height as u32,
            origin_x: 0,
            origin_y: 0,
            color_fmt: EB_YUV420,
            bit_depth: EB_EIGHT_BIT,
        };
        // SAFETY: the header is plain data for which all-zero is valid.
        let mut hdr: sys::EbBufferHeaderType = unsafe { std::mem::zeroed() };
        hdr.size = std::mem::size_of::<sys::EbBufferHeaderType>() as u32;
        hdr.p_buffer = (&mut io as *mut EbSvtIoFormat).cast();
        hdr.n_filled_len = frame.byte_len() as u32;
        hdr.n_alloc_len = hdr.n_filled_len;
        hdr.pts = pts;
        hdr.pic_type = sys::EbAv1PictureType::EB_AV1_INVALID_PICTURE;
        // SAFETY: live handle; `hdr` and `io` point to valid data for the
        // duration of the call, and the library copies the picture (the
        // planes are only read) before returning.
        check("send_picture", unsafe { sys::svt_av1_enc_send_picture(self.handle, &mut hdr) })?;
        self.in_flight += 1;
        self.sent += 1;
        Ok(())
    }

    /// Pictures sent whose units have not been taken yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight + self.pending.len()
    }

    /// Times a forced key frame restarted the encoder.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Takes the next encoded unit, in order.
    ///
    /// Even in low-delay mode SVT-AV1 1.4.1 holds one picture: the unit of
    /// picture N comes out once picture N+1 has been sent (or on
    /// [`Encoder::finish`]). With `block`, waits for a unit when one is
    /// certain to come (at least two pictures in flight), so it never hangs.
    pub fn poll_frame(&mut self, block: bool) -> Result<Option<EncodedFrame>, CodecError> {
        if let Some(f) = self.pending.pop_front() {
            return Ok(Some(f));
        }
        if self.in_flight == 0 || self.eos_sent {
            return Ok(None);
        }
        let block = block && self.in_flight >= 2;
        Ok(self.get_packet(block)?.filter(|f| !f.data.is_empty()).map(Unit::into_frame))
    }

    /// Ends the stream and returns every unit still held. The encoder
    /// cannot take pictures afterwards.
    pub fn finish(&mut self) -> Result<Vec<EncodedFrame>, CodecError> {
        let mut out: Vec<EncodedFrame> = self.pending.drain(..).collect();
        if self.eos_sent {
            return Ok(out);
        }
        // SVT-AV1 1.4.1 posts no EOS packet for a stream without pictures, and
        // its deinit then waits for one forever: give it one blank picture,
        // whose unit is discarded.
        let empty = self.sent == 0;
        if empty {
            self.send_frame(&crate::frame::I420Frame::new(self.width, self.height), 0, false)?;
        }
        // SAFETY: all-zero header is valid; an EOS buffer carries no picture.
        let mut hdr: sys::EbBufferHeaderType = unsafe { std::mem::zeroed() };
        hdr.size = std::mem::size_of::<sys::EbBufferHeaderType>() as u32;
        hdr.flags = EB_BUFFERFLAG_EOS;
        hdr.pic_type = sys::EbAv1PictureType::EB_AV1_INVALID_PICTURE;
        // SAFETY: live handle; `hdr` is valid for the call.
        check("send_picture(EOS)", unsafe { sys::svt_av1_enc_send_picture(self.handle, &mut hdr) })?;
        self.eos_sent = true;
        // After EOS a blocking get returns every unit, the last one flagged EOS.
        loop {
            match self.get_packet(true)? {
                Some(f) if f.eos => {
                    if !f.data.is_empty() {
                        out.push(f.into_frame());
                    }
                    break;
                }
                Some(f) => out.push(f.into_frame()),
                None => break,
            }
        }
        self.in_flight = 0;
        if empty {
            out.clear();
        }
        Ok(out)
    }

    fn get_packet(&mut self, block: bool) -> Result<Option<Unit>, CodecError> {
        let mut out: *mut sys::EbBufferHeaderType = ptr::null_mut();
        // SAFETY: live handle; `out` receives a buffer we release below.
        let r = unsafe { sys::svt_av1_enc_get_packet(self.handle, &mut out, u8::from(block)) };
        if r == sys::EbErrorType::EB_NoErrorEmptyQueue || out.is_null() {
            return Ok(None);
        }
        check("get_packet", r)?;
        // SAFETY: `out` is a valid output buffer until released below.
        let (pic_type, flags, pts) = unsafe { ((*out).pic_type, (*out).flags, (*out).pts) };
        // SAFETY: as above; the bytes are copied before the release.
        let mut data = unsafe { buffer_bytes(out) }.to_vec();
        // SAFETY: `out` came from get_packet and is released exactly once.
        unsafe { sys::svt_av1_enc_release_out_buffer(&mut out) };
        self.in_flight = self.in_flight.saturating_sub(1);
        let has_seq = crate::av1::starts_sequence(&data);
        let keyframe = !data.is_empty() && (pic_type == sys::EbAv1PictureType::EB_AV1_KEY_PICTURE || has_seq);
        if keyframe && !has_seq {
            data = insert_seq_header(&data, &self.seq_header);
        }
        Ok(Some(Unit { data, pts, keyframe, eos: flags & EB_BUFFERFLAG_EOS != 0 }))
    }
}

struct Unit {
    data: Vec<u8>,
    pts: i64,
    keyframe: bool,
    eos: bool,
}

impl Unit {
    fn into_frame(self) -> EncodedFrame {
        EncodedFrame { data: self.data, pts: self.pts, keyframe: self.keyframe }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        if !self.handle.is_null() {
            if !self.eos_sent {
                // Drain so the library's threads are idle before deinit.
                let _ = self.finish();
            }
            let (handle, initialized) = (self.handle, self.initialized);
            lifecycle(|| {
                if initialized {
                    // SAFETY: live, initialized handle; deinit once.
                    unsafe { sys::svt_av1_enc_deinit(handle) };
                }
                // SAFETY: the handle came from init_handle and is not used after this.
                unsafe { sys::svt_av1_enc_deinit_handle(handle) };
            });
        }
    }
}

/// The filled bytes of an SVT buffer.
///
/// # Safety
/// `b` must point to a valid buffer header whose `p_buffer` holds at least
/// `n_filled_len` bytes, and the result must not outlive the buffer.
unsafe fn buffer_bytes<'a>(b: *const sys::EbBufferHeaderType) -> &'a [u8] {
    // SAFETY: guaranteed by the caller.
    let (p, n) = unsafe { ((*b).p_buffer, (*b).n_filled_len as usize) };
    if p.is_null() || n == 0 {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(p, n) }
    }
}

/// The sequence header OBU (sized) of a low-overhead stream, or empty.
fn extract_seq_header(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for obu in crate::av1::obus(b).flatten() {
        if obu.obu_type() == crate::av1::OBU_SEQUENCE_HEADER {
            obu.write_sized(&mut out);
            break;
        }
    }
    out
}

/// Inserts `seq` after a leading temporal delimiter (or at the start).
fn insert_seq_header(tu: &[u8], seq: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(tu.len() + seq.len());
    let td = &crate::av1::TEMPORAL_DELIMITER;
    if tu.starts_with(td) {
        out.extend_from_slice(td);
        out.extend_from_slice(seq);
        out.extend_from_slice(&tu[td.len()..]);
    } else {
        out.extend_from_slice(seq);
        out.extend_from_slice(tu);
    }
    out
}
