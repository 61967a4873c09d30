//! RFC 8414 authorization server metadata: exactly what is implemented, plus what standard
//! clients need to use it (checklist A1–A6, CLIENTS.md).

use serde_json::{Value, json};

use super::issuer::{IssuerSettings, Role};
use super::urn;

/// Client authentication methods lanyard's token endpoint accepts.
pub const TOKEN_ENDPOINT_AUTH_METHODS: &[&str] = &[
    "private_key_jwt",
    "client_secret_basic",
    "client_secret_post",
];

/// Algorithms accepted on `private_key_jwt` client assertions (never `none`, never HMAC).
pub const CLIENT_ASSERTION_ALGS: &[&str] = &[
    "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA",
];

/// Optional features, advertised only once they are served.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    /// RFC 9396 `authorization_details` of type `lanyard_action`.
    pub authorization_details: bool,
    /// RFC 9449 proof algorithms, when DPoP is accepted.
    pub dpop_algs: Vec<&'static str>,
    /// RFC 7662 introspection endpoint is served.
    pub introspection: bool,
    /// RFC 7009 revocation endpoint is served.
    pub revocation: bool,
}

/// The metadata document of one issuer.
pub fn document(iss: &IssuerSettings, caps: &Capabilities) -> Value {
    let auth_methods = TOKEN_ENDPOINT_AUTH_METHODS;
    let mut m = json!({
        "issuer": iss.issuer,
        "token_endpoint": iss.endpoint("token"),
        "jwks_uri": iss.endpoint("jwks.json"),
        // RFC 8414 §2: REQUIRED even without an authorization endpoint. lanyard has no
        // browser flow, so the list is empty.
        "response_types_supported": [],
        // Not a browser flow either: this endpoint answers every request with
        // `unsupported_response_type`. It is published because the MCP TypeScript SDK's
        // metadata parser refuses documents without it (CLIENTS.md).
        "authorization_endpoint": iss.endpoint("authorize"),
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": CLIENT_ASSERTION_ALGS,
    });
    let Some(obj) = m.as_object_mut() else {
        return m;
    };
    match iss.role {
        Role::Idp => {
            obj.insert(
                "grant_types_supported".into(),
                json!([urn::GRANT_TOKEN_EXCHANGE]),
            );
            obj.insert(
                "identity_chaining_requested_token_types_supported".into(),
                json!([urn::TOKEN_TYPE_ID_JAG]),
            );
        }
        Role::AuthorizationServer => {
            obj.insert(
                "grant_types_supported".into(),
                json!([urn::GRANT_JWT_BEARER]),
            );
            // ID-JAG §7.2. Says nothing about which issuers are trusted (§9.4).
            obj.insert(
                "authorization_grant_profiles_supported".into(),
                json!([urn::GRANT_PROFILE_ID_JAG]),
            );
        }
    }
    if caps.authorization_details {
        obj.insert(
            "authorization_details_types_supported".into(),
            json!([urn::AUTHORIZATION_DETAILS_LANYARD_ACTION]),
        );
    }
    if !caps.dpop_algs.is_empty() {
        obj.insert(
            "dpop_signing_alg_values_supported".into(),
            json!(caps.dpop_algs),
        );
    }
    if caps.introspection {
        obj.insert(
            "introspection_endpoint".into(),
            iss.endpoint("introspect").into(),
        );
        obj.insert(
            "introspection_endpoint_auth_methods_supported".into(),
            json!(auth_methods),
        );
        obj.insert(
            "introspection_endpoint_auth_signing_alg_values_supported".into(),
            json!(CLIENT_ASSERTION_ALGS),
        );
    }
    if caps.revocation {
        obj.insert("revocation_endpoint".into(), iss.endpoint("revoke").into());
        obj.insert(
            "revocation_endpoint_auth_methods_supported".into(),
            json!(auth_methods),
        );
        obj.insert(
            "revocation_endpoint_auth_signing_alg_values_supported".into(),
            json!(CLIENT_ASSERTION_ALGS),
        );
    }
    m
}

/// The RFC 8414 §3.1 path of an issuer's metadata: the well-known segment goes between the
/// host and the issuer's path.
pub fn well_known_path(iss: &IssuerSettings) -> String {
    format!("/.well-known/oauth-authorization-server{}", iss.path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn iss(role: Role, url: &str, path: &str) -> IssuerSettings {
        IssuerSettings {
            role,
            issuer: url.into(),
            path: path.into(),
            max_token_ttl: Duration::from_secs(300),
            require_dpop_nonce: false,
        }
    }

    #[test]
    fn as_metadata_names_the_profile_and_not_the_trusted_issuers() {
        let d = document(
            &iss(Role::AuthorizationServer, "https://a.example/as", "/as"),
            &Capabilities::default(),
        );
        assert_eq!(d["issuer"], "https://a.example/as");
        assert_eq!(d["token_endpoint"], "https://a.example/as/token");
        assert_eq!(d["grant_types_supported"], json!([urn::GRANT_JWT_BEARER]));
        assert_eq!(
            d["authorization_grant_profiles_supported"],
            json!([urn::GRANT_PROFILE_ID_JAG])
        );
        assert!(
            d.get("identity_chaining_requested_token_types_supported")
                .is_none()
        );
        assert!(
            d.get("introspection_endpoint").is_none(),
            "only what is implemented"
        );
        assert!(
            !d["token_endpoint_auth_signing_alg_values_supported"]
                .as_array()
                .expect("array")
                .iter()
                .any(|a| a == "none" || a.as_str().is_some_and(|s| s.starts_with("HS")))
        );
    }

    #[test]
    fn idp_metadata_offers_id_jag() {
        let d = document(
            &iss(Role::Idp, "https://a.example", ""),
            &Capabilities::default(),
        );
        assert_eq!(
            d["identity_chaining_requested_token_types_supported"],
            json!([urn::TOKEN_TYPE_ID_JAG])
        );
        assert_eq!(d["token_endpoint"], "https://a.example/token");
    }

    #[test]
    fn well_known_path_is_inserted_before_the_issuer_path() {
        assert_eq!(
            well_known_path(&iss(
                Role::Idp,
                "https://a.example/tenant/idp",
                "/tenant/idp"
            )),
            "/.well-known/oauth-authorization-server/tenant/idp"
        );
        assert_eq!(
            well_known_path(&iss(Role::Idp, "https://a.example", "")),
            "/.well-known/oauth-authorization-server"
        );
    }
}
