//! App box art: the PNG an app's `icon` names, or a generated gradient so apps look distinct.

use std::path::PathBuf;

use thiserror::Error;

use super::AppConfig;

/// Width and height of generated box art (Moonlight shows 3:4 covers).
const ICON_SIZE: (u32, u32) = (300, 400);

/// Why an app's icon could not be served.
#[derive(Debug, Error)]
pub enum IconError {
    /// The configured file cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The generated picture could not be encoded.
    #[error("cannot encode the generated icon: {0}")]
    Encode(#[from] png::EncodingError),
}

impl AppConfig {
    /// The app's configured PNG, or generated box art.
    pub fn icon_png(&self) -> Result<Vec<u8>, IconError> {
        match &self.icon {
            Some(path) => std::fs::read(path).map_err(|source| IconError::Read {
                path: path.clone(),
                source,
            }),
            None => generated_icon(&self.title),
        }
    }
}

/// A vertical two-colour gradient whose colours derive from the title, so apps look distinct.
pub fn generated_icon(title: &str) -> Result<Vec<u8>, IconError> {
    let seed = super::stable_hash(title);
    let [r, g, b, _] = seed.to_be_bytes();
    let top = [r / 2 + 64, g / 2 + 64, b / 2 + 64];
    let bottom = [r / 4, g / 4, b / 4];
    let (width, height) = ICON_SIZE;
    let mut pixels = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        let mix = |a: u8, b: u8| ((u32::from(a) * (height - y) + u32::from(b) * y) / height) as u8;
        let row = [
            mix(top[0], bottom[0]),
            mix(top[1], bottom[1]),
            mix(top[2], bottom[2]),
        ];
        for _ in 0..width {
            pixels.extend_from_slice(&row);
        }
    }
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_icon_is_a_png_of_the_right_size() {
        let png = generated_icon("Desktop").unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let reader = decoder.read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), ICON_SIZE);
        assert_ne!(generated_icon("A").unwrap(), generated_icon("B").unwrap());
    }
}
