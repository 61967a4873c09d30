//! Claim validation: `core::validate::{times, jti}` and `core::access::check`.

use std::collections::BTreeSet;

use super::{Bytes, Outcome, Reached, Seed, Violation, ensure};
use crate::clock::UnixTime;
use crate::core::Rejection;
use crate::core::access::{Expected, Principal, check};
use crate::core::claims::{AccessTokenIn, NumericDate};
use crate::core::validate::{TimeRules, jti, times};

const ISS: &str = "https://as.example/as";
const AUD: &str = "https://api.example/";
/// The `now` of the seeds.
const NOW: UnixTime = 1_800_000_000;

/// Input: a mode byte, `now` (u64), leeway (u16), max lifetime (u32), max age (flag + u32),
/// `require_iat` (flag), then
/// - even modes: `exp`, `iat`, `nbf` (each a tag byte and a value, see [`date`]) and a `jti`;
/// - odd modes: the JSON claims of an access token, checked by `access::check` too.
pub fn claims(data: &[u8]) -> Outcome {
    let mut b = Bytes::new(data);
    let mode = b.u8();
    let now = b.u64();
    let rules = TimeRules {
        leeway: u64::from(b.u16()),
        max_lifetime: u64::from(b.u32()),
        max_age: if b.bool() {
            Some(u64::from(b.u32()))
        } else {
            b.u32();
            None
        },
        require_iat: b.bool(),
    };
    if mode & 1 == 0 {
        let (exp, iat, nbf) = (date(&mut b, now), date(&mut b, now), date(&mut b, now));
        let t = check_times(exp, iat, nbf, rules, now)?;
        let id = std::str::from_utf8(b.rest()).ok();
        check_jti(id)?;
        return Ok(t);
    }
    let Ok(c) = serde_json::from_slice::<AccessTokenIn>(b.rest()) else {
        return Ok(Reached::Refused);
    };
    check_times(c.exp, c.iat, c.nbf, rules, now)?;
    check_jti(c.jti.as_deref())?;
    check_access(c, rules.leeway, rules.max_lifetime, now)
}

/// A NumericDate from fuzz bytes: absent, whole seconds, an offset from `now` with a
/// fraction, or any float the claims deserializer would accept.
fn date(b: &mut Bytes<'_>, now: UnixTime) -> Option<NumericDate> {
    match b.u8() % 4 {
        0 => None,
        1 => Some(NumericDate(b.u64() as f64)),
        2 => {
            let offset = i64::from(b.u32() as i32);
            let frac = f64::from(b.u8()) / 256.0;
            let t = i128::from(now) + i128::from(offset);
            Some(NumericDate(t.max(0) as f64 + frac))
        }
        _ => {
            let f = f64::from_bits(b.u64());
            (f.is_finite() && f >= 0.0).then_some(NumericDate(f))
        }
    }
}

/// The time rules evaluated without saturation: which of them the claims break at `now`.
struct Broken {
    exp_missing: bool,
    expired: bool,
    iat_missing: bool,
    iat_future: bool,
    iat_old: bool,
    lifetime: bool,
    not_yet: bool,
}

fn broken(
    exp: Option<NumericDate>,
    iat: Option<NumericDate>,
    nbf: Option<NumericDate>,
    r: TimeRules,
    now: UnixTime,
) -> Broken {
    let w = |t: NumericDate| u128::from(t.secs());
    let (n, l) = (u128::from(now), u128::from(r.leeway));
    let (exp, iat, nbf) = (exp.map(w), iat.map(w), nbf.map(w));
    let max = u128::from(r.max_lifetime);
    Broken {
        exp_missing: exp.is_none(),
        expired: exp.is_some_and(|e| n >= e + l),
        iat_missing: iat.is_none() && r.require_iat,
        iat_future: iat.is_some_and(|i| i > n + l),
        iat_old: iat.is_some_and(|i| r.max_age.is_some_and(|a| n > i + u128::from(a) + l)),
        lifetime: match iat {
            Some(i) => exp.is_some_and(|e| e.saturating_sub(i) > max),
            None => exp.is_some_and(|e| e.saturating_sub(n) > max + l),
        },
        not_yet: nbf.is_some_and(|v| v > n + l),
    }
}

fn check_times(
    exp: Option<NumericDate>,
    iat: Option<NumericDate>,
    nbf: Option<NumericDate>,
    rules: TimeRules,
    now: UnixTime,
) -> Outcome {
    let at = |now: UnixTime| times(exp, iat, nbf, rules, now);
    let r = at(now);
    let k = broken(exp, iat, nbf, rules, now);
    let exp_secs = exp.map(NumericDate::secs);
    // Sums past u64::MAX saturate: a token whose `exp + leeway` does not fit counts as
    // expiring at u64::MAX (only reachable at now = u64::MAX).
    let saturated = exp_secs.is_some_and(|e| e.checked_add(rules.leeway).is_none());
    match &r {
        Ok(()) => ensure!(
            !(k.exp_missing
                || k.expired
                || k.iat_missing
                || k.iat_future
                || k.iat_old
                || k.lifetime
                || k.not_yet),
            "times accepted claims that break a rule at now={now}"
        ),
        Err(Rejection::Time(why)) => {
            let named = match *why {
                "exp missing" => k.exp_missing,
                "expired" => k.expired || saturated,
                "iat missing" => k.iat_missing,
                "iat in the future" => k.iat_future,
                "iat too old" => k.iat_old,
                "lifetime too long" => k.lifetime,
                "not yet valid" => k.not_yet,
                _ => false,
            };
            ensure!(named, "times refused with {why:?} but that rule holds");
        }
        Err(other) => return Err(Violation(format!("times returned {other:?}"))),
    }

    // Monotone in `now`: later, a valid token can only expire or age; an expired one stays
    // expired; earlier, a valid one can only be not yet valid.
    let later = [
        now.saturating_add(1),
        now.saturating_add(rules.leeway),
        exp_secs.map_or(now, |e| e.saturating_add(rules.leeway).saturating_sub(1)),
        exp_secs.map_or(now, |e| e.saturating_add(rules.leeway)),
        UnixTime::MAX,
    ];
    let expired = Err(Rejection::Time("expired"));
    let too_old = Err(Rejection::Time("iat too old"));
    for t in later.into_iter().filter(|&t| t >= now) {
        let r2 = at(t);
        match &r {
            Ok(()) => ensure!(
                r2.is_ok() || r2 == expired || r2 == too_old,
                "valid at {now}, {r2:?} at later {t}"
            ),
            Err(Rejection::Time("expired")) => {
                ensure!(r2 == expired, "expired at {now}, {r2:?} at later {t}")
            }
            Err(Rejection::Time("iat too old")) => ensure!(
                r2 == expired || r2 == too_old,
                "too old at {now}, {r2:?} at later {t}"
            ),
            Err(Rejection::Time("exp missing")) => ensure!(
                r2 == Err(Rejection::Time("exp missing")),
                "exp missing depends on now"
            ),
            // `expired` is checked first: a token without iat can still expire.
            Err(Rejection::Time("iat missing")) => ensure!(
                r2 == Err(Rejection::Time("iat missing")) || r2 == expired,
                "iat missing at {now}, {r2:?} at later {t}"
            ),
            Err(_) => {}
        }
    }
    if r.is_ok() {
        for t in [now.saturating_sub(1), 0] {
            let r2 = at(t);
            ensure!(
                r2.is_ok()
                    || ["iat in the future", "lifetime too long", "not yet valid"]
                        .iter()
                        .any(|w| r2 == Err(Rejection::Time(w))),
                "valid at {now}, {r2:?} at earlier {t}"
            );
        }
        // More leeway, a longer lifetime, no age limit or no iat requirement never refuse.
        let looser = [
            TimeRules {
                leeway: rules.leeway.saturating_add(3600),
                ..rules
            },
            TimeRules {
                max_lifetime: rules.max_lifetime.saturating_add(1),
                ..rules
            },
            TimeRules {
                max_age: None,
                require_iat: false,
                ..rules
            },
        ];
        for l in looser {
            ensure!(
                times(exp, iat, nbf, l, now).is_ok(),
                "valid under {rules:?}, refused under looser {l:?}"
            );
        }
    }
    Ok(if r.is_ok() {
        Reached::Accepted
    } else {
        Reached::Refused
    })
}

fn check_jti(id: Option<&str>) -> Result<(), Violation> {
    let want = id.is_some_and(|j| !j.is_empty() && j.chars().count() <= 256);
    match jti(id) {
        Ok(j) => ensure!(want && Some(j) == id, "jti accepted {id:?} as {j:?}"),
        Err(e) => ensure!(
            !want && e == Rejection::Jti,
            "jti refused {id:?} with {e:?}"
        ),
    }
    Ok(())
}

fn check_access(c: AccessTokenIn, leeway: u64, max_lifetime: u64, now: UnixTime) -> Outcome {
    let expected = Expected {
        issuer: ISS,
        audience: AUD,
        leeway,
        max_lifetime,
    };
    let r = check(c.clone(), &expected, now);
    let rules = TimeRules {
        leeway,
        max_lifetime,
        max_age: None,
        require_iat: true,
    };
    if c.iss.as_deref() != Some(ISS) {
        ensure!(
            r == Err(Rejection::UntrustedIssuer),
            "iss {:?} gave {r:?}",
            c.iss
        );
        return Ok(Reached::Refused);
    }
    if c.aud.as_ref().is_none_or(|a| a.values() != [AUD]) {
        ensure!(r == Err(Rejection::Audience), "aud {:?} gave {r:?}", c.aud);
        return Ok(Reached::Refused);
    }
    let p = match r {
        Ok(p) => p,
        Err(Rejection::Time(w)) => {
            ensure!(
                times(c.exp, c.iat, c.nbf, rules, now) == Err(Rejection::Time(w)),
                "check's time refusal {w:?} differs from times()"
            );
            return Ok(Reached::Refused);
        }
        Err(_) => return Ok(Reached::Refused),
    };
    principal_matches_claims(&p, &c, rules, now)?;

    // Monotone in `now`: the same principal until `exp + leeway`, then expired.
    let end = p.expires_at.saturating_add(leeway);
    for t in [now.saturating_add(1), end.saturating_sub(1), end] {
        if t < now {
            continue;
        }
        let r2 = check(c.clone(), &expected, t);
        if t < end {
            ensure!(
                r2.as_ref() == Ok(&p),
                "valid at {now}, {r2:?} at later {t} < exp + leeway"
            );
        } else {
            ensure!(
                r2 == Err(Rejection::Time("expired")),
                "valid at {now}, {r2:?} at exp + leeway"
            );
        }
    }
    let looser = Expected {
        leeway: leeway.saturating_add(60),
        ..expected.clone()
    };
    ensure!(
        check(c.clone(), &looser, now).as_ref() == Ok(&p),
        "more leeway changed the outcome"
    );
    Ok(Reached::Accepted)
}

/// An accepted access token's principal says exactly what its claims say.
fn principal_matches_claims(
    p: &Principal,
    c: &AccessTokenIn,
    rules: TimeRules,
    now: UnixTime,
) -> Result<(), Violation> {
    ensure!(
        times(c.exp, c.iat, c.nbf, rules, now).is_ok(),
        "accepted with times() refusing"
    );
    ensure!(
        !p.human.is_empty() && c.sub.as_deref() == Some(p.human.as_str()),
        "human is not the sub"
    );
    ensure!(
        !p.agent.is_empty() && c.client_id.as_deref() == Some(p.agent.as_str()),
        "agent is not the client_id"
    );
    ensure!(
        c.act.as_ref() == Some(&p.actor) && p.actor.sub == p.agent,
        "actor is not act, or act.sub is not the agent"
    );
    ensure!(
        c.jti.as_deref() == Some(p.token_id.as_str()),
        "token id is not the jti"
    );
    ensure!(
        Some(p.expires_at) == c.exp.map(NumericDate::secs)
            && Some(p.issued_at) == c.iat.map(NumericDate::secs),
        "times not carried over"
    );
    ensure!(
        now < p.expires_at.saturating_add(rules.leeway)
            && p.expires_at.saturating_sub(p.issued_at) <= rules.max_lifetime,
        "accepted an expired or over-long token"
    );
    ensure!(
        p.channel == c.channel && p.approval == c.approval,
        "channel or approval not carried over"
    );
    let scope: BTreeSet<&str> = c
        .scope
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    let from_details: BTreeSet<&str> = c
        .authorization_details
        .iter()
        .flatten()
        .filter(|d| d.kind == "lanyard_action")
        .filter(|d| d.locations.is_empty() || d.locations.iter().any(|l| l == AUD))
        .flat_map(|d| d.actions.iter().map(String::as_str))
        .collect();
    for a in &scope {
        ensure!(p.allows(a), "scope action {a:?} not granted");
    }
    for a in &p.actions {
        ensure!(
            scope.contains(a.as_str()) || from_details.contains(a.as_str()),
            "action {a:?} granted from nowhere (another location, or another type)"
        );
    }
    match &c.cnf {
        None => ensure!(p.jkt.is_none(), "jkt without cnf"),
        Some(cnf) => ensure!(
            cnf.x5t_s256.is_none()
                && cnf.jkt.as_deref().is_some_and(|j| !j.is_empty())
                && p.jkt == cnf.jkt,
            "cnf {cnf:?} accepted as {:?}",
            p.jkt
        ),
    }
    Ok(())
}

pub(super) fn seeds() -> Vec<Vec<u8>> {
    let head = |mode: u8, now: u64| {
        Seed::default()
            .u8(mode)
            .u64(now)
            .u16(60)
            .u32(3600)
            .u8(0)
            .u32(0)
            .u8(1)
    };
    let json = |v: serde_json::Value| head(1, NOW).bytes(v.to_string()).done();
    let valid = serde_json::json!({
        "iss": ISS, "sub": "alice", "aud": AUD, "client_id": "bot", "act": {"sub": "bot"},
        "iat": NOW - 10, "exp": NOW + 290, "jti": "t1", "scope": "read write",
        "authorization_details": [
            {"type": "lanyard_action", "actions": ["read"], "locations": [AUD]},
            {"type": "lanyard_action", "actions": ["close"], "locations": ["https://other.example/"]},
            {"type": "other", "actions": ["admin"]}
        ],
        "channel": "slack:T1/C1", "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
        "approval": {"id": "a1", "approver": "carol"}
    });
    let with = |k: &str, v: serde_json::Value| {
        let mut c = valid.clone();
        c[k] = v;
        json(c)
    };
    vec![
        json(valid.clone()),
        with("exp", (NOW - 30).into()),
        with("exp", (NOW - 61).into()),
        with("iat", (NOW + 120).into()),
        with("nbf", (NOW + 120).into()),
        with("exp", 1.8e19.into()),
        with("aud", serde_json::json!([AUD, "https://other.example/"])),
        with(
            "act",
            serde_json::json!({"sub": "bot", "act": {"sub": "planner"}}),
        ),
        with("cnf", serde_json::json!({"x5t#S256": "abc"})),
        with("iss", "https://as.example/as/".into()),
        with("jti", "x".repeat(257).into()),
        // Numeric mode: exp = now + 300 (offset tag), iat = now, no nbf, jti "j".
        head(0, NOW)
            .u8(2)
            .u32(300)
            .u8(128)
            .u8(2)
            .u32(0)
            .u8(0)
            .u8(0)
            .bytes("j")
            .done(),
        head(0, u64::MAX).u8(1).u64(u64::MAX).u8(0).u8(0).done(),
        head(0, NOW)
            .u8(3)
            .u64(1.0e300f64.to_bits())
            .u8(1)
            .u64(NOW)
            .u8(0)
            .done(),
    ]
}
