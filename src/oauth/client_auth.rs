//! Which client authentication method a request uses (RFC 6749 §2.3, RFC 7523 §2.2).
//!
//! Exactly one method per request: HTTP Basic, `client_secret` in the body, or a
//! `client_assertion`. Two methods → `invalid_request`; none → the caller answers 401
//! `invalid_client`. This module only reads the request; verifying is `grants::client_auth`.

use base64::Engine as _;

use super::{FormParams, OAuthError, urn};

/// `WWW-Authenticate` challenge sent when Basic authentication was tried and failed.
pub const BASIC_CHALLENGE: &str = "Basic realm=\"lanyard\", charset=\"UTF-8\"";

/// The credentials a request presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// `client_secret_basic`, already URL-decoded (RFC 6749 §2.3.1).
    Basic {
        /// Client id.
        client_id: String,
        /// Secret.
        secret: String,
    },
    /// `client_secret_post`.
    Post {
        /// Client id.
        client_id: String,
        /// Secret.
        secret: String,
    },
    /// `private_key_jwt` or a workload-identity JWT (RFC 7523 §2.2).
    Assertion {
        /// The JWT.
        assertion: String,
        /// The form's `client_id`, if sent; must match the assertion's `sub`.
        client_id: Option<String>,
    },
}

impl Presented {
    /// The client id the request names, before it is verified (an assertion's is only the
    /// form's `client_id`, when sent).
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Self::Basic { client_id, .. } | Self::Post { client_id, .. } => Some(client_id),
            Self::Assertion { client_id, .. } => client_id.as_deref(),
        }
    }

    /// The method name as in `token_endpoint_auth_methods_supported`.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Basic { .. } => "client_secret_basic",
            Self::Post { .. } => "client_secret_post",
            Self::Assertion { .. } => "private_key_jwt",
        }
    }
}

fn basic_failure() -> OAuthError {
    OAuthError::invalid_client("client authentication failed").with_challenge(BASIC_CHALLENGE)
}

/// Undo the `application/x-www-form-urlencoded` encoding RFC 6749 §2.3.1 applies to the
/// client id and the secret before Basic encoding: `+` is a space, `%XX` a byte; the result
/// must be UTF-8. A `%` not followed by two hex digits is malformed (`None`). `&` and `=`
/// are ordinary characters here (the value is not a form, only encoded like one's values).
pub fn form_value_decode(s: &str) -> Option<String> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex(bytes.next()?)?;
                let lo = hex(bytes.next()?)?;
                out.push(u8::try_from(hi * 16 + lo).ok()?);
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// Read the client credentials of a request. `Ok(None)` = no authentication at all.
pub fn detect(
    authorization: Option<&str>,
    form: &FormParams,
) -> Result<Option<Presented>, OAuthError> {
    let form_client_id = form.one("client_id").ok().flatten();
    let basic = match authorization {
        None => None,
        Some(h) => {
            let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(OAuthError::invalid_client(
                    "unsupported authorization scheme at the token endpoint",
                ));
            }
            let raw = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .map_err(|_| basic_failure())?;
            let raw = String::from_utf8(raw).map_err(|_| basic_failure())?;
            let (id, secret) = raw.split_once(':').ok_or_else(basic_failure)?;
            let (Some(id), Some(secret)) = (form_value_decode(id), form_value_decode(secret))
            else {
                return Err(basic_failure());
            };
            if id.is_empty() {
                return Err(basic_failure());
            }
            Some((id, secret))
        }
    };
    let post_secret = form.one("client_secret").ok().flatten();
    let assertion = form.one("client_assertion").ok().flatten();
    let assertion_type = form.one("client_assertion_type").ok().flatten();
    let methods = usize::from(basic.is_some())
        + usize::from(post_secret.is_some())
        + usize::from(assertion.is_some() || assertion_type.is_some());
    if methods > 1 {
        return Err(OAuthError::invalid_request(
            "use exactly one client authentication method",
        ));
    }
    if let Some((client_id, secret)) = basic {
        if form_client_id.is_some_and(|c| c != client_id) {
            return Err(basic_failure());
        }
        return Ok(Some(Presented::Basic { client_id, secret }));
    }
    if let Some(secret) = post_secret {
        let Some(client_id) = form_client_id else {
            return Err(OAuthError::invalid_client("client authentication failed"));
        };
        return Ok(Some(Presented::Post {
            client_id: client_id.to_owned(),
            secret: secret.to_owned(),
        }));
    }
    if assertion.is_some() || assertion_type.is_some() {
        if assertion_type != Some(urn::CLIENT_ASSERTION_JWT_BEARER) {
            return Err(OAuthError::invalid_client(
                "unsupported client_assertion_type",
            ));
        }
        let Some(assertion) = assertion else {
            return Err(OAuthError::invalid_request("missing client_assertion"));
        };
        return Ok(Some(Presented::Assertion {
            assertion: assertion.to_owned(),
            client_id: form_client_id.map(str::to_owned),
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> FormParams {
        FormParams::from_pairs(pairs.iter().copied())
    }

    fn basic(id: &str, secret: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    }

    #[test]
    fn basic_is_url_decoded() {
        let p = detect(Some(&basic("bot%3A1", "s%2Bx")), &form(&[])).expect("ok");
        assert_eq!(
            p,
            Some(Presented::Basic {
                client_id: "bot:1".into(),
                secret: "s+x".into()
            })
        );
    }

    /// RFC 6749 §2.3.1: id and secret are form-urlencoded before the Basic encoding, so `+`
    /// is a space and `&` or `=` (in a secret sent unencoded) are kept, never cut at.
    #[test]
    fn basic_credentials_decode_as_form_values_not_as_a_form() {
        let p = detect(Some(&basic("bot+1", "a&b=c%26d+e")), &form(&[])).expect("ok");
        assert_eq!(
            p,
            Some(Presented::Basic {
                client_id: "bot 1".into(),
                secret: "a&b=c&d e".into()
            })
        );
        for bad in ["s%2", "s%zz", "%ff"] {
            assert!(
                detect(Some(&basic("bot", bad)), &form(&[])).is_err(),
                "malformed encoding {bad:?} is refused"
            );
        }
        assert_eq!(form_value_decode("%C3%A9").as_deref(), Some("é"));
    }

    /// RFC 6749 §2.3: one method per request; checklist B13.
    #[test]
    fn two_methods_are_refused() {
        let f = form(&[
            ("client_assertion_type", urn::CLIENT_ASSERTION_JWT_BEARER),
            ("client_assertion", "a.b.c"),
        ]);
        let e = detect(Some(&basic("a", "b")), &f).expect_err("two methods");
        assert_eq!(e.code, crate::oauth::ErrorCode::InvalidRequest);
        let f = form(&[
            ("client_id", "a"),
            ("client_secret", "s"),
            ("client_assertion", "a.b.c"),
        ]);
        assert_eq!(
            detect(None, &f).expect_err("two").code,
            crate::oauth::ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn nothing_presented_is_none() {
        assert_eq!(
            detect(None, &form(&[("client_id", "public")])).expect("ok"),
            None
        );
    }

    /// Checklist C28.
    #[test]
    fn wrong_assertion_type_is_invalid_client() {
        let f = form(&[
            ("client_assertion_type", "urn:x"),
            ("client_assertion", "a.b.c"),
        ]);
        let e = detect(None, &f).expect_err("type");
        assert_eq!(e.status(), 401);
    }

    #[test]
    fn bad_basic_header_gets_a_challenge() {
        let e = detect(Some("Basic !!!"), &form(&[])).expect_err("bad");
        assert_eq!(e.www_authenticate, Some(BASIC_CHALLENGE));
        let e =
            detect(Some(&basic("a", "b")), &form(&[("client_id", "other")])).expect_err("mismatch");
        assert_eq!(e.status(), 401);
    }
}
