//! Moving test patterns on a solid per-participant colour.

use crate::frame::{rgb_to_yuv, I420Frame};

/// Distinct, saturated colours for participants `0..` (RGB).
pub const PALETTE: [(u8, u8, u8); 9] = [
    (220, 40, 40),   // red
    (40, 180, 60),   // green
    (50, 80, 220),   // blue
    (230, 200, 40),  // yellow
    (200, 60, 200),  // magenta
    (40, 200, 210),  // cyan
    (240, 140, 30),  // orange
    (140, 90, 40),   // brown
    (150, 150, 150), // grey
];

/// The `(Y, U, V)` colour of participant `index` (wraps around the palette).
pub fn participant_colour(index: usize) -> (u8, u8, u8) {
    let (r, g, b) = PALETTE[index % PALETTE.len()];
    rgb_to_yuv(r, g, b)
}

/// Generates frames: a solid colour with a small square (1/8 of the height)
/// of contrasting luma moving across it, so every frame differs and the
/// encoder has motion to code, while the mean colour stays close to the
/// background.
#[derive(Debug)]
pub struct TestPattern {
    colour: (u8, u8, u8),
    frame: I420Frame,
    n: u64,
}

impl TestPattern {
    /// A pattern of `width` x `height` (even) on `colour` (Y, U, V).
    pub fn new(width: usize, height: usize, colour: (u8, u8, u8)) -> TestPattern {
        TestPattern { colour, frame: I420Frame::new(width, height), n: 0 }
    }

    /// The background colour.
    pub fn colour(&self) -> (u8, u8, u8) {
        self.colour
    }

    /// Draws and returns the next frame.
    pub fn next_frame(&mut self) -> &I420Frame {
        let (w, h) = (self.frame.width(), self.frame.height());
        self.frame.fill(self.colour);
        let side = (h / 8).max(2) & !1;
        let span_x = w.saturating_sub(side).max(1);
        let span_y = h.saturating_sub(side).max(1);
        let x = ((self.n as usize * 8) % span_x) & !1;
        let y = ((self.n as usize * 3) % span_y) & !1;
        let luma = if self.colour.0 > 128 { 16 } else { 235 };
        self.frame.fill_rect(x, y, side, side, (luma, 128, 128));
        self.n += 1;
        &self.frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_moves_and_keeps_colour() {
        let mut p = TestPattern::new(64, 48, participant_colour(0));
        let a = p.next_frame().clone();
        let b = p.next_frame().clone();
        assert_ne!(a, b);
        let (y, u, v) = b.view().mean_yuv(0, 0, 64, 48);
        let c = participant_colour(0);
        assert!((u - f64::from(c.1)).abs() < 8.0 && (v - f64::from(c.2)).abs() < 8.0, "{u} {v}");
        assert!((y - f64::from(c.0)).abs() < 10.0);
    }

    #[test]
    fn palette_colours_are_distinct() {
        for i in 0..PALETTE.len() {
            for j in i + 1..PALETTE.len() {
                let (a, b) = (participant_colour(i), participant_colour(j));
                let d = (i32::from(a.0) - i32::from(b.0)).abs()
                    + (i32::from(a.1) - i32::from(b.1)).abs()
                    + (i32::from(a.2) - i32::from(b.2)).abs();
                assert!(d >= 30, "{i} {j}: {a:?} {b:?}");
            }
        }
    }
}
