//! Drawing the test picture into I420 planes: no GStreamer, so it is tested and benchmarked
//! on its own.

/// A colour in limited-range BT.601 Y′CbCr, as I420 stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Yuv {
    /// Luma, 16–235.
    pub y: u8,
    /// Blue-difference chroma, 16–240.
    pub u: u8,
    /// Red-difference chroma, 16–240.
    pub v: u8,
}

impl Yuv {
    /// Converts `0xAARRGGBB` (alpha ignored) as videotestsrc's colour properties read it.
    pub fn from_argb(argb: u32) -> Self {
        let [_, r, g, b] = argb.to_be_bytes().map(i32::from);
        let y = (66 * r + 129 * g + 25 * b + 128) / 256 + 16;
        let u = (-38 * r - 74 * g + 112 * b + 128) / 256 + 128;
        let v = (112 * r - 94 * g - 18 * b + 128) / 256 + 128;
        let clamp = |value: i32| value.clamp(0, 255) as u8;
        Self {
            y: clamp(y),
            u: clamp(u),
            v: clamp(v),
        }
    }
}

/// Where the square is in frame `index`: its top-left corner and side, in pixels (even, so
/// chroma lines up). It follows a Lissajous path across the whole frame.
pub fn square_at(index: u64, width: usize, height: usize) -> (usize, usize, usize) {
    let side = (height / 6).max(2) & !1;
    let t = index as f64 / 60.0;
    let free_x = width.saturating_sub(side) as f64;
    let free_y = height.saturating_sub(side) as f64;
    let x = free_x * (0.5 + 0.5 * (t * 1.7).sin());
    let y = free_y * (0.5 + 0.5 * (t * 2.3).cos());
    ((x as usize) & !1, (y as usize) & !1, side)
}

/// Paints plane `component` (0 Y, 1 Cb, 2 Cr) of frame `index` of a `width × height` I420
/// picture: `background` everywhere, `foreground` in the moving square.
#[allow(clippy::too_many_arguments)] // one call per plane from the element, all plain values
pub fn paint_plane(
    plane: &mut [u8],
    stride: usize,
    component: usize,
    width: usize,
    height: usize,
    index: u64,
    background: Yuv,
    foreground: Yuv,
) {
    let (x, y, side) = square_at(index, width, height);
    let pick = |c: Yuv| match component {
        0 => c.y,
        1 => c.u,
        _ => c.v,
    };
    if component == 0 {
        fill_plane(
            plane,
            stride,
            width,
            height,
            pick(background),
            (x, y, side, side),
            pick(foreground),
        );
    } else {
        let square = (x / 2, y / 2, side / 2, side / 2);
        let (w, h) = (width.div_ceil(2), height.div_ceil(2));
        fill_plane(
            plane,
            stride,
            w,
            h,
            pick(background),
            square,
            pick(foreground),
        );
    }
}

/// Fills `width × height` of a plane with `value`, and the rectangle `(x, y, w, h)` (clipped)
/// with `inside`.
fn fill_plane(
    plane: &mut [u8],
    stride: usize,
    width: usize,
    height: usize,
    value: u8,
    (x, y, w, h): (usize, usize, usize, usize),
    inside: u8,
) {
    let x_end = (x + w).min(width);
    for (row_index, row) in plane.chunks_mut(stride.max(1)).take(height).enumerate() {
        let visible = width.min(row.len());
        let row = &mut row[..visible];
        row.fill(value);
        if (y..y + h).contains(&row_index) && x < x_end && x_end <= row.len() {
            row[x..x_end].fill(inside);
        }
    }
}
