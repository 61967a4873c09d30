//! Claim checks that need only the claims, the expected values and `now`.
//!
//! Every JWT lanyard accepts — ID tokens, ID-JAGs, client assertions, DPoP proofs, its own
//! access tokens at a resource server — goes through [`times`] with rules of its kind, so
//! that a leeway or a lifetime ceiling is one decision, written once. The leeway is the
//! operator's (`[server] leeway`, 60 s by default); it widens every bound by the same amount
//! in the accepting direction and never more.
//!
//! `iat` is required wherever an issuer's clock matters to a replay window (ID-JAGs, client
//! assertions): without it, a token's lifetime cannot be bounded from its own claims, so the
//! check falls back to `exp − now`.

use super::Rejection;
use super::claims::NumericDate;
use crate::clock::UnixTime;

/// Time bounds for one kind of JWT.
#[derive(Debug, Clone, Copy)]
pub struct TimeRules {
    /// Clock-skew leeway, seconds.
    pub leeway: u64,
    /// Longest accepted `exp − iat` (or `exp − now` without `iat`), seconds.
    pub max_lifetime: u64,
    /// Oldest accepted `iat`, seconds before now; `None` = no limit beyond `exp`.
    pub max_age: Option<u64>,
    /// Whether `iat` must be present.
    pub require_iat: bool,
}

/// RFC 7519 §4.1.4–4.1.6 with leeway: `exp` required and not passed beyond the leeway;
/// `iat` (if required or present) not in the future beyond the leeway nor older than
/// `max_age`; `nbf` reached within the leeway; lifetime within `max_lifetime`.
pub fn times(
    exp: Option<NumericDate>,
    iat: Option<NumericDate>,
    nbf: Option<NumericDate>,
    rules: TimeRules,
    now: UnixTime,
) -> Result<(), Rejection> {
    let exp = exp.ok_or(Rejection::Time("exp missing"))?.secs();
    if now >= exp.saturating_add(rules.leeway) {
        return Err(Rejection::Time("expired"));
    }
    let iat = match iat {
        Some(i) => Some(i.secs()),
        None if rules.require_iat => return Err(Rejection::Time("iat missing")),
        None => None,
    };
    if let Some(iat) = iat {
        if iat > now.saturating_add(rules.leeway) {
            return Err(Rejection::Time("iat in the future"));
        }
        if rules
            .max_age
            .is_some_and(|a| now > iat.saturating_add(a).saturating_add(rules.leeway))
        {
            return Err(Rejection::Time("iat too old"));
        }
        if exp.saturating_sub(iat) > rules.max_lifetime {
            return Err(Rejection::Time("lifetime too long"));
        }
    } else if exp.saturating_sub(now) > rules.max_lifetime.saturating_add(rules.leeway) {
        return Err(Rejection::Time("lifetime too long"));
    }
    if let Some(nbf) = nbf
        && nbf.secs() > now.saturating_add(rules.leeway)
    {
        return Err(Rejection::Time("not yet valid"));
    }
    Ok(())
}

/// A `jti` is present, non-empty and at most 256 characters (checklist G84).
pub fn jti(jti: Option<&str>) -> Result<&str, Rejection> {
    match jti {
        Some(j) if !j.is_empty() && j.chars().count() <= 256 => Ok(j),
        _ => Err(Rejection::Jti),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixed time of every row.
    const NOW: UnixTime = 1_800_000_000;
    /// An ID-JAG's rules: 60 s leeway, at most 600 s of life, `iat` required.
    const RULES: TimeRules = TimeRules {
        leeway: 60,
        max_lifetime: 600,
        max_age: None,
        require_iat: true,
    };

    /// A NumericDate of `t` seconds.
    fn d(t: u64) -> Option<NumericDate> {
        Some(NumericDate(t as f64))
    }

    type Row = (
        Option<NumericDate>,
        Option<NumericDate>,
        Option<NumericDate>,
        Result<(), Rejection>,
    );

    /// One row per rule: (exp, iat, nbf, expected).
    /// RFC 7519 §4.1.4–4.1.6 with leeway (checklist G81–G83, C23, C25): one row per bound.
    #[test]
    fn time_rules_table() {
        let rows: &[Row] = &[
            (d(NOW + 300), d(NOW), None, Ok(())),
            (None, d(NOW), None, Err(Rejection::Time("exp missing"))),
            (d(NOW - 30), d(NOW - 300), None, Ok(())), // expired within leeway: accepted (G81)
            (
                d(NOW - 60),
                d(NOW - 300),
                None,
                Err(Rejection::Time("expired")),
            ),
            (
                d(NOW + 300),
                None,
                None,
                Err(Rejection::Time("iat missing")),
            ),
            (
                d(NOW + 300),
                d(NOW + 61),
                None,
                Err(Rejection::Time("iat in the future")),
            ),
            (d(NOW + 300), d(NOW + 59), None, Ok(())),
            (
                d(NOW + 601),
                d(NOW),
                None,
                Err(Rejection::Time("lifetime too long")),
            ),
            (
                d(NOW + 300),
                d(NOW),
                d(NOW + 61),
                Err(Rejection::Time("not yet valid")),
            ),
            (d(NOW + 300), d(NOW), d(NOW + 60), Ok(())),
        ];
        for (i, (exp, iat, nbf, want)) in rows.iter().enumerate() {
            assert_eq!(&times(*exp, *iat, *nbf, RULES, NOW), want, "row {i}");
        }
    }

    /// Client assertions (checklist C25): an `iat` more than `max_age` old is refused even
    /// when `exp` is still ahead.
    #[test]
    fn max_age_bounds_old_iat() {
        let r = TimeRules {
            max_age: Some(300),
            max_lifetime: 10_000,
            ..RULES
        };
        assert_eq!(
            times(d(NOW + 10), d(NOW - 361), None, r, NOW),
            Err(Rejection::Time("iat too old"))
        );
        assert_eq!(times(d(NOW + 10), d(NOW - 359), None, r, NOW), Ok(()));
    }

    /// Checklist G84: a `jti` of 1–256 characters (characters, not bytes).
    #[test]
    fn jti_bounds() {
        assert_eq!(jti(Some("a")), Ok("a"));
        assert_eq!(jti(Some("")), Err(Rejection::Jti));
        assert_eq!(jti(None), Err(Rejection::Jti));
        assert_eq!(jti(Some(&"x".repeat(257))), Err(Rejection::Jti));
    }
}
