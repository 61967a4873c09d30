//! `application/x-www-form-urlencoded` request bodies, parsed strictly (RFC 6749 §3.2).
//!
//! - A parameter sent with an empty value counts as absent.
//! - A parameter may not repeat, except those a spec lets repeat (`resource`, `audience`);
//!   the caller says which by asking for [`FormParams::all`] instead of [`FormParams::one`].
//! - Sizes are bounded: tokens and assertions (checklist B14) and everything else.
//!
//! Unknown parameters are kept and ignored, as RFC 6749 §3.2 requires.

use std::fmt;

/// Parameters whose values are JWTs or other large opaque tokens.
pub(crate) const TOKEN_PARAMS: &[&str] = &[
    "assertion",
    "subject_token",
    "actor_token",
    "client_assertion",
    "token",
    "authorization_details",
];

/// Size bounds for one form.
#[derive(Debug, Clone, Copy)]
pub struct FormLimits {
    /// Longest value of a token-carrying parameter (`assertion`, `subject_token`, …).
    pub max_token_bytes: usize,
    /// Longest value of any other parameter.
    pub max_value_bytes: usize,
    /// Most parameters in one form.
    pub max_params: usize,
}

impl Default for FormLimits {
    fn default() -> Self {
        Self {
            max_token_bytes: 16 * 1024,
            max_value_bytes: 4 * 1024,
            max_params: 64,
        }
    }
}

/// Why a form was refused. The variants carry parameter *names* only, never values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    /// The body is not valid UTF-8 after percent-decoding.
    NotUtf8,
    /// Too many parameters.
    TooManyParams,
    /// One value is longer than allowed.
    TooLong(String),
    /// A parameter that must be single appears more than once.
    Duplicate(String),
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotUtf8 => f.write_str("form body is not UTF-8"),
            Self::TooManyParams => f.write_str("too many form parameters"),
            Self::TooLong(n) => write!(f, "parameter {n} is too long"),
            Self::Duplicate(n) => write!(f, "parameter {n} is repeated"),
        }
    }
}

/// A parsed form. Values with an empty string have been dropped.
#[derive(Debug, Clone, Default)]
pub struct FormParams {
    pairs: Vec<(String, String)>,
}

impl FormParams {
    /// Parse a body. Only UTF-8 is accepted; `+` decodes to a space as the media type says.
    pub fn parse(body: &[u8], limits: &FormLimits) -> Result<Self, FormError> {
        let mut pairs = Vec::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            // form_urlencoded replaces invalid UTF-8 with U+FFFD; refuse rather than guess.
            if k.contains('\u{FFFD}') || v.contains('\u{FFFD}') {
                return Err(FormError::NotUtf8);
            }
            if pairs.len() >= limits.max_params {
                return Err(FormError::TooManyParams);
            }
            let max = if TOKEN_PARAMS.contains(&k.as_ref()) {
                limits.max_token_bytes
            } else {
                limits.max_value_bytes
            };
            if v.len() > max || k.len() > limits.max_value_bytes {
                return Err(FormError::TooLong(truncate_name(&k)));
            }
            if v.is_empty() {
                continue;
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(Self { pairs })
    }

    /// Build from pairs (tests, and bodies assembled in code).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            pairs: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
        }
    }

    /// A parameter that must appear at most once.
    pub fn one(&self, name: &str) -> Result<Option<&str>, FormError> {
        let mut found = None;
        for (k, v) in &self.pairs {
            if k == name {
                if found.is_some() {
                    return Err(FormError::Duplicate(name.to_owned()));
                }
                found = Some(v.as_str());
            }
        }
        Ok(found)
    }

    /// Every value of a parameter that may repeat (RFC 8693 `resource`, `audience`).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a parameter is present (with a non-empty value).
    pub fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    /// Every kept pair, in body order (for the fuzz invariants).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Check that none of `names` repeats; the first repeated one is reported.
    pub fn ensure_single(&self, names: &[&str]) -> Result<(), FormError> {
        for n in names {
            self.one(n)?;
        }
        Ok(())
    }
}

/// Parameter names are attacker-chosen too: bound what goes into a log line.
fn truncate_name(name: &str) -> String {
    name.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<FormParams, FormError> {
        FormParams::parse(s.as_bytes(), &FormLimits::default())
    }

    #[test]
    fn empty_value_counts_as_absent() {
        let f = parse("grant_type=&scope=a").expect("parses");
        assert_eq!(f.one("grant_type"), Ok(None));
        assert_eq!(f.one("scope"), Ok(Some("a")));
    }

    /// RFC 6749 §3.2: request parameters MUST NOT be included more than once.
    #[test]
    fn repeated_single_parameter_is_refused() {
        let f = parse("grant_type=a&grant_type=b").expect("parses");
        assert_eq!(
            f.one("grant_type"),
            Err(FormError::Duplicate("grant_type".into()))
        );
    }

    /// RFC 8693 §2.1: `resource` and `audience` may repeat.
    #[test]
    fn repeatable_parameters_are_all_returned() {
        let f = parse("resource=https%3A%2F%2Fa&resource=https%3A%2F%2Fb").expect("parses");
        assert_eq!(
            f.all("resource").collect::<Vec<_>>(),
            vec!["https://a", "https://b"]
        );
    }

    #[test]
    fn plus_decodes_to_space() {
        let f = parse("scope=a+b%20c").expect("parses");
        assert_eq!(f.one("scope"), Ok(Some("a b c")));
    }

    #[test]
    fn oversized_token_is_refused_by_name() {
        let body = format!("assertion={}", "a".repeat(16 * 1024 + 1));
        assert_eq!(
            parse(&body).err(),
            Some(FormError::TooLong("assertion".into()))
        );
        let ok = format!("assertion={}", "a".repeat(16 * 1024));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn oversized_plain_value_is_refused() {
        let body = format!("scope={}", "a".repeat(4097));
        assert_eq!(parse(&body).err(), Some(FormError::TooLong("scope".into())));
    }

    #[test]
    fn invalid_utf8_is_refused() {
        assert_eq!(parse("scope=%FF").err(), Some(FormError::NotUtf8));
    }

    #[test]
    fn too_many_parameters_is_refused() {
        let body = (0..65)
            .map(|i| format!("p{i}=x"))
            .collect::<Vec<_>>()
            .join("&");
        assert_eq!(parse(&body).err(), Some(FormError::TooManyParams));
    }
}
