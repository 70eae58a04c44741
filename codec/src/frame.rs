//! 8-bit I420 (YUV 4:2:0 planar) frames and borrowed views of them.

/// One borrowed image plane.
#[derive(Debug, Clone, Copy)]
pub struct PlaneRef<'a> {
    /// Pixel rows, `stride` bytes apart; at least `stride * (height - 1) + width` bytes.
    pub data: &'a [u8],
    /// Bytes from one row to the next.
    pub stride: usize,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

impl PlaneRef<'_> {
    /// One row of pixels.
    pub fn row(&self, y: usize) -> &[u8] {
        &self.data[y * self.stride..y * self.stride + self.width]
    }

    /// Mean sample value over a rectangle (clipped to the plane).
    pub fn mean(&self, x: usize, y: usize, w: usize, h: usize) -> f64 {
        let x1 = (x + w).min(self.width);
        let y1 = (y + h).min(self.height);
        let mut sum = 0u64;
        let mut n = 0u64;
        for yy in y.min(y1)..y1 {
            let row = &self.row(yy)[x.min(x1)..x1];
            sum += row.iter().map(|&v| u64::from(v)).sum::<u64>();
            n += row.len() as u64;
        }
        if n == 0 {
            0.0
        } else {
            sum as f64 / n as f64
        }
    }
}

/// A borrowed I420 picture (from an [`I420Frame`] or a decoder's picture).
#[derive(Debug, Clone, Copy)]
pub struct YuvView<'a> {
    /// Luma.
    pub y: PlaneRef<'a>,
    /// Cb, half width and height (rounded up).
    pub u: PlaneRef<'a>,
    /// Cr, half width and height (rounded up).
    pub v: PlaneRef<'a>,
}

impl YuvView<'_> {
    /// Width of the picture.
    pub fn width(&self) -> usize {
        self.y.width
    }
    /// Height of the picture.
    pub fn height(&self) -> usize {
        self.y.height
    }
    /// Mean `(Y, U, V)` over a luma rectangle.
    pub fn mean_yuv(&self, x: usize, y: usize, w: usize, h: usize) -> (f64, f64, f64) {
        (self.y.mean(x, y, w, h), self.u.mean(x / 2, y / 2, w / 2, h / 2), self.v.mean(x / 2, y / 2, w / 2, h / 2))
    }
}

/// An owned, tightly packed 8-bit I420 frame.
#[derive(Clone, PartialEq, Eq)]
pub struct I420Frame {
    width: usize,
    height: usize,
    /// Luma, `width * height`.
    pub y: Vec<u8>,
    /// Cb, `chroma_width * chroma_height`.
    pub u: Vec<u8>,
    /// Cr, `chroma_width * chroma_height`.
    pub v: Vec<u8>,
}

impl std::fmt::Debug for I420Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "I420Frame({}x{})", self.width, self.height)
    }
}

/// Y, U, V of black in limited range.
pub const BLACK: (u8, u8, u8) = (16, 128, 128);

impl I420Frame {
    /// A black frame. Width and height must be even and non-zero.
    pub fn new(width: usize, height: usize) -> I420Frame {
        assert!(
            width > 0 && height > 0 && width.is_multiple_of(2) && height.is_multiple_of(2),
            "I420 needs even dimensions"
        );
        let c = (width / 2) * (height / 2);
        I420Frame { width, height, y: vec![BLACK.0; width * height], u: vec![BLACK.1; c], v: vec![BLACK.2; c] }
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }
    /// Bytes of all three planes.
    pub fn byte_len(&self) -> usize {
        self.y.len() + self.u.len() + self.v.len()
    }

    /// Fills the whole frame with one colour.
    pub fn fill(&mut self, (y, u, v): (u8, u8, u8)) {
        self.y.fill(y);
        self.u.fill(u);
        self.v.fill(v);
    }

    /// Fills a luma-aligned rectangle (x, y, w, h even) with one colour.
    pub fn fill_rect(&mut self, x: usize, y: usize, w: usize, h: usize, (cy, cu, cv): (u8, u8, u8)) {
        let (x1, y1) = ((x + w).min(self.width), (y + h).min(self.height));
        for row in y..y1 {
            self.y[row * self.width + x..row * self.width + x1].fill(cy);
        }
        let cw = self.width / 2;
        for row in y / 2..y1 / 2 {
            self.u[row * cw + x / 2..row * cw + x1 / 2].fill(cu);
            self.v[row * cw + x / 2..row * cw + x1 / 2].fill(cv);
        }
    }

    /// A borrowed view.
    pub fn view(&self) -> YuvView<'_> {
        let (cw, ch) = (self.width / 2, self.height / 2);
        YuvView {
            y: PlaneRef { data: &self.y, stride: self.width, width: self.width, height: self.height },
            u: PlaneRef { data: &self.u, stride: cw, width: cw, height: ch },
            v: PlaneRef { data: &self.v, stride: cw, width: cw, height: ch },
        }
    }

    /// Copies a view of the same size into this frame.
    pub fn copy_from(&mut self, src: &YuvView<'_>) {
        assert_eq!((src.width(), src.height()), (self.width, self.height));
        let (cw, ch) = (self.width / 2, self.height / 2);
        for r in 0..self.height {
            self.y[r * self.width..(r + 1) * self.width].copy_from_slice(src.y.row(r));
        }
        for r in 0..ch {
            self.u[r * cw..(r + 1) * cw].copy_from_slice(&src.u.row(r)[..cw]);
            self.v[r * cw..(r + 1) * cw].copy_from_slice(&src.v.row(r)[..cw]);
        }
    }
}

/// Converts 8-bit RGB to limited-range BT.601 `(Y, U, V)`.
pub fn rgb_to_yuv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let (r, g, b) = (f64::from(r), f64::from(g), f64::from(b));
    let y = 16.0 + 0.257 * r + 0.504 * g + 0.098 * b;
    let u = 128.0 - 0.148 * r - 0.291 * g + 0.439 * b;
    let v = 128.0 + 0.439 * r - 0.368 * g - 0.071 * b;
    (y.round().clamp(0.0, 255.0) as u8, u.round().clamp(0.0, 255.0) as u8, v.round().clamp(0.0, 255.0) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_and_mean() {
        let mut f = I420Frame::new(16, 8);
        f.fill_rect(8, 0, 8, 8, (200, 50, 60));
        let v = f.view();
        assert_eq!(v.mean_yuv(8, 0, 8, 8), (200.0, 50.0, 60.0));
        assert_eq!(v.mean_yuv(0, 0, 8, 8), (16.0, 128.0, 128.0));
        assert_eq!(v.y.mean(0, 0, 16, 8), 108.0);
    }

    #[test]
    fn rgb_conversion() {
        assert_eq!(rgb_to_yuv(0, 0, 0), (16, 128, 128));
        assert_eq!(rgb_to_yuv(255, 255, 255), (235, 128, 128));
        let (_, u, v) = rgb_to_yuv(255, 0, 0);
        assert!(v > 200 && u < 128);
    }
}
