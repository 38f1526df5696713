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

/// Entry points for the fuzz targets.
pub mod fuzzing {
    use super::XmlReply;

    /// Builds a reply whose status message, attribute and element texts come from `data` (as
    /// peer-supplied text does: device names, error messages quoting a request), then checks
    /// the document is well formed and every text reads back as written, minus the control
    /// characters XML cannot carry.
    pub fn reply(data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        let mut parts = text.splitn(3, '\u{1}');
        let message = parts.next().unwrap_or_default();
        let query = parts.next().unwrap_or_default();
        let element = parts.next().unwrap_or_default();
        let xml = XmlReply::error(400, message)
            .element("name", element)
            .nested("App", |app| app.element("AppTitle", element))
            .to_xml();
        let mut reply = XmlReply::ok();
        reply.query = Some(query.to_owned());
        let with_query = reply.to_xml();
        let texts = read(&xml).unwrap_or_else(|e| panic!("malformed XML ({e}): {xml}"));
        let expected = |s: &str| -> String {
            s.chars()
                .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
                .collect()
        };
        assert_eq!(
            texts,
            vec![expected(message), expected(element), expected(element)],
            "{xml}"
        );
        let texts =
            read(&with_query).unwrap_or_else(|e| panic!("malformed XML ({e}): {with_query}"));
        assert_eq!(texts, vec![expected(query)]);
    }

    /// A strict reader for the documents this module writes: the prolog, `<root>` with quoted
    /// attributes, nested elements with text. Returns the decoded attribute values after
    /// `status_code` and the element texts, in document order.
    fn read(xml: &str) -> Result<Vec<String>, &'static str> {
        let mut rest = xml
            .strip_prefix("<?xml version=\"1.0\" encoding=\"utf-8\"?>")
            .ok_or("prolog")?;
        let mut texts = Vec::new();
        let mut stack: Vec<&str> = Vec::new();
        // Whether the last token was a start tag: an end tag right after it is an empty text.
        let mut just_opened = false;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("</") {
                let (name, tail) = after.split_once('>').ok_or("unclosed end tag")?;
                if stack.pop() != Some(name) {
                    return Err("mismatched end tag");
                }
                if just_opened {
                    texts.push(String::new());
                }
                just_opened = false;
                rest = tail;
            } else if let Some(after) = rest.strip_prefix('<') {
                let (tag, tail) = after.split_once('>').ok_or("unclosed tag")?;
                let (tag, empty) = match tag.strip_suffix('/') {
                    Some(tag) => (tag, true),
                    None => (tag, false),
                };
                let (name, mut attributes) = tag.split_once(' ').unwrap_or((tag, ""));
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err("bad tag name");
                }
                while !attributes.is_empty() {
                    let (key, value) = attributes.split_once("=\"").ok_or("attribute")?;
                    let (value, after_value) = value.split_once('"').ok_or("unquoted attribute")?;
                    if key != "status_code" {
                        texts.push(unescape(value)?);
                    }
                    attributes = after_value.trim_start();
                }
                if stack.is_empty() && name != "root" {
                    return Err("not root");
                }
                if !empty {
                    stack.push(name);
                }
                just_opened = !empty;
                rest = tail;
            } else {
                let (text, tail) = rest.split_at(rest.find('<').ok_or("text outside root")?);
                texts.push(unescape(text)?);
                just_opened = false;
                rest = tail;
            }
        }
        if stack.is_empty() {
            Ok(texts)
        } else {
            Err("unclosed element")
        }
    }

    fn unescape(text: &str) -> Result<String, &'static str> {
        if text.contains(['<', '>', '"']) {
            return Err("unescaped special character");
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some((before, after)) = rest.split_once('&') {
            out.push_str(before);
            let (tail, c) = [
                ("lt;", '<'),
                ("gt;", '>'),
                ("amp;", '&'),
                ("quot;", '"'),
                ("apos;", '\''),
            ]
            .into_iter()
            .find_map(|(entity, c)| after.strip_prefix(entity).map(|tail| (tail, c)))
            .ok_or("unknown entity")?;
            out.push(c);
            rest = tail;
        }
        out.push_str(rest);
        Ok(out)
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
    fn robustness_no_panic() {
        let seeds: [&str; 4] = [
            "Moonlight <PC> & \"friends\"\u{1}/launch?x='1'\u{1}App & Co",
            "\u{0}\u{7}tab\there\u{1}\u{1b}[31m\u{1}</root><x>",
            "&amp;&lt;&#x41;\u{1}\u{1}é😀",
            "",
        ];
        let mut x = 0x1234_abcdu32;
        for round in 0..5_000usize {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let mut data = seeds[round % seeds.len()].as_bytes().to_vec();
            let at = x as usize % (data.len() + 1);
            data.insert(at, b"<>&\"'\x01\x00a"[(x >> 5) as usize % 8]);
            fuzzing::reply(&data);
        }
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
