//! Plane scaling: bilinear, in fixed point (16.16 positions, 8-bit weights).

use crate::frame::{PlaneRef, YuvView};

/// A mutable destination rectangle inside a plane.
#[derive(Debug)]
pub struct PlaneMut<'a> {
    /// Plane bytes.
    pub data: &'a mut [u8],
    /// Bytes from one row to the next.
    pub stride: usize,
    /// Left edge of the rectangle.
    pub x: usize,
    /// Top edge of the rectangle.
    pub y: usize,
    /// Rectangle width.
    pub width: usize,
    /// Rectangle height.
    pub height: usize,
}

/// Scales `src` into the destination rectangle.
///
/// Each output pixel is the bilinear interpolation of the four source
/// pixels around its centre. Equal sizes are a plain copy.
pub fn scale_plane(src: &PlaneRef<'_>, dst: &mut PlaneMut<'_>) {
    if dst.width == 0 || dst.height == 0 || src.width == 0 || src.height == 0 {
        return;
    }
    if src.width == dst.width && src.height == dst.height {
        for r in 0..dst.height {
            let o = (dst.y + r) * dst.stride + dst.x;
            dst.data[o..o + dst.width].copy_from_slice(src.row(r));
        }
        return;
    }
    // Source step per destination pixel in 16.16.
    let sx = ((src.width as u64) << 16) / dst.width as u64;
    let sy = ((src.height as u64) << 16) / dst.height as u64;
    let max_x = (src.width - 1) as u64;
    let max_y = (src.height - 1) as u64;
    // Horizontal sample positions are the same for every row.
    let xs: Vec<(usize, usize, u32)> = (0..dst.width as u64)
        .map(|dx| {
            let fx = (dx * sx + sx / 2).saturating_sub(1 << 15);
            let x0 = (fx >> 16).min(max_x);
            let x1 = (x0 + 1).min(max_x);
            (x0 as usize, x1 as usize, (fx & 0xffff) as u32 >> 8)
        })
        .collect();
    for dy in 0..dst.height as u64 {
        let fy = (dy * sy + sy / 2).saturating_sub(1 << 15);
        let y0 = (fy >> 16).min(max_y) as usize;
        let y1 = (y0 + 1).min(max_y as usize);
        let wy = ((fy & 0xffff) as u32) >> 8;
        let r0 = src.row(y0);
        let r1 = src.row(y1);
        let o = (dst.y + dy as usize) * dst.stride + dst.x;
        let out = &mut dst.data[o..o + dst.width];
        for (d, &(x0, x1, wx)) in out.iter_mut().zip(&xs) {
            let a = u32::from(r0[x0]) * (256 - wx) + u32::from(r0[x1]) * wx;
            let b = u32::from(r1[x0]) * (256 - wx) + u32::from(r1[x1]) * wx;
            *d = ((a * (256 - wy) + b * wy + (1 << 15)) >> 16) as u8;
        }
    }
}

/// Scales an I420 view into a luma rectangle `(x, y, w, h)` (all even) of
/// three destination planes of a frame `frame_w` pixels wide.
pub fn scale_into(
    src: &YuvView<'_>,
    (dy, du, dv): (&mut [u8], &mut [u8], &mut [u8]),
    frame_w: usize,
    (x, y, w, h): (usize, usize, usize, usize),
) {
    scale_plane(&src.y, &mut PlaneMut { data: dy, stride: frame_w, x, y, width: w, height: h });
    let cw = frame_w / 2;
    scale_plane(&src.u, &mut PlaneMut { data: du, stride: cw, x: x / 2, y: y / 2, width: w / 2, height: h / 2 });
    scale_plane(&src.v, &mut PlaneMut { data: dv, stride: cw, x: x / 2, y: y / 2, width: w / 2, height: h / 2 });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::I420Frame;

    #[test]
    fn flat_stays_flat_and_gradient_is_monotonic() {
        let mut src = I420Frame::new(64, 36);
        src.fill((100, 90, 80));
        for (i, v) in src.y.iter_mut().enumerate() {
            *v = (i % 64 * 4) as u8;
        }
        let mut dst = I420Frame::new(32, 18);
        let (w, h) = (dst.width(), dst.height());
        scale_into(&src.view(), (&mut dst.y, &mut dst.u, &mut dst.v), w, (0, 0, w, h));
        assert!(dst.u.iter().all(|&v| v == 90) && dst.v.iter().all(|&v| v == 80));
        let row = &dst.y[..32];
        assert!(row.windows(2).all(|p| p[0] <= p[1]), "{row:?}");
        // Mean is kept (within rounding at the edges).
        let ms = src.view().y.mean(0, 0, 64, 36);
        let md = dst.view().y.mean(0, 0, 32, 18);
        assert!((ms - md).abs() < 3.0, "{ms} {md}");
    }

    #[test]
    fn upscale_into_rect() {
        let mut src = I420Frame::new(4, 4);
        src.fill((200, 10, 20));
        let mut dst = I420Frame::new(16, 16);
        scale_into(&src.view(), (&mut dst.y, &mut dst.u, &mut dst.v), 16, (8, 8, 8, 8));
        let v = dst.view();
        assert_eq!(v.mean_yuv(8, 8, 8, 8), (200.0, 10.0, 20.0));
        assert_eq!(v.mean_yuv(0, 0, 8, 8), (16.0, 128.0, 128.0));
    }
}
