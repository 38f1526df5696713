//! `GET /applist` and `GET /appasset` (PROTOCOL.md §1.5): the configured apps and their box art
//! (the app's PNG, or a generated one).

use bytes::Bytes;
use hati_protocol::query::Query;
use hati_protocol::xml::XmlReply;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use super::{response, xml};
use crate::config::AppConfig;
use crate::host::Host;

/// Width and height of generated box art (Moonlight shows 3:4 covers).
const ICON_SIZE: (u32, u32) = (300, 400);

/// The app list, IDs derived from titles.
pub fn applist(host: &Host) -> XmlReply {
    host.config()
        .apps
        .iter()
        .fold(XmlReply::ok(), |reply, app| {
            reply.nested("App", |entry| {
                entry
                    .element("IsHdrSupported", 0)
                    .element("AppTitle", &app.title)
                    .element("ID", app.id())
            })
        })
}

/// The box art PNG of `appid`.
pub fn appasset(host: &Host, query: &Query) -> Response<Full<Bytes>> {
    let id: u32 = match query.number("appid") {
        Ok(id) => id,
        Err(error) => return xml(&XmlReply::error(400, error.to_string())),
    };
    let config = host.config();
    let Some(app) = config.apps.iter().find(|app| app.id() == id) else {
        return xml(&XmlReply::error(404, format!("no app with ID {id}")));
    };
    match icon_png(app) {
        Ok(png) => response(StatusCode::OK, "image/png", png.into()),
        Err(error) => {
            tracing::warn!(app = %app.title, %error, "cannot serve the app icon");
            xml(&XmlReply::error(500, error))
        }
    }
}

/// The app's configured PNG, or generated box art.
pub(crate) fn icon_png(app: &AppConfig) -> Result<Vec<u8>, String> {
    match &app.icon {
        Some(path) => std::fs::read(path).map_err(|e| format!("{}: {e}", path.display())),
        None => generated_icon(&app.title),
    }
}

/// A vertical two-colour gradient whose colours derive from the title, so apps look distinct.
pub fn generated_icon(title: &str) -> Result<Vec<u8>, String> {
    let seed = crate::config::stable_hash(title);
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
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer
        .write_image_data(&pixels)
        .map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
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
