//! GameStream XML replies (PROTOCOL.md §1.2): `<root status_code="…">…</root>`, always sent with
//! HTTP 200 so that clients read the status from the XML.

use std::fmt::Write;

/// One XML reply under construction: a `<root>` element with a status and child elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlReply {
    status_code: u32,
    status_message: Option<String>,
    query: Option<String>,
    body: XmlElement,
}

impl XmlReply {
    /// A success reply (`status_code="200"`).
    pub fn ok() -> Self {
        Self {
            status_code: 200,
            status_message: None,
            query: None,
            body: XmlElement::default(),
        }
    }

    /// An error reply carrying `status_code` and a human-readable `status_message`.
    pub fn error(status_code: u32, message: impl Into<String>) -> Self {
        Self {
            status_code,
            status_message: Some(message.into()),
            query: None,
            body: XmlElement::default(),
        }
    }

    /// The reply to a request whose client certificate is not paired (Sunshine's wording).
    pub fn unauthorized(path: &str) -> Self {
        let mut reply = Self::error(
            401,
            "The client is not authorized. Certificate verification failed.",
        );
        reply.query = Some(path.to_owned());
        reply
    }

    /// Appends `<name>text</name>`, escaping the text.
    pub fn element(mut self, name: &str, text: impl std::fmt::Display) -> Self {
        self.body = self.body.element(name, text);
        self
    }

    /// Appends an element holding other elements, built by `inner`.
    pub fn nested(mut self, name: &str, inner: impl FnOnce(XmlElement) -> XmlElement) -> Self {
        self.body = self.body.nested(name, inner);
        self
    }

    /// The status code this reply carries.
    pub fn status_code(&self) -> u32 {
        self.status_code
    }

    /// Serialises the reply as a complete UTF-8 XML document.
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(self.body.body.len() + 96);
        out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
        let _ = write!(out, "<root status_code=\"{}\"", self.status_code);
        if let Some(query) = &self.query {
            let _ = write!(out, " query=\"{}\"", Escaped(query));
        }
        if let Some(message) = &self.status_message {
            let _ = write!(out, " status_message=\"{}\"", Escaped(message));
        }
        if self.body.body.is_empty() {
            out.push_str("/>");
        } else {
            out.push('>');
            out.push_str(&self.body.body);
            out.push_str("</root>");
        }
        out
    }
}

/// A child element with nested children (for `<App>` in `/applist`, display modes, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XmlElement {
    body: String,
}

impl XmlElement {
    /// Appends `<name>text</name>`, escaping the text.
    pub fn element(mut self, name: &str, text: impl std::fmt::Display) -> Self {
        let text = text.to_string();
        let _ = write!(self.body, "<{name}>{}</{name}>", Escaped(&text));
        self
    }

    /// Appends an element holding other elements.
    pub fn nested(mut self, name: &str, inner: impl FnOnce(XmlElement) -> XmlElement) -> Self {
        let element = inner(XmlElement::default());
        let _ = write!(self.body, "<{name}>{}</{name}>", element.body);
        self
    }
}

/// Text with the five XML special characters escaped.
struct Escaped<'a>(&'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in self.0.chars() {
            match c {
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '&' => f.write_str("&amp;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&apos;")?,
                c if c.is_control() && c != '\t' && c != '\n' && c != '\r' => {}
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_reply_with_children() {
        let xml = XmlReply::ok()
            .element("paired", 1)
            .element("plaincert", "ab")
            .to_xml();
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><root status_code=\"200\">\
             <paired>1</paired><plaincert>ab</plaincert></root>"
        );
    }

    #[test]
    fn empty_ok_reply_is_self_closing() {
        assert_eq!(
            XmlReply::ok().to_xml(),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><root status_code=\"200\"/>"
        );
    }

    #[test]
    fn unauthorized_reply_matches_sunshine() {
        let xml = XmlReply::unauthorized("/applist").to_xml();
        assert!(xml.contains("status_code=\"401\""));
        assert!(xml.contains("query=\"/applist\""));
        assert!(xml.contains("Certificate verification failed."));
    }

    #[test]
    fn text_is_escaped() {
        let xml = XmlReply::error(400, "a<b & \"c\"").element("AppTitle", "Tom & Jerry's <game>");
        let xml = xml.to_xml();
        assert!(xml.contains("status_message=\"a&lt;b &amp; &quot;c&quot;\""));
        assert!(xml.contains("<AppTitle>Tom &amp; Jerry&apos;s &lt;game&gt;</AppTitle>"));
    }

    #[test]
    fn nested_elements() {
        let xml = XmlReply::ok()
            .nested("App", |app| {
                app.element("AppTitle", "Desktop").element("ID", 1)
            })
            .to_xml();
        assert!(xml.contains("<App><AppTitle>Desktop</AppTitle><ID>1</ID></App>"));
    }
}
