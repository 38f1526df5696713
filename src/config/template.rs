//! Pipeline templates: the `{variable}` syntax of config.toml's GStreamer parts, checked when
//! the file loads and filled when a stream starts.

use thiserror::Error;

/// Variables a video template may use.
pub const VIDEO_VARIABLES: &[&str] = &[
    "width",
    "height",
    "fps",
    "bitrate",
    "slices_per_frame",
    "session_id",
];
/// Variables an audio template may use.
pub const AUDIO_VARIABLES: &[&str] = &[
    "channels",
    "bitrate",
    "packet_duration",
    "sink_name",
    "pulse_server",
    "session_id",
];

/// Why a template could not be filled.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TemplateError {
    /// `{name}` is not a variable this template may use.
    #[error("unknown template variable {{{name}}}; known variables: {known}")]
    UnknownVariable {
        /// The variable.
        name: String,
        /// The allowed variables, for the message.
        known: String,
    },
    /// A `{` without its `}`.
    #[error("`{{` without a closing `}}`")]
    Unclosed,
}

/// Checks that `template` uses only `allowed` variables.
pub fn check_template(template: &str, allowed: &[&str]) -> Result<(), TemplateError> {
    let values: Vec<(&str, String)> = allowed.iter().map(|name| (*name, String::new())).collect();
    fill(template, &values).map(|_| ())
}

/// Replaces every `{name}` in `template` with its value.
pub fn fill(template: &str, values: &[(&str, String)]) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(rest.get(..open).unwrap_or_default());
        let after = rest.get(open + 1..).unwrap_or_default();
        let close = after.find('}').ok_or(TemplateError::Unclosed)?;
        let name = after.get(..close).unwrap_or_default();
        let value = values.iter().find(|(key, _)| *key == name).ok_or_else(|| {
            TemplateError::UnknownVariable {
                name: name.to_owned(),
                known: values
                    .iter()
                    .map(|(key, _)| format!("{{{key}}}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            }
        })?;
        out.push_str(&value.1);
        rest = after.get(close + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_known_variables() {
        let values = [("width", "1280".to_owned()), ("fps", "60".to_owned())];
        assert_eq!(
            fill("w={width},f={fps}/1", &values).unwrap(),
            "w=1280,f=60/1"
        );
        assert_eq!(fill("no variables", &values).unwrap(), "no variables");
    }

    #[test]
    fn unknown_and_unclosed_variables_are_errors() {
        let error = check_template("x={widht}", VIDEO_VARIABLES).unwrap_err();
        assert!(matches!(&error, TemplateError::UnknownVariable { name, .. } if name == "widht"));
        assert!(error.to_string().contains("{width}"));
        assert_eq!(
            check_template("x={width", VIDEO_VARIABLES),
            Err(TemplateError::Unclosed)
        );
    }
}
