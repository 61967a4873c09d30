//! The registered names lanyard speaks.

/// RFC 8693 §2.1 token exchange.
pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 7523 §2.1 JWT bearer authorization grant.
pub const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// draft-parecki-oauth-jwt-dpop-grant; not advertised, so refused (checklist D6).
pub const GRANT_JWT_DPOP: &str = "urn:ietf:params:oauth:grant-type:jwt-dpop";
/// ID-JAG §10: the grant profile advertised in `authorization_grant_profiles_supported`.
pub const GRANT_PROFILE_ID_JAG: &str = "urn:ietf:params:oauth:grant-profile:id-jag";
/// ID-JAG §10: the token type of an ID-JAG.
pub const TOKEN_TYPE_ID_JAG: &str = "urn:ietf:params:oauth:token-type:id-jag";
/// RFC 8693 §3.
pub const TOKEN_TYPE_ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
/// RFC 8693 §3.
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 §3.
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
/// RFC 8693 §3.
pub const TOKEN_TYPE_SAML2: &str = "urn:ietf:params:oauth:token-type:saml2";
/// RFC 8693 §3.
pub const TOKEN_TYPE_REFRESH_TOKEN: &str = "urn:ietf:params:oauth:token-type:refresh_token";
/// RFC 7523 §2.2 client assertion type.
pub const CLIENT_ASSERTION_JWT_BEARER: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// lanyard's RFC 9396 authorization details type.
pub const AUTHORIZATION_DETAILS_LANYARD_ACTION: &str = "lanyard_action";

/// JOSE `typ` of an ID-JAG (ID-JAG §3.1; short form, checklist D7).
pub const TYP_ID_JAG: &str = "oauth-id-jag+jwt";
/// JOSE `typ` of an access token (RFC 9068 §2.1).
pub const TYP_ACCESS_TOKEN: &str = "at+jwt";
