//! Rendering the output with Smithay's pixman renderer straight into caller-owned CPU memory
//! (a mapped `gst::Buffer`), with the pointer cursor composited on top.
//!
//! Every rendered frame is drawn in full (buffer age 0), because each target buffer comes from a
//! pool whose previous contents this module does not track. A second damage tracker, which never
//! draws, tells whether anything changed since the previous request (of any consumer:
//! `handle::consumer` hands a frame rendered for one to the others), so unchanged frames cost
//! nothing and the caller can repeat its last buffer.

use smithay::{
    backend::renderer::element::AsRenderElements,
    backend::{
        allocator::Fourcc,
        renderer::{
            damage::OutputDamageTracker,
            element::{
                Kind,
                memory::{MemoryRenderBuffer, MemoryRenderBufferRenderElement},
                surface::{WaylandSurfaceRenderElement, render_elements_from_surface_tree},
            },
            pixman::PixmanRenderer,
        },
    },
    input::pointer::{CursorImageStatus, CursorImageSurfaceData},
    output::Output,
    utils::{Physical, Point, Scale, Transform},
    wayland::compositor::with_states,
};

use smithay::reexports::pixman;

use crate::state::State;

/// Clear colour behind the windows (opaque black).
const CLEAR_COLOR: [f32; 4] = [0.0, 0.0, 0.0, 1.0];
/// Size of the built-in arrow cursor.
const ARROW_SIZE: (i32, i32) = (12, 19);

smithay::backend::renderer::element::render_elements! {
    /// Everything drawn into a frame.
    pub(crate) FrameElement<=PixmanRenderer>;
    Surface=WaylandSurfaceRenderElement<PixmanRenderer>,
    Cursor=MemoryRenderBufferRenderElement<PixmanRenderer>,
}

/// Errors rendering a frame.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The target memory is smaller than `stride * height` or its stride is too small.
    #[error("target memory too small: {len} bytes, stride {stride}, {width}x{height}")]
    TargetTooSmall {
        /// Bytes available.
        len: usize,
        /// Row stride in bytes.
        stride: usize,
        /// Output width.
        width: i32,
        /// Output height.
        height: i32,
    },
    /// The target memory is not 4-byte aligned.
    #[error("target memory is not 4-byte aligned")]
    Unaligned,
    /// The target `gst::Buffer` could not be mapped writable.
    #[error("target buffer is not writable")]
    NotWritable,
    /// pixman failed.
    #[error("pixman rendering failed: {0}")]
    Pixman(String),
}

/// The renderer and the damage trackers of one output.
pub(crate) struct FrameRenderer {
    renderer: PixmanRenderer,
    /// Draws every frame in full.
    drawer: OutputDamageTracker,
    /// Never draws: only tells whether anything changed since the last request.
    detector: OutputDamageTracker,
    arrow: MemoryRenderBuffer,
    /// Whether a frame has been produced since the start (the first is always "changed").
    produced: bool,
}

impl FrameRenderer {
    /// Creates the trackers for `output`.
    pub(crate) fn new(renderer: PixmanRenderer, output: &Output) -> Self {
        Self {
            renderer,
            drawer: OutputDamageTracker::from_output(output),
            detector: OutputDamageTracker::from_output(output),
            arrow: arrow_cursor(),
            produced: false,
        }
    }
}

impl State {
    /// Collects the frame's elements, front to back.
    fn frame_elements(&mut self) -> Vec<FrameElement> {
        let scale = Scale::from(1.0);
        let mut elements = Vec::new();
        let pointer: Point<i32, Physical> = self.pointer_location.to_physical(1.0).to_i32_round();
        match &self.cursor_status {
            CursorImageStatus::Hidden => {}
            CursorImageStatus::Named(_) => {
                match MemoryRenderBufferRenderElement::from_buffer(
                    &mut self.frames.renderer,
                    pointer.to_f64(),
                    &self.frames.arrow,
                    None,
                    None,
                    None,
                    Kind::Cursor,
                ) {
                    Ok(element) => elements.push(FrameElement::Cursor(element)),
                    Err(err) => tracing::debug!(?err, "cannot import the cursor"),
                }
            }
            CursorImageStatus::Surface(surface) => {
                let hotspot = with_states(surface, |states| {
                    states
                        .data_map
                        .get::<CursorImageSurfaceData>()
                        .and_then(|d| d.lock().ok().map(|a| a.hotspot))
                        .unwrap_or_default()
                });
                let location = pointer - hotspot.to_physical(1);
                elements.extend(
                    render_elements_from_surface_tree(
                        &mut self.frames.renderer,
                        surface,
                        location,
                        scale,
                        1.0,
                        Kind::Cursor,
                    )
                    .into_iter()
                    .map(FrameElement::Surface),
                );
            }
        }
        for (window, render_loc) in self.windows_top_down() {
            let location = render_loc.to_physical(1);
            let surface_elements: Vec<WaylandSurfaceRenderElement<PixmanRenderer>> =
                match self.legacy_x11_surface(&window) {
                    Some(surface) => render_elements_from_surface_tree(
                        &mut self.frames.renderer,
                        &surface,
                        location,
                        scale,
                        1.0,
                        Kind::Unspecified,
                    ),
                    None => window.render_elements(&mut self.frames.renderer, location, scale, 1.0),
                };
            elements.extend(surface_elements.into_iter().map(FrameElement::Surface));
        }
        elements
    }

    /// Whether the frame differs from the one seen at the previous call.
    pub(crate) fn frame_changed(&mut self) -> bool {
        let elements = self.frame_elements();
        let changed = match self.frames.detector.damage_output(1, &elements) {
            Ok((damage, _)) => damage.is_some_and(|d| !d.is_empty()),
            Err(_) => true,
        };
        changed || !self.frames.produced
    }

    /// Draws the whole output into `dst`, BGRx (`x8r8g8b8` little endian), rows `stride` bytes
    /// apart.
    pub(crate) fn render_into(&mut self, dst: &mut [u8], stride: usize) -> Result<(), RenderError> {
        let (width, height) = self.size;
        let too_small = RenderError::TargetTooSmall {
            len: dst.len(),
            stride,
            width,
            height,
        };
        let (Ok(w), Ok(h)) = (usize::try_from(width), usize::try_from(height)) else {
            return Err(too_small);
        };
        let needed = stride.checked_mul(h).ok_or(RenderError::Unaligned)?;
        if stride < w.saturating_mul(4) || dst.len() < needed || !stride.is_multiple_of(4) {
            return Err(too_small);
        }
        let pixels = dst.get_mut(..needed).ok_or(RenderError::Unaligned)?;
        // SAFETY: reinterpreting initialised bytes as u32 is sound for any bit pattern;
        // `align_to_mut` only yields the aligned middle part.
        let (prefix, words, _) = unsafe { pixels.align_to_mut::<u32>() };
        if !prefix.is_empty() {
            return Err(RenderError::Unaligned);
        }
        // SAFETY: `words` covers `stride * height` bytes (checked above) and stays borrowed until
        // the end of this function; the image is dropped before it returns, and the renderer
        // only borrows the bound image for the duration of `render_output`.
        let mut image = unsafe {
            pixman::Image::from_raw_mut(
                pixman::FormatCode::X8R8G8B8,
                w,
                h,
                words.as_mut_ptr(),
                stride,
                false,
            )
        }
        .map_err(|_| RenderError::Pixman("cannot wrap the target memory".into()))?;

        let elements = self.frame_elements();
        let frames = &mut self.frames;
        let result = {
            use smithay::backend::renderer::Bind;
            let mut target = frames
                .renderer
                .bind(&mut image)
                .map_err(|e| RenderError::Pixman(e.to_string()))?;
            frames
                .drawer
                .render_output(&mut frames.renderer, &mut target, 0, &elements, CLEAR_COLOR)
                .map(|_| ())
                .map_err(|e| RenderError::Pixman(format!("{e:?}")))
        };
        drop(image);
        frames.produced = true;
        result
    }
}

/// A white arrow with a black outline, hotspot at its tip (0, 0), premultiplied ARGB.
fn arrow_cursor() -> MemoryRenderBuffer {
    let (w, h) = ARROW_SIZE;
    let inside = |x: i32, y: i32| -> bool {
        if !(0..w).contains(&x) || !(0..h).contains(&y) {
            return false;
        }
        // The head: a triangle whose right edge has slope 0.7; the tail: a short stem.
        let head = y < 15 && f64::from(x) <= f64::from(y) * 0.7;
        let stem = (13..h).contains(&y) && (4..8).contains(&x) && x <= y - 11;
        head || stem
    };
    let mut mem = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            let pixel: [u8; 4] = if !inside(x, y) {
                [0, 0, 0, 0]
            } else if inside(x - 1, y) && inside(x + 1, y) && inside(x, y - 1) && inside(x, y + 1) {
                [255, 255, 255, 255]
            } else {
                [0, 0, 0, 255]
            };
            mem.extend_from_slice(&pixel);
        }
    }
    MemoryRenderBuffer::from_slice(&mem, Fourcc::Argb8888, (w, h), 1, Transform::Normal, None)
}
