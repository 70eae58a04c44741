//! Grid layouts and the compositor that draws sources into one frame.

use crate::frame::{I420Frame, YuvView, BLACK};
use crate::scale::scale_into;

/// Most sources a layout shows.
pub const MAX_CELLS: usize = 9;

/// A rectangle in the output frame (all values even).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left edge.
    pub x: usize,
    /// Top edge.
    pub y: usize,
    /// Width.
    pub w: usize,
    /// Height.
    pub h: usize,
}

/// Columns and rows of the grid for `n` sources (1..=9).
pub fn grid_shape(n: usize) -> (usize, usize) {
    match n {
        0 | 1 => (1, 1),
        2 => (2, 1),
        3 | 4 => (2, 2),
        5 | 6 => (3, 2),
        _ => (3, 3),
    }
}

fn even(v: usize) -> usize {
    v & !1
}

/// The grid cells for `n` sources (clamped to 1..=9) in a `width` x
/// `height` frame, in reading order. Cells are equal; a short last row is
/// centred.
pub fn grid_cells(n: usize, width: usize, height: usize) -> Vec<Rect> {
    let n = n.clamp(1, MAX_CELLS);
    let (cols, rows) = grid_shape(n);
    let cw = even(width / cols);
    let ch = even(height / rows);
    let x0 = even((width - cw * cols) / 2);
    let y0 = even((height - ch * rows) / 2);
    let mut cells = Vec::with_capacity(n);
    for i in 0..n {
        let (r, c) = (i / cols, i % cols);
        let in_row = (n - r * cols).min(cols);
        let shift = even((cols - in_row) * cw / 2);
        cells.push(Rect { x: x0 + shift + c * cw, y: y0 + r * ch, w: cw, h: ch });
    }
    cells
}

/// The largest rectangle of the source's aspect ratio centred in `cell`.
pub fn fit(cell: Rect, src_w: usize, src_h: usize) -> Rect {
    if src_w == 0 || src_h == 0 {
        return cell;
    }
    // Compare cell.w / cell.h with src_w / src_h.
    let (w, h) = if cell.w * src_h > cell.h * src_w {
        (even(cell.h * src_w / src_h), cell.h)
    } else {
        (cell.w, even(cell.w * src_h / src_w))
    };
    let (w, h) = (w.max(2), h.max(2));
    Rect { x: cell.x + even((cell.w - w) / 2), y: cell.y + even((cell.h - h) / 2), w, h }
}

/// Draws up to nine sources into a grid frame.
#[derive(Debug)]
pub struct Compositor {
    out: I420Frame,
}

impl Compositor {
    /// A compositor with a `width` x `height` output (even values).
    pub fn new(width: usize, height: usize) -> Compositor {
        Compositor { out: I420Frame::new(width, height) }
    }

    /// The output frame as last composed.
    pub fn frame(&self) -> &I420Frame {
        &self.out
    }

    /// Composes `sources` (in cell order; `None` draws a black cell) into the
    /// output frame, letterboxed to keep each source's aspect ratio.
    pub fn compose(&mut self, sources: &[Option<YuvView<'_>>]) -> &I420Frame {
        let (w, h) = (self.out.width(), self.out.height());
        self.out.fill(BLACK);
        let cells = grid_cells(sources.len(), w, h);
        let out = &mut self.out;
        for (cell, src) in cells.iter().zip(sources) {
            let Some(src) = src else { continue };
            let r = fit(*cell, src.width(), src.height());
            scale_into(src, (&mut out.y, &mut out.u, &mut out.v), w, (r.x, r.y, r.w, r.h));
        }
        &self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_cover_one_to_nine() {
        for n in 1..=9 {
            let cells = grid_cells(n, 640, 360);
            assert_eq!(cells.len(), n);
            for (i, a) in cells.iter().enumerate() {
                assert!(a.x + a.w <= 640 && a.y + a.h <= 360, "{n} {a:?}");
                assert!(a.x % 2 == 0 && a.y % 2 == 0 && a.w % 2 == 0 && a.h % 2 == 0);
                for b in &cells[i + 1..] {
                    let overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
                    assert!(!overlap, "{n}: {a:?} {b:?}");
                }
            }
        }
        assert_eq!(grid_cells(4, 640, 360)[3], Rect { x: 320, y: 180, w: 320, h: 180 });
        // Three sources: the last one centred on the second row.
        assert_eq!(grid_cells(3, 640, 360)[2], Rect { x: 160, y: 180, w: 320, h: 180 });
    }

    #[test]
    fn fit_letterboxes() {
        let cell = Rect { x: 0, y: 0, w: 320, h: 360 };
        assert_eq!(fit(cell, 1280, 720), Rect { x: 0, y: 90, w: 320, h: 180 });
        let cell = Rect { x: 0, y: 0, w: 320, h: 180 };
        assert_eq!(fit(cell, 1280, 720), cell);
    }

    #[test]
    fn compose_four_colours() {
        let colours = [(81, 90, 240), (145, 54, 34), (41, 240, 110), (210, 16, 146)];
        let frames: Vec<I420Frame> = colours
            .iter()
            .map(|&c| {
                let mut f = I420Frame::new(64, 36);
                f.fill(c);
                f
            })
            .collect();
        let views: Vec<Option<YuvView<'_>>> = frames.iter().map(|f| Some(f.view())).collect();
        let mut comp = Compositor::new(640, 360);
        let out = comp.compose(&views).view();
        for (cell, c) in grid_cells(4, 640, 360).iter().zip(colours) {
            let (y, u, v) = out.mean_yuv(cell.x, cell.y, cell.w, cell.h);
            assert_eq!((y, u, v), (f64::from(c.0), f64::from(c.1), f64::from(c.2)));
        }
    }
}
