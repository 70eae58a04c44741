//! AV1 decoding with dav1d (Debian `libdav1d` through the `dav1d` crate).

use crate::frame::{PlaneRef, YuvView};
use crate::CodecError;

use dav1d::{PixelLayout, PlanarImageComponent as C};

/// A decoded 8-bit 4:2:0 picture (reference-counted by dav1d, not copied).
#[derive(Debug, Clone)]
pub struct Picture {
    pic: dav1d::Picture,
    y: dav1d::Plane,
    u: dav1d::Plane,
    v: dav1d::Plane,
}

impl Picture {
    fn new(pic: dav1d::Picture) -> Result<Picture, CodecError> {
        if pic.bit_depth() != 8 || pic.pixel_layout() != PixelLayout::I420 {
            return Err(CodecError::Unsupported("only 8-bit 4:2:0 AV1 is supported"));
        }
        let (y, u, v) = (pic.plane(C::Y), pic.plane(C::U), pic.plane(C::V));
        Ok(Picture { pic, y, u, v })
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.pic.width() as usize
    }
    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.pic.height() as usize
    }
    /// Timestamp given with the data.
    pub fn timestamp(&self) -> Option<i64> {
        self.pic.timestamp()
    }

    /// A borrowed view of the planes.
    pub fn view(&self) -> YuvView<'_> {
        let (w, h) = (self.width(), self.height());
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        YuvView {
            y: PlaneRef { data: &self.y, stride: self.pic.stride(C::Y) as usize, width: w, height: h },
            u: PlaneRef { data: &self.u, stride: self.pic.stride(C::U) as usize, width: cw, height: ch },
            v: PlaneRef { data: &self.v, stride: self.pic.stride(C::V) as usize, width: cw, height: ch },
        }
    }
}

/// One dav1d decoder, single-threaded, one frame of delay at most.
pub struct Decoder {
    dec: dav1d::Decoder,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decoder")
    }
}

impl Decoder {
    /// A decoder for low-latency use (1 thread, frame delay 1).
    pub fn new() -> Result<Decoder, CodecError> {
        let mut s = dav1d::Settings::new();
        s.set_n_threads(1);
        s.set_max_frame_delay(1);
        let dec = dav1d::Decoder::with_settings(&s).map_err(|e| CodecError::Decoder(e.to_string()))?;
        Ok(Decoder { dec })
    }

    /// Decodes one temporal unit (low-overhead OBU stream) and returns the
    /// picture it shows, if any.
    pub fn decode(&mut self, data: Vec<u8>, timestamp: i64) -> Result<Option<Picture>, CodecError> {
        let mut last = None;
        let mut r = self.dec.send_data(data, None, Some(timestamp), None);
        loop {
            match r {
                Ok(()) => break,
                Err(e) if e.is_again() => {
                    // The decoder wants its output taken before more input.
                    match self.dec.get_picture() {
                        Ok(p) => last = Some(Picture::new(p)?),
                        Err(e) if e.is_again() => {}
                        Err(e) => return Err(CodecError::Decoder(e.to_string())),
                    }
                    r = self.dec.send_pending_data();
                }
                Err(e) => return Err(CodecError::Decoder(e.to_string())),
            }
        }
        loop {
            match self.dec.get_picture() {
                Ok(p) => last = Some(Picture::new(p)?),
                Err(e) if e.is_again() => break,
                Err(e) => return Err(CodecError::Decoder(e.to_string())),
            }
        }
        Ok(last)
    }

    /// Drops all state (after a decode error or a stream restart).
    pub fn flush(&mut self) {
        self.dec.flush();
    }
}
