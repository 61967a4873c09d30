//! Free helpers of the checker: strict deserialization of one parse-tree node, names,
//! issuer URLs, secret hashes, and locating a field's position in the parse tree.

use super::*;

/// Deserializes a parse-tree node with the strict raw types.
pub(super) trait DeserializeFrom: Sized {
    fn deserialize_from(node: &Spanned<DeValue<'_>>) -> Result<Self, toml::de::Error>;
}

impl<T: DeserializeOwned> DeserializeFrom for T {
    fn deserialize_from(node: &Spanned<DeValue<'_>>) -> Result<Self, toml::de::Error> {
        T::deserialize(node.clone().into_deserializer())
    }
}

/// Non-empty, no leading/trailing whitespace, no control characters.
pub(super) fn valid_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        Err("must not be empty".to_owned())
    } else if s.trim() != s {
        Err(format!("`{s}` starts or ends with whitespace"))
    } else if s.chars().any(char::is_control) {
        Err(format!(
            "`{}` contains a control character",
            s.escape_debug()
        ))
    } else {
        Ok(())
    }
}

/// When an issuer may use plain `http`.
#[derive(Clone, Copy)]
pub(super) enum Http {
    /// Only on a loopback host (the section has no `allow_insecure_http`).
    LoopbackOnly,
    /// On a loopback host, or anywhere when the section's `allow_insecure_http` is true.
    Flag(bool),
}

/// See [`Checker::issuer_url`].
pub(super) fn valid_issuer(s: &str, http: Http) -> Result<(), String> {
    let url = url::Url::parse(s).map_err(|e| format!("`{s}` is not an absolute URL: {e}"))?;
    match (url.scheme(), http) {
        ("https", _) | ("http", Http::Flag(true)) => {}
        ("http", _) if crate::oauth::issuer::is_loopback(&url) => {}
        ("http", Http::Flag(false)) => {
            return Err(format!(
                "`{s}` is not https: plain http is allowed only on a loopback host \
                 (127.0.0.1, ::1, localhost) or with allow_insecure_http = true"
            ));
        }
        ("http", Http::LoopbackOnly) => {
            return Err(format!(
                "`{s}` is not https: plain http is allowed only on a loopback host \
                 (127.0.0.1, ::1, localhost)"
            ));
        }
        (other, _) => {
            return Err(format!(
                "`{s}` has scheme `{other}`: an issuer must be https"
            ));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{s}` carries credentials; an issuer must not"));
    }
    if url.query().is_some() {
        return Err(format!("`{s}` has a query; an issuer must not"));
    }
    if url.fragment().is_some() {
        return Err(format!("`{s}` has a fragment; an issuer must not"));
    }
    Ok(())
}

/// 64 hex digits → 32 bytes.
pub(super) fn decode_sha256_hex(s: &str) -> Result<[u8; 32], String> {
    let fail = || "must be the SHA-256 of the secret as 64 hex digits".to_owned();
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return Err(fail());
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let hi = hex_digit(pair.first().copied()).ok_or_else(fail)?;
        let lo = hex_digit(pair.get(1).copied()).ok_or_else(fail)?;
        *byte = (hi << 4) | lo;
    }
    Ok(out)
}

pub(super) fn hex_digit(c: Option<u8>) -> Option<u8> {
    let c = c?;
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Appends a key to a field path, quoting it unless it is a bare TOML key.
pub(super) fn key_path(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

/// The path (relative to `node`, e.g. `.credential.jwks` or `.grant[2]`) of the innermost
/// key or value at byte `offset`. Tables written as `[headers]` do not span their entries,
/// so every child is searched rather than only the ones whose span covers the offset.
pub(super) fn locate(node: &Spanned<DeValue<'_>>, offset: usize) -> Option<String> {
    match node.get_ref() {
        DeValue::Table(table) => {
            for (key, child) in table.iter() {
                let name: &str = key.get_ref();
                if covers(&key.span(), offset) {
                    return Some(format!(".{}", key_path("", name)));
                }
                if let Some(rest) = locate(child, offset) {
                    return Some(format!(".{}{rest}", key_path("", name)));
                }
            }
        }
        DeValue::Array(array) => {
            for (i, child) in array.iter().enumerate() {
                if let Some(rest) = locate(child, offset) {
                    return Some(format!("[{i}]{rest}"));
                }
            }
        }
        _ => {}
    }
    covers(&node.span(), offset).then(String::new)
}

pub(super) fn covers(span: &Range<usize>, offset: usize) -> bool {
    span.contains(&offset) || (span.is_empty() && span.start == offset)
}

/// A string entry of a table node, if there is one.
pub(super) fn peek_str(node: &Spanned<DeValue<'_>>, key: &str) -> Option<String> {
    node.get_ref()
        .get(key)
        .and_then(|v| v.get_ref().as_str())
        .map(str::to_owned)
}

/// An array-of-strings entry of a table node, if it is exactly that.
pub(super) fn peek_strs(node: &Spanned<DeValue<'_>>, key: &str) -> Option<HashSet<String>> {
    node.get_ref()
        .get(key)?
        .get_ref()
        .as_array()?
        .iter()
        .map(|v| v.get_ref().as_str().map(str::to_owned))
        .collect()
}
