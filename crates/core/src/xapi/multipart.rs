//! multipart/mixed (RFC 2046, 5.1), as xAPI sends statements with their attachments'
//! content: the statements first, then one part per attachment. Read strictly: a part
//! that does not begin at a delimiter, or a body without its closing delimiter, is
//! refused rather than guessed at. (The multipart crates axum builds on read
//! multipart/form-data, whose parts are named fields; xAPI's are not.)

/// One part: its headers (as read: names lower-case, values trimmed) and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

impl Part<'_> {
    /// The value of a header, by its lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The `boundary` parameter of a multipart `Content-Type`, unquoted.
pub fn boundary(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        // RFC 2046: 1 to 70 characters.
        (!value.is_empty() && value.len() <= 70).then_some(value)
    })
}

/// The parts of a multipart body, in order; the preamble and epilogue are ignored.
pub fn parse<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, String> {
    let delimiter = format!("\r\n--{boundary}");
    let delimiter = delimiter.as_bytes();
    // The first delimiter may open the body, without the line break before it.
    let mut at = if body.starts_with(&delimiter[2..]) {
        delimiter.len() - 2
    } else {
        find(body, delimiter, 0)
            .ok_or("the body has no part: no line is the boundary the Content-Type names")?
            + delimiter.len()
    };
    let mut parts = Vec::new();
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        // Transport padding, then the line break that ends the delimiter line.
        let padding = rest
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        if !rest[padding..].starts_with(b"\r\n") {
            return Err(format!(
                "after part {}: a boundary line must end in CRLF",
                parts.len()
            ));
        }
        let start = at + padding + 2;
        let end = find(body, delimiter, start).ok_or_else(|| {
            format!(
                "part {} does not end: the closing boundary (--{boundary}--) is missing",
                parts.len() + 1
            )
        })?;
        parts.push(part(&body[start..end], parts.len() + 1)?);
        at = end + delimiter.len();
    }
}

/// A part's headers and content: the headers end at the first empty line.
fn part(raw: &[u8], number: usize) -> Result<Part<'_>, String> {
    let (head, body) = if raw.starts_with(b"\r\n") {
        (&raw[..0], &raw[2..])
    } else {
        let split = find(raw, b"\r\n\r\n", 0)
            .ok_or_else(|| format!("part {number} has no empty line after its headers"))?;
        (&raw[..split], &raw[split + 4..])
    };
    let head = std::str::from_utf8(head)
        .map_err(|_| format!("the headers of part {number} are not text"))?;
    let mut headers = Vec::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("part {number} has a header line without a colon: `{line}`"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok(Part { headers, body })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// A multipart body of these parts, each with its headers (named as given).
pub fn write(boundary: &str, parts: &[Part<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.body.len() + 200).sum());
    for part in parts {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        for (name, value) in &part.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(part.body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_from_content_type() {
        assert_eq!(boundary("multipart/mixed; boundary=abc"), Some("abc"));
        assert_eq!(boundary("multipart/mixed;boundary=\"a b\""), Some("a b"));
        assert_eq!(
            boundary("multipart/mixed; Boundary=x; charset=utf-8"),
            Some("x")
        );
        assert_eq!(boundary("multipart/mixed;"), None);
        assert_eq!(boundary("multipart/mixed; boundary="), None);
    }

    #[test]
    fn reads_what_it_writes() {
        let header = |name: &str, value: &str| (name.to_owned(), value.to_owned());
        let body = write(
            "b0",
            &[
                Part {
                    headers: vec![header("Content-Type", "application/json")],
                    body: b"{}",
                },
                Part {
                    headers: vec![
                        header("Content-Type", "text/plain"),
                        header("X-Experience-API-Hash", "ab"),
                    ],
                    body: b"line\r\n--b not a delimiter",
                },
            ],
        );
        let parts = parse(&body, "b0").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].header("content-type"), Some("application/json"));
        assert_eq!(parts[0].body, b"{}");
        assert_eq!(parts[1].header("x-experience-api-hash"), Some("ab"));
        assert_eq!(parts[1].body, b"line\r\n--b not a delimiter");
    }

    #[test]
    fn preamble_padding_and_headers_without_space() {
        let body = b"\r\n--x  \r\nContent-Type:application/json\r\n\r\n[]\r\n--x--";
        let parts = parse(body, "x").unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].header("content-type"), Some("application/json"));
        assert_eq!(parts[0].body, b"[]");
    }

    #[test]
    fn a_part_with_no_headers() {
        let parts = parse(b"--x\r\n\r\nhello\r\n--x--\r\n", "x").unwrap();
        assert!(parts[0].headers.is_empty());
        assert_eq!(parts[0].body, b"hello");
    }

    #[test]
    fn refuses_what_is_not_multipart() {
        assert!(parse(b"{}", "x").is_err());
        // No closing delimiter.
        assert!(parse(b"--x\r\nA: b\r\n\r\nbody", "x").is_err());
        // Headers without the empty line after them.
        assert!(parse(b"--x\r\nA: b\r\n--x--", "x").is_err());
        assert!(parse(b"--x\r\nno colon\r\n\r\nbody\r\n--x--", "x").is_err());
        // Text after the boundary on its line.
        assert!(parse(b"--xy\r\n\r\nbody\r\n--x--", "x").is_err());
    }
}
